"""The ``hat_supernet`` relaxation: HAT's SuperTransformer as one differentiable network.

On frozen SuperTransformer weights, in eval mode (no dropout):

- *FFN widths*: every FFN runs its widest hidden layer, whose units are multiplied by the
  mixture of the masks ``[unit < ffn_dim]`` after the ReLU (the second layer then sees
  exactly the first ``ffn_dim`` units, as a sliced FFN);
- *heads*: the mixture of the attention outputs with each head count (the Q/K/V width is
  fixed; heads only change how it is split);
- *encoder-decoder attention*: the mixture over the attended encoder layers (last 1, 2 or
  3, concatenated along time) and, inside, over the heads;
- *decoder depth*: the mixture of the decoder's outputs after each allowed number of layers;
- *embedding widths*: every (encoder width, decoder width) pair is its own forward pass,
  and the output logits are mixed with weight ``w_enc * w_dec`` (the widths fix the shapes
  of every layer, so they cannot be masks of one run: HAT's positions and the shared
  embedding are sliced per width).

With one-hot weights the logits are those of the extracted SubTransformer. The task term
is the teacher-forced cross-entropy (nats per target token) of a training batch drawn
afresh for each step; the cost term is the expected latency from the evaluator's lookup
table (:class:`~supernets.transformer.latency.LatencyTable`, ``latency: lut``), exact
under the categorical distributions: each entry depends on the widths and on one layer's
own choices, and a decoder layer runs with the probability that the decoder is deep enough.

    strategies:
      - name: gradient
        options:
          relaxation: hat_supernet
          relaxation_options:
            checkpoint: results/hat/multi30k
            corpus: {src: ../shared/data/multi30k/train.en.gz, tgt: ../shared/data/multi30k/train.de.gz}
            lut: results/hat/latency_lut_cpu.json
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from linas.errors import ConfigError
from linas.registry import Options
from linas.relaxations import Relaxation, active_probabilities, relaxations
from linas.space import SearchSpace
from linas.spec import Problem
from supernets.transformer.arch import ende_layers
from supernets.transformer.data import CorpusSpec
from supernets.transformer.latency import LatencyTable
from supernets.transformer.layers import Attention, FeedForward
from supernets.transformer.model import PAD, SuperTransformer


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    saved = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def _heads(attn: Attention, heads: int) -> Iterator[Attention]:
    saved = attn.heads
    attn.heads = heads
    try:
        yield attn
    finally:
        attn.heads = saved


class _Rows:
    """Weight rows and choices of a HAT space's variables, by name."""

    def __init__(self, space: SearchSpace, weights: torch.Tensor) -> None:
        self.space, self.weights = space, weights
        self.index = {name: i for i, name in enumerate(space.names)}

    def __call__(self, name: str) -> torch.Tensor:
        return self.weights[self.index[name]]

    def choices(self, name: str) -> tuple:
        return self.space.variable(name).choices


def _mixed_attention(attn: Attention, query, k, v, mask, w: torch.Tensor, heads: tuple) -> torch.Tensor:
    out = 0
    for i, h in enumerate(heads):
        with _heads(attn, h):
            out = out + w[i] * attn(query, k, v, mask)
    return out


def _mixed_ffn(ffn: FeedForward, x: torch.Tensor, w: torch.Tensor, dims: tuple) -> torch.Tensor:
    width = max(dims)
    units = torch.arange(width, device=x.device)
    mask = sum(w[i] * (units < f).to(w.dtype) for i, f in enumerate(dims))
    h = F.relu(ffn.fc1(x, out_features=width)) * mask
    return ffn.fc2(h, out_features=x.shape[-1])


