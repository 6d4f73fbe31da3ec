"""Elastic building blocks: every weight is used as a first-k slice, taken inside ``forward``.

Input widths are read from the incoming tensor (as in OFA's dynamic ops), so only output
widths are ever passed around. With the full widths these blocks behave exactly like
``nn.Linear``/``nn.LayerNorm``, which is what an extracted SubTransformer uses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ElasticLinear(nn.Linear):
    """``nn.Linear`` whose forward may use only the first ``in x out`` block of its weight."""

    def forward(self, x: Tensor, out_features: int | None = None) -> Tensor:  # type: ignore[override]
        out = self.out_features if out_features is None else out_features
        bias = None if self.bias is None else self.bias[:out]
        return F.linear(x, self.weight[:out, : x.shape[-1]], bias)


class ElasticLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the first ``x.shape[-1]`` features."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        d = x.shape[-1]
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], self.eps)


def sinusoidal_positions(positions: Tensor, dim: int) -> Tensor:
    """Fixed sinusoidal position embeddings (``[..., dim]``), sin in the first half, cos in the second."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=positions.device)
                     * -(math.log(10000.0) / max(half - 1, 1)))
    angles = positions.float().unsqueeze(-1) * freq
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class Attention(nn.Module):
    """Multi-head attention with a fixed Q/K/V width split into an active number of heads.

    As in HAT, the Q/K/V projection width (``qkv_dim``) is fixed; the number of heads
    only changes how it is split, ``qkv_dim / heads`` features per head.
    """

    def __init__(self, q_dim: int, kv_dim: int, qkv_dim: int, heads: int) -> None:
        super().__init__()
        self.qkv_dim = qkv_dim
        self.heads = heads
        self.q_proj = ElasticLinear(q_dim, qkv_dim)
        self.k_proj = ElasticLinear(kv_dim, qkv_dim)
        self.v_proj = ElasticLinear(kv_dim, qkv_dim)
        self.out_proj = ElasticLinear(qkv_dim, q_dim)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        return self.k_proj(memory), self.v_proj(memory)

    def forward(self, query: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """``query [B, Tq, d]`` attends to projected ``k, v [B, Tk, qkv]``; ``mask`` True where not allowed."""
        b, tq, _ = query.shape
        h = self.heads
        hd = self.qkv_dim // h
        q = self.q_proj(query).view(b, tq, h, hd).transpose(1, 2) * hd ** -0.5
        k = k.view(b, -1, h, hd).transpose(1, 2)
        v = v.view(b, -1, h, hd).transpose(1, 2)
        scores = q @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(b, tq, self.qkv_dim)
        return self.out_proj(context, out_features=query.shape[-1])


class FeedForward(nn.Module):
    """Two elastic linear layers with a ReLU; the hidden width is ``ffn_dim``."""

    def __init__(self, dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.ffn_dim = ffn_dim
        self.fc1 = ElasticLinear(dim, ffn_dim)
        self.fc2 = ElasticLinear(ffn_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x, out_features=self.ffn_dim)), out_features=x.shape[-1])


class EncoderLayer(nn.Module):
    """Post-LayerNorm encoder layer (self attention, FFN)."""

    def __init__(self, dim: int, ffn_dim: int, qkv_dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, dim, qkv_dim, heads)
        self.self_attn_norm = ElasticLayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim)
        self.ffn_norm = ElasticLayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def configure(self, ffn_dim: int, heads: int) -> None:
        self.ffn.ffn_dim = ffn_dim
        self.self_attn.heads = heads

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        k, v = self.self_attn.project_kv(x)
        x = self.self_attn_norm(x + self.dropout(self.self_attn(x, k, v, pad_mask)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Post-LayerNorm decoder layer attending to the last ``ende_layers`` encoder layers.

    ``cache`` (a dict owned by the caller) makes decoding incremental: the projected
    self-attention keys and values of earlier steps and the projected encoder memory are
    kept in it, so each step costs one token's worth of projections.
    """

    def __init__(self, dim: int, enc_dim: int, ffn_dim: int, qkv_dim: int, self_heads: int, ende_heads: int,
                 ende_layers: int, dropout: float) -> None:
        super().__init__()
        self.ende_layers = ende_layers
        self.self_attn = Attention(dim, dim, qkv_dim, self_heads)
        self.self_attn_norm = ElasticLayerNorm(dim)
        self.ende_attn = Attention(dim, enc_dim, qkv_dim, ende_heads)
        self.ende_attn_norm = ElasticLayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim)
        self.ffn_norm = ElasticLayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def configure(self, ffn_dim: int, self_heads: int, ende_heads: int, ende_layers: int) -> None:
        self.ffn.ffn_dim = ffn_dim
        self.self_attn.heads = self_heads
        self.ende_attn.heads = ende_heads
        self.ende_layers = ende_layers

    def memory(self, encoder_layers: list[Tensor], pad_mask: Tensor) -> tuple[Tensor, Tensor]:
        """The attended encoder states (last ``ende_layers`` layers along time) and their mask."""
        k = self.ende_layers
        mem = torch.cat(encoder_layers[-k:], dim=1) if k > 1 else encoder_layers[-1]
        mask = pad_mask.repeat(1, 1, 1, k) if k > 1 else pad_mask
        return mem, mask

    def forward(self, x: Tensor, encoder_layers: list[Tensor], pad_mask: Tensor, causal: Tensor | None,
                cache: dict[str, Tensor] | None = None) -> Tensor:
        k, v = self.self_attn.project_kv(x)
        if cache is not None:
            if "self_k" in cache:
                k = torch.cat([cache["self_k"], k], dim=1)
                v = torch.cat([cache["self_v"], v], dim=1)
            cache["self_k"], cache["self_v"] = k, v
        x = self.self_attn_norm(x + self.dropout(self.self_attn(x, k, v, causal)))

        if cache is not None and "ende_k" in cache:
            mk, mv, mmask = cache["ende_k"], cache["ende_v"], cache["ende_mask"]
        else:
            mem, mmask = self.memory(encoder_layers, pad_mask)
            mk, mv = self.ende_attn.project_kv(mem)
            if cache is not None:
                cache["ende_k"], cache["ende_v"], cache["ende_mask"] = mk, mv, mmask
        x = self.ende_attn_norm(x + self.dropout(self.ende_attn(x, mk, mv, mmask)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))
