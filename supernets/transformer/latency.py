"""Latency of SubTransformers: HAT's measurement protocol and a deterministic lookup-table proxy.

Measured (:func:`measure_latency`), as HAT: batch 1, a 30-token source, the encoder
forward plus 30 incremental decoder steps with the beam (the cache reordered every step
as in beam search), a few warm-up runs, then the trimmed mean of repeated runs.

Proxy (:class:`LatencyTable`): the same workload measured once per building block and
choice (an encoder layer per width/FFN/heads, a decoder layer's 30 steps per widths,
FFN, heads and attended encoder layers, the embedding and output projection per width);
a SubTransformer's proxy latency is the sum of its blocks' entries. It is deterministic
once built, so search algorithms can be compared on equal terms.
``linas build-lut CONFIG.yaml`` (``supernet: hat``) builds it on the current device.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from linas.config_io import StrictModel, parse
from linas.errors import LinasError
from linas.extensions import lut_builders
from linas.space import SearchSpace
from linas.spaces import get_space
from supernets.transformer.arch import WORKLOAD_TOKENS, Arch, arch_of, ende_layers
from supernets.transformer.layers import DecoderLayer, EncoderLayer
from supernets.transformer.model import TransformerModel


def trimmed_mean(samples: list[float], trim: float = 0.1) -> float:
    """Mean after dropping the ``trim`` fraction of the smallest and of the largest samples."""
    x = np.sort(np.asarray(samples, dtype=float))
    k = int(len(x) * trim)
    return float(x[k: len(x) - k].mean()) if len(x) > 2 * k else float(x.mean())


def time_samples(fn: Callable[[], Any], warmup: int = 3, repeats: int = 10) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def time_ms(fn: Callable[[], Any], warmup: int = 3, repeats: int = 10, trim: float = 0.1,
            statistic: str = "trimmed_mean") -> float:
    """Trimmed mean (or, with ``statistic="min"``, the minimum) wall time of ``fn()`` in ms.

    The minimum is the robust choice on a shared machine, where other work only ever adds time.
    """
    samples = time_samples(fn, warmup, repeats)
    return min(samples) if statistic == "min" else trimmed_mean(samples, trim)


def source_tokens(vocab_size: int, length: int = WORKLOAD_TOKENS, seed: int = 0) -> torch.Tensor:
    """A fixed random source sentence ``[1, length]`` ending with ``</s>`` (id 2)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab_size, (1, length), generator=g)
    src[0, -1] = 2
    return src


@torch.inference_mode()
def protocol_run(model: TransformerModel, src: torch.Tensor, steps: int = WORKLOAD_TOKENS, beam: int = 4) -> None:
    """One run of HAT's workload: encode, then ``steps`` beam-search decoder steps with a cache."""
    enc = model.encode(src).index_select(torch.zeros(beam, dtype=torch.long))
    tokens = torch.full((beam, 1), model.bos_id, dtype=torch.long)
    scores = torch.zeros(beam)
    cache = model.new_cache()
    for _ in range(steps):
        lprobs = torch.log_softmax(model.decode(tokens, enc, cache)[:, -1].float(), dim=-1)
        top, idx = (scores[:, None] + lprobs).view(-1).topk(beam)
        rows, nxt = idx // lprobs.shape[-1], idx % lprobs.shape[-1]
        model.reorder_cache(cache, rows)
        tokens = torch.cat([tokens.index_select(0, rows), nxt[:, None]], dim=1)
        scores = top


def measure_latency(model: TransformerModel, warmup: int = 3, repeats: int = 10, trim: float = 0.1,
                    beam: int = 4, seed: int = 0, statistic: str = "trimmed_mean") -> float:
    """HAT's measured latency (ms) of ``model`` (an extracted SubTransformer, or a supernet with an active arch)."""
    return latency_stats(model, warmup, repeats, trim, beam, seed)[statistic]


def latency_stats(model: TransformerModel, warmup: int = 3, repeats: int = 10, trim: float = 0.1, beam: int = 4,
                  seed: int = 0) -> dict[str, float]:
    """HAT's protocol timed ``repeats`` times: ``{"trimmed_mean": ..., "min": ..., "median": ...}`` in ms."""
    was_training = model.training
    model.eval()
    src = source_tokens(model.arch.vocab_size, seed=seed)
    samples = time_samples(lambda: protocol_run(model, src, beam=beam), warmup, repeats)
    model.train(was_training)
    return {"trimmed_mean": trimmed_mean(samples, trim), "min": min(samples), "median": float(np.median(samples))}


# ---------------------------------------------------------------------- lookup table
def _encoder_key(e: int, f: int, h: int) -> str:
    return f"enc|{e}|{f}|{h}"


def _decoder_key(d: int, e: int, f: int, hs: int, he: int, k: int) -> str:
    return f"dec|{d}|{e}|{f}|{hs}|{he}|{k}"


