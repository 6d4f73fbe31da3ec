"""The encoder-decoder Transformer, its SuperTransformer, and SubTransformer extraction.

One class, :class:`TransformerModel`, runs any :class:`~supernets.transformer.arch.Arch`
that fits inside the one it was built with: a SuperTransformer is the model of the
space's largest choices with a smaller *active* arch; an extracted SubTransformer is a
model built with exactly the subnet's widths (its active arch is its own).

Example::

    net = SuperTransformer(get_space("hat_cpu"), vocab_size=8000, qkv_dim=256)
    net.set_active_subnet(config)          # slices the shared weights in forward
    sub = net.get_active_subnet()          # standalone copy, same outputs
    logits = sub(src_tokens, prev_output_tokens)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from linas.errors import ConfigError
from linas.space import SearchSpace
from supernets.transformer.arch import Arch, arch_of, super_arch
from supernets.transformer.layers import DecoderLayer, EncoderLayer, sinusoidal_positions

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


@dataclass
class EncoderOut:
    """Every encoder layer's output ``[B, S, d]`` (arbitrary enc-dec attention needs them) and the padding mask."""

    layers: list[Tensor]
    pad_mask: Tensor  # [B, 1, 1, S], True at padding

    def index_select(self, index: Tensor) -> EncoderOut:
        return EncoderOut([x.index_select(0, index) for x in self.layers], self.pad_mask.index_select(0, index))