def _pair_logits(net: SuperTransformer, rows: _Rows, src: torch.Tensor, prev: torch.Tensor, e: int, d: int
                 ) -> torch.Tensor:
    """Logits with encoder width ``e`` and decoder width ``d``, every other choice mixed."""
    pad = src.eq(net.pad_id)
    positions = torch.arange(src.shape[1], device=src.device).expand_as(src)
    x = net._embed(src, e, positions, net.position_dims[0])
    mask = pad[:, None, None, :]
    n_enc = int(rows.choices("encoder_layer_num")[0])
    encoded = []
    for i, layer in enumerate(net.encoder[:n_enc]):
        k, v = layer.self_attn.project_kv(x)
        att = _mixed_attention(layer.self_attn, x, k, v, mask, rows(f"encoder_self_attention_heads_{i}"),
                               rows.choices(f"encoder_self_attention_heads_{i}"))
        x = layer.self_attn_norm(x + att)
        x = layer.ffn_norm(x + _mixed_ffn(layer.ffn, x, rows(f"encoder_ffn_embed_dim_{i}"),
                                          rows.choices(f"encoder_ffn_embed_dim_{i}")))
        encoded.append(x)

    t = prev.shape[1]
    positions = torch.arange(t, device=prev.device).expand_as(prev)
    causal = torch.ones(t, t, dtype=torch.bool, device=prev.device).triu(1)
    y = net._embed(prev, d, positions, net.position_dims[1])
    depths = rows.choices("decoder_layer_num")
    outs = []
    for i, layer in enumerate(net.decoder[:max(depths)]):
        k, v = layer.self_attn.project_kv(y)
        att = _mixed_attention(layer.self_attn, y, k, v, causal, rows(f"decoder_self_attention_heads_{i}"),
                               rows.choices(f"decoder_self_attention_heads_{i}"))
        y = layer.self_attn_norm(y + att)
        ende, w_attn = 0, rows(f"decoder_arbitrary_ende_attn_{i}")
        for a, value in enumerate(rows.choices(f"decoder_arbitrary_ende_attn_{i}")):
            n = ende_layers(value)
            memory = torch.cat(encoded[-n:], dim=1) if n > 1 else encoded[-1]
            mmask = mask.repeat(1, 1, 1, n) if n > 1 else mask
            mk, mv = layer.ende_attn.project_kv(memory)
            ende = ende + w_attn[a] * _mixed_attention(layer.ende_attn, y, mk, mv, mmask,
                                                       rows(f"decoder_ende_attention_heads_{i}"),
                                                       rows.choices(f"decoder_ende_attention_heads_{i}"))
        y = layer.ende_attn_norm(y + ende)
        y = layer.ffn_norm(y + _mixed_ffn(layer.ffn, y, rows(f"decoder_ffn_embed_dim_{i}"),
                                          rows.choices(f"decoder_ffn_embed_dim_{i}")))
        outs.append(y)
    w_depth = rows("decoder_layer_num")
    y = sum(w_depth[j] * outs[n - 1] for j, n in enumerate(depths))
    return F.linear(y, net.embed.weight[:, :d])