class LatencyTable:
    """Per-block latencies (ms) of HAT's workload; ``predict(arch)`` sums them.

    Example::

        table = LatencyTable.load("results/hat/latency_lut_cpu.json")
        table.predict_config(space, config)
    """

    def __init__(self, entries: Mapping[str, float], meta: Mapping[str, Any]) -> None:
        self.entries = dict(entries)
        self.meta = dict(meta)

    def predict(self, arch: Arch) -> float:
        try:
            total = self.entries[f"encoder_embed|{arch.encoder_embed_dim}"]
            total += self.entries[f"decoder_io|{arch.decoder_embed_dim}"]
            for f, h in zip(arch.encoder_ffn, arch.encoder_heads):
                total += self.entries[_encoder_key(arch.encoder_embed_dim, f, h)]
            for f, hs, he, k in zip(arch.decoder_ffn, arch.decoder_self_heads, arch.decoder_ende_heads,
                                    arch.decoder_ende_attn):
                total += self.entries[_decoder_key(arch.decoder_embed_dim, arch.encoder_embed_dim, f, hs, he, k)]
        except KeyError as exc:
            raise LinasError(f"latency table {self.meta.get('space')} has no entry {exc}; "
                             "rebuild it for this space with: linas build-lut CONFIG.yaml") from None
        return total

    def predict_config(self, space: SearchSpace, config: Mapping[str, Any]) -> float:
        return self.predict(arch_of(space, config, self.meta["vocab_size"], self.meta["qkv_dim"]))

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"meta": self.meta, "entries": self.entries}, indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        p = Path(path)
        if not p.is_file():
            raise LinasError(f"{p}: no latency table; build one with: linas build-lut "
                             "experiments/configs/hat_cpu_lut.yaml")
        data = json.loads(p.read_text())
        return cls(data["entries"], data["meta"])


@torch.inference_mode()
def build_table(space: SearchSpace, vocab_size: int, qkv_dim: int, beam: int = 4, warmup: int = 2,
                repeats: int = 7, statistic: str = "min", progress: Callable[[str], None] | None = None
                ) -> LatencyTable:
    """Measure every block choice of ``space`` on this device (random weights: latency does not depend on them)."""
    torch.manual_seed(0)
    choices = {v.name: v.choices for v in space.variables}
    embeds_e, embeds_d = choices["encoder_embed_dim"], choices["decoder_embed_dim"]
    ffns = sorted(set(choices["encoder_ffn_embed_dim_0"]) | set(choices["decoder_ffn_embed_dim_0"]))
    heads = sorted(set(choices["encoder_self_attention_heads_0"]) | set(choices["decoder_self_attention_heads_0"])
                   | set(choices["decoder_ende_attention_heads_0"]))
    ks = sorted({ende_layers(v) for v in choices["decoder_arbitrary_ende_attn_0"]})
    n = WORKLOAD_TOKENS
    entries: dict[str, float] = {}
    src = source_tokens(vocab_size)
    mask = torch.zeros(1, 1, 1, n, dtype=torch.bool)
    beam_mask = mask.expand(beam, 1, 1, n)

    for e in embeds_e:
        emb = torch.nn.Embedding(vocab_size, e)
        entries[f"encoder_embed|{e}"] = time_ms(lambda: emb(src) * 1.0, warmup, repeats, statistic=statistic)
        x = torch.randn(1, n, e)
        for f, h in itertools.product(ffns, heads):
            layer = EncoderLayer(e, f, qkv_dim, h, 0.0).eval()
            entries[_encoder_key(e, f, h)] = time_ms(lambda: layer(x, mask), warmup, repeats, statistic=statistic)
    for d in embeds_d:
        emb = torch.nn.Embedding(vocab_size, d)
        tok = torch.zeros(beam, 1, dtype=torch.long)

        def io_steps() -> None:
            for _ in range(n):
                y = emb(tok)
                lp = torch.log_softmax(torch.nn.functional.linear(y, emb.weight)[:, -1], -1)
                lp.view(-1).topk(beam)

        entries[f"decoder_io|{d}"] = time_ms(io_steps, warmup, repeats, statistic=statistic)
        for e in embeds_e:
            memory = [torch.randn(beam, n, e) for _ in range(max(ks))]
            for f, hs, he, k in itertools.product(ffns, heads, heads, ks):
                layer = DecoderLayer(d, e, f, qkv_dim, hs, he, k, 0.0).eval()
                rows = torch.arange(beam)

                def steps() -> None:
                    cache: dict[str, torch.Tensor] = {}
                    x = torch.randn(beam, 1, d)
                    for _ in range(n):
                        layer(x, memory, beam_mask, None, cache)
                        for key in cache:
                            cache[key] = cache[key].index_select(0, rows)

                entries[_decoder_key(d, e, f, hs, he, k)] = time_ms(steps, warmup, repeats, statistic=statistic)
        if progress:
            progress(f"decoder width {d}: {len(entries)} entries")
    meta = {"space": space.name, "vocab_size": vocab_size, "qkv_dim": qkv_dim, "beam": beam, "tokens": n,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "statistic": statistic,
            "warmup": warmup, "repeats": repeats,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return LatencyTable(entries, meta)


class LutConfig(StrictModel):
    """``linas build-lut`` settings for ``supernet: hat``."""

    supernet: str
    space: str = "hat_cpu"
    vocab_size: int = Field(8000, gt=4)
    qkv_dim: int = Field(192, gt=0)
    beam: int = Field(4, gt=0)
    threads: int = Field(1, gt=0)
    warmup: int = Field(2, ge=0)
    repeats: int = Field(7, gt=0)
    statistic: Literal["min", "trimmed_mean"] = "min"
    output: str


@lut_builders.register("hat")
def build_lut(settings: dict[str, Any], config_path: Path) -> Path:
    """Entry point of ``linas build-lut CONFIG.yaml`` for ``supernet: hat``."""
    cfg = parse(LutConfig, settings, str(config_path))
    torch.set_num_threads(cfg.threads)
    table = build_table(get_space(cfg.space), cfg.vocab_size, cfg.qkv_dim, cfg.beam, cfg.warmup, cfg.repeats,
                        cfg.statistic, progress=print)
    table.save(cfg.output)
    print(f"wrote {len(table.entries)} entries to {cfg.output}")
    return Path(cfg.output)