class TransformerModel(nn.Module):
    """Encoder-decoder Transformer with shared source/target/output embeddings and post-LayerNorm."""

    def __init__(self, arch: Arch, dropout: float = 0.1, pad_id: int = PAD, bos_id: int = BOS,
                 eos_id: int = EOS, position_dims: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.arch = arch
        # As in HAT, sinusoidal positions are computed at the SuperTransformer's (encoder,
        # decoder) widths and sliced to the active width, so a SubTransformer sees the same
        # position features it was trained with inside the supernet. An extracted
        # SubTransformer inherits the super widths; ``None`` means this model's own widths.
        # ``(0, 0)`` reproduces the first recipe (positions computed at the active width),
        # which checkpoints without a ``positions`` entry were trained with.
        self.position_dims = position_dims or (arch.encoder_embed_dim, arch.decoder_embed_dim)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        e, d = arch.encoder_embed_dim, arch.decoder_embed_dim
        self.embed = nn.Embedding(arch.vocab_size, max(e, d), padding_idx=pad_id)
        nn.init.normal_(self.embed.weight, 0.0, max(e, d) ** -0.5)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()
        self.encoder = nn.ModuleList(
            EncoderLayer(e, f, arch.qkv_dim, h, dropout) for f, h in zip(arch.encoder_ffn, arch.encoder_heads))
        self.decoder = nn.ModuleList(
            DecoderLayer(d, e, f, arch.qkv_dim, hs, he, k, dropout)
            for f, hs, he, k in zip(arch.decoder_ffn, arch.decoder_self_heads, arch.decoder_ende_heads,
                                    arch.decoder_ende_attn))
        self.dropout = nn.Dropout(dropout)
        for name, p in self.named_parameters():
            if p.dim() == 2 and not name.startswith("embed"):
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias") and "norm" not in name:
                nn.init.zeros_(p)
        self.active = arch

    # ------------------------------------------------------------------ activation
    def set_active_arch(self, arch: Arch) -> None:
        """Run ``arch`` (which must fit inside this model's) from now on."""
        if not arch.fits_in(self.arch):
            raise ConfigError("the requested SubTransformer does not fit inside this model")
        for layer, f, h in zip(self.encoder, arch.encoder_ffn, arch.encoder_heads):
            layer.configure(f, h)
        for layer, f, hs, he, k in zip(self.decoder, arch.decoder_ffn, arch.decoder_self_heads,
                                       arch.decoder_ende_heads, arch.decoder_ende_attn):
            layer.configure(f, hs, he, k)
        self.active = arch

    # ------------------------------------------------------------------ forward
    def _embed(self, tokens: Tensor, dim: int, positions: Tensor, full_dim: int) -> Tensor:
        x = self.embed.weight[:, :dim][tokens] * math.sqrt(dim)
        pos = sinusoidal_positions(positions, max(full_dim, dim))[..., :dim]
        return self.dropout(x + pos.to(x.dtype))

    def encode(self, src_tokens: Tensor) -> EncoderOut:
        """Run the encoder on ``src_tokens [B, S]`` (padded with ``pad_id`` on the right)."""
        pad = src_tokens.eq(self.pad_id)
        positions = torch.arange(src_tokens.shape[1], device=src_tokens.device).expand_as(src_tokens)
        x = self._embed(src_tokens, self.active.encoder_embed_dim, positions, self.position_dims[0])
        mask = pad[:, None, None, :]
        outs = []
        for layer in self.encoder[: self.active.encoder_layers]:
            x = layer(x, mask)
            outs.append(x)
        return EncoderOut(outs, mask)

    def decode(self, prev_tokens: Tensor, encoder_out: EncoderOut,
               cache: list[dict[str, Tensor]] | None = None) -> Tensor:
        """Logits ``[B, T, V]`` of the next tokens after ``prev_tokens [B, T]``.

        With ``cache`` (one dict per decoder layer, empty on the first step) only the last
        position is computed and ``[B, 1, V]`` is returned.
        """
        d = self.active.decoder_embed_dim
        t = prev_tokens.shape[1]
        if cache is not None:
            tokens = prev_tokens[:, -1:]
            positions = torch.full_like(tokens, t - 1)
            causal = None
        else:
            tokens = prev_tokens
            positions = torch.arange(t, device=prev_tokens.device).expand_as(prev_tokens)
            causal = torch.ones(t, t, dtype=torch.bool, device=prev_tokens.device).triu(1)
        x = self._embed(tokens, d, positions, self.position_dims[1])
        for i, layer in enumerate(self.decoder[: self.active.decoder_layers]):
            x = layer(x, encoder_out.layers, encoder_out.pad_mask, causal, None if cache is None else cache[i])
        return torch.nn.functional.linear(x, self.embed.weight[:, :d])

    def new_cache(self) -> list[dict[str, Tensor]]:
        """An empty incremental-decoding cache for the active decoder."""
        return [{} for _ in range(self.active.decoder_layers)]

    @staticmethod
    def reorder_cache(cache: list[dict[str, Tensor]], index: Tensor) -> None:
        """Keep the cache rows ``index`` (beam search reorders hypotheses every step)."""
        for layer in cache:
            for key, value in layer.items():
                layer[key] = value.index_select(0, index)

    def forward(self, src_tokens: Tensor, prev_tokens: Tensor) -> Tensor:
        """Teacher-forced logits ``[B, T, V]``."""
        return self.decode(prev_tokens, self.encode(src_tokens))


class SuperTransformer(TransformerModel):
    """HAT's SuperTransformer over a HAT search space; SubTransformers share its first-k slices.

    ``set_active_subnet(config)`` / ``get_active_subnet()`` / ``get_active_net_config()``
    follow OFA's trio.
    """

    def __init__(self, space: SearchSpace, vocab_size: int, qkv_dim: int, dropout: float = 0.1,
                 pad_id: int = PAD, bos_id: int = BOS, eos_id: int = EOS,
                 position_dims: tuple[int, int] | None = None) -> None:
        super().__init__(super_arch(space, vocab_size, qkv_dim), dropout, pad_id, bos_id, eos_id, position_dims)
        self.space = space
        self.dropout_p = dropout
        self._active_config = space.to_config(space.from_config(
            {v.name: max(v.choices) for v in space.variables}))

    def arch_of(self, config: Mapping[str, Any]) -> Arch:
        """Validated :class:`Arch` of a configuration (raises :class:`ConfigError`)."""
        return arch_of(self.space, config, self.arch.vocab_size, self.arch.qkv_dim)

    def set_active_subnet(self, config: Mapping[str, Any]) -> None:
        arch = self.arch_of(config)
        self.set_active_arch(arch)
        self._active_config = self.space.to_config(self.space.from_config(config))

    def get_active_net_config(self) -> dict[str, Any]:
        return dict(self._active_config)

    def get_active_subnet(self) -> TransformerModel:
        """A standalone :class:`TransformerModel` with the active subnet's widths and weights."""
        sub = TransformerModel(self.active, self.dropout_p, self.pad_id, self.bos_id, self.eos_id,
                               self.position_dims)
        source = self.state_dict()
        with torch.no_grad():
            for name, param in sub.state_dict().items():
                param.copy_(source[name][tuple(slice(0, n) for n in param.shape)])
        sub.train(self.training)
        return sub