def mixed_logits(net: SuperTransformer, space: SearchSpace, src: torch.Tensor, prev: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
    """Teacher-forced logits ``[B, T, V]`` of the SuperTransformer mixed by ``weights``
    (``(variables, max choices)``, rows in the space's order)."""
    rows = _Rows(space, weights)
    w_enc, w_dec = rows("encoder_embed_dim"), rows("decoder_embed_dim")
    out = 0
    for a, e in enumerate(rows.choices("encoder_embed_dim")):
        for b, d in enumerate(rows.choices("decoder_embed_dim")):
            out = out + w_enc[a] * w_dec[b] * _pair_logits(net, rows, src, prev, int(e), int(d))
    return out


# ---------------------------------------------------------------------- expected latency
class ExpectedLatency:
    """Expected lookup-table latency (ms) of a HAT space under independent categoricals."""

    def __init__(self, space: SearchSpace, table: LatencyTable) -> None:
        self.space = space
        ch = {v.name: v.choices for v in space.variables}
        self.n_enc = int(ch["encoder_layer_num"][0])
        self.n_dec = max(ch["decoder_layer_num"])
        E, D = ch["encoder_embed_dim"], ch["decoder_embed_dim"]
        ffn, heads, attn = ch["encoder_ffn_embed_dim_0"], ch["encoder_self_attention_heads_0"], \
            ch["decoder_arbitrary_ende_attn_0"]
        self.width = int(space.n_choices.max())

        def entry(key: str) -> float:
            if key not in table.entries:
                raise ConfigError(f"latency table has no entry {key}; rebuild it for space '{space.name}'")
            return table.entries[key]

        self.embed = torch.tensor([entry(f"encoder_embed|{e}") for e in E], dtype=torch.float64)
        self.io = torch.tensor([entry(f"decoder_io|{d}") for d in D], dtype=torch.float64)
        self.enc = torch.tensor([[[entry(f"enc|{e}|{f}|{h}") for h in heads] for f in ffn] for e in E],
                                dtype=torch.float64)
        self.dec = torch.tensor([[[[[[entry(f"dec|{d}|{e}|{f}|{hs}|{he}|{ende_layers(k)}") for k in attn]
                                     for he in heads] for hs in heads] for f in ffn] for e in E] for d in D],
                                dtype=torch.float64)
        self.index = {name: i for i, name in enumerate(space.names)}

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        p = probs.to(torch.float64)
        act = active_probabilities(self.space, p)

        def row(name: str, n: int) -> torch.Tensor:
            return p[self.index[name], :n]

        pe = row("encoder_embed_dim", len(self.embed))
        pd = row("decoder_embed_dim", len(self.io))
        nf, nh, na = self.enc.shape[1], self.enc.shape[2], self.dec.shape[-1]
        total = pe @ self.embed + pd @ self.io
        for i in range(self.n_enc):
            total = total + torch.einsum("a,f,h,afh->", pe, row(f"encoder_ffn_embed_dim_{i}", nf),
                                         row(f"encoder_self_attention_heads_{i}", nh), self.enc)
        for i in range(self.n_dec):
            layer = torch.einsum("b,a,f,s,t,k,bafstk->", pd, pe, row(f"decoder_ffn_embed_dim_{i}", nf),
                                 row(f"decoder_self_attention_heads_{i}", nh),
                                 row(f"decoder_ende_attention_heads_{i}", nh),
                                 row(f"decoder_arbitrary_ende_attn_{i}", na), self.dec)
            total = total + act[self.index[f"decoder_ffn_embed_dim_{i}"]] * layer
        return total


@relaxations.register("hat_supernet")
class HatSupernetRelaxation(Relaxation):
    """Cross-entropy of the mixed SuperTransformer on training batches, expected lookup-table latency."""

    class Options(Options):
        checkpoint: str
        corpus: CorpusSpec
        lut: str
        subset: int | None = Field(2000, ge=1)  # training pairs drawn from (a fixed subset)
        subset_seed: int = 0
        max_tokens: int = Field(512, ge=8)  # padded tokens per batch and side
        src_lang: str = "en"
        tgt_lang: str = "de"
        latency_objective: str = "latency"
        threads: int | None = Field(None, ge=1)
        device: str = "auto"

    def __init__(self, problem: Problem, seed: int, checkpoint: str, corpus: CorpusSpec | dict | None, lut: str,
                 subset: int | None = 2000, subset_seed: int = 0, max_tokens: int = 512, src_lang: str = "en",
                 tgt_lang: str = "de", latency_objective: str = "latency", threads: int | None = None,
                 device: str = "auto", supernet: SuperTransformer | None = None, batches: list | None = None) -> None:
        super().__init__(problem, seed)
        from linas.config_io import parse
        from supernets.devices import resolve_device
        from supernets.transformer.checkpoint import load_supernet
        from supernets.transformer.data import load_corpus, pairs, subset_indices
        from supernets.transformer.scoring import make_batches

        names = [o.name for o in problem.objectives]
        if latency_objective not in names:
            raise ConfigError(f"relaxation 'hat_supernet': no objective '{latency_objective}' (objectives: {names})")
        self.latency_index = names.index(latency_objective)
        self.device = resolve_device(device, "relaxation hat_supernet")
        if supernet is None or batches is None:
            loaded, tokenizer, meta = load_supernet(checkpoint)
            if meta["space"] != self.space.name:
                raise ConfigError(f"relaxation 'hat_supernet': the checkpoint was trained on space "
                                  f"'{meta['space']}', but the experiment searches '{self.space.name}'")
            supernet = loaded if supernet is None else supernet
        self.net = supernet.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        if batches is None:
            spec = corpus if isinstance(corpus, CorpusSpec) else parse(CorpusSpec, corpus, "hat_supernet: corpus")
            src, tgt = pairs(load_corpus(spec, src_lang, tgt_lang), src_lang, tgt_lang)
            keep = subset_indices(len(src), subset, subset_seed)
            batches = make_batches(tokenizer, [src[i] for i in keep], [tgt[i] for i in keep], max_tokens)
        self.batches = batches
        self.table = LatencyTable.load(lut) if isinstance(lut, str) else lut
        self.expected_latency = ExpectedLatency(self.space, self.table)
        self.threads = threads
        self._rng = np.random.default_rng([seed, 13])

    def cost(self, probs: torch.Tensor) -> torch.Tensor:
        objective = self.problem.objectives[self.latency_index]
        lo, hi = objective.bounds if objective.bounds is not None else (0.0, 1.0)
        return (self.expected_latency(probs) - lo) / (hi - lo)

    def task(self, weights: torch.Tensor) -> torch.Tensor:
        b = self.batches[int(self._rng.integers(len(self.batches)))]
        src, prev, target = (t.to(self.device) for t in (b.src, b.prev, b.target))
        with _threads(self.threads):
            logits = mixed_logits(self.net, self.space, src, prev, weights.to(self.device, torch.float32))
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD)
        return loss.to(torch.float64).cpu()

    def state_dict(self) -> dict[str, Any]:
        from linas.strategies.base import rng_state

        return {"rng": rng_state(self._rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from linas.strategies.base import set_rng_state

        set_rng_state(self._rng, state["rng"])
