"""Latency of SubTransformers: HAT's measurement protocol and a deterministic lookup-table proxy.

Measured (:func:`measure_latency`), as HAT: batch 1, a 30-token source, the encoder
forward plus 30 incremental decoder steps with the beam (the cache reordered every step
as in beam search), a few warm-up runs, then the trimmed mean of repeated runs. It runs on
the device of the model's weights; on a GPU every timed run is fenced by
``torch.cuda.synchronize()``.

Proxy (:class:`LatencyTable`): the same workload measured once per building block and
choice (an encoder layer per width/FFN/heads, a decoder layer's 30 steps per widths,
FFN, heads and attended encoder layers, the embedding and output projection per width);
a SubTransformer's proxy latency is the sum of its blocks' entries. It is deterministic
once built, so search algorithms can be compared on equal terms.
``linas build-lut CONFIG.yaml`` (``supernet: hat``) builds it on the CPU, or on the GPU
its ``device`` names; the table's ``meta`` names the device it was built on.
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
from linas.errors import ConfigError, LinasError
from linas.extensions import lut_builders
from linas.space import SearchSpace
from linas.spaces import get_space
from supernets.devices import resolve_device
from supernets.transformer.arch import WORKLOAD_TOKENS, Arch, arch_of, ende_layers
from supernets.transformer.layers import DecoderLayer, EncoderLayer
from supernets.transformer.model import TransformerModel


def trimmed_mean(samples: list[float], trim: float = 0.1) -> float:
    """Mean after dropping the ``trim`` fraction of the smallest and of the largest samples."""
    x = np.sort(np.asarray(samples, dtype=float))
    k = int(len(x) * trim)
    return float(x[k: len(x) - k].mean()) if len(x) > 2 * k else float(x.mean())


def device_label(device: torch.device) -> str:
    """``cpu``, or ``cuda:`` and the GPU's name (names the device in an evaluator's identity)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def time_samples(fn: Callable[[], Any], warmup: int = 3, repeats: int = 10,
                 device: torch.device | None = None) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` in milliseconds, after ``warmup`` untimed calls.

    With a CUDA ``device`` each timed call is fenced by ``torch.cuda.synchronize()``, so
    the time holds the GPU's work, not only its launch.
    """
    cuda = device is not None and device.type == "cuda"
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def time_ms(fn: Callable[[], Any], warmup: int = 3, repeats: int = 10, trim: float = 0.1,
            statistic: str = "trimmed_mean", device: torch.device | None = None) -> float:
    """Trimmed mean (or, with ``statistic="min"``, the minimum) wall time of ``fn()`` in ms.

    The minimum is the robust choice on a shared machine, where other work only ever adds time.
    With a CUDA ``device`` the timed calls are fenced by ``torch.cuda.synchronize()``.
    """
    samples = time_samples(fn, warmup, repeats, device)
    return min(samples) if statistic == "min" else trimmed_mean(samples, trim)


def source_tokens(vocab_size: int, length: int = WORKLOAD_TOKENS, seed: int = 0) -> torch.Tensor:
    """A fixed random source sentence ``[1, length]`` ending with ``</s>`` (id 2)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab_size, (1, length), generator=g)
    src[0, -1] = 2
    return src


@torch.inference_mode()
def protocol_run(model: TransformerModel, src: torch.Tensor, steps: int = WORKLOAD_TOKENS, beam: int = 4) -> None:
    """One run of HAT's workload on ``src``'s device: encode, then ``steps`` beam-search decoder steps with a cache."""
    device = src.device
    enc = model.encode(src).index_select(torch.zeros(beam, dtype=torch.long, device=device))
    tokens = torch.full((beam, 1), model.bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(beam, device=device)
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
    """HAT's protocol timed ``repeats`` times: ``{"trimmed_mean": ..., "min": ..., "median": ...}`` in ms.

    It runs on the device of ``model``'s weights.
    """
    was_training = model.training
    model.eval()
    device = model.embed.weight.device
    src = source_tokens(model.arch.vocab_size, seed=seed).to(device)
    samples = time_samples(lambda: protocol_run(model, src, beam=beam), warmup, repeats, device)
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

    def save(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"meta": self.meta, "entries": self.entries}, indent=1, sort_keys=True))
        return p

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        p = Path(path).expanduser()
        if not p.is_file():
            raise LinasError(f"{p}: no latency table; build one with: linas build-lut "
                             "experiments/configs/hat_cpu_lut.yaml")
        data = json.loads(p.read_text())
        return cls(data["entries"], data["meta"])


@torch.inference_mode()
def build_table(space: SearchSpace, vocab_size: int, qkv_dim: int, beam: int = 4, warmup: int = 2,
                repeats: int = 7, statistic: str = "min", progress: Callable[[str], None] | None = None,
                device: str | torch.device = "cpu") -> LatencyTable:
    """Measure every block choice of ``space`` on ``device`` (random weights: latency does not depend on them).

    Every layer and tensor of the workload is created on ``device`` (default the CPU, at
    torch's current thread count); on a GPU every timed run is fenced by
    ``torch.cuda.synchronize()``. ``meta["device"]`` is ``cpu`` or ``cuda:`` and the GPU's name.
    """
    device = torch.device(device)
    torch.manual_seed(0)
    choices = {v.name: v.choices for v in space.variables}
    embeds_e, embeds_d = choices["encoder_embed_dim"], choices["decoder_embed_dim"]
    ffns = sorted(set(choices["encoder_ffn_embed_dim_0"]) | set(choices["decoder_ffn_embed_dim_0"]))
    heads = sorted(set(choices["encoder_self_attention_heads_0"]) | set(choices["decoder_self_attention_heads_0"])
                   | set(choices["decoder_ende_attention_heads_0"]))
    ks = sorted({ende_layers(v) for v in choices["decoder_arbitrary_ende_attn_0"]})
    n = WORKLOAD_TOKENS
    entries: dict[str, float] = {}
    src = source_tokens(vocab_size).to(device)
    mask = torch.zeros(1, 1, 1, n, dtype=torch.bool, device=device)
    beam_mask = mask.expand(beam, 1, 1, n)

    def timed(fn: Callable[[], Any]) -> float:
        return time_ms(fn, warmup, repeats, statistic=statistic, device=device)

    for e in embeds_e:
        emb = torch.nn.Embedding(vocab_size, e).to(device)
        entries[f"encoder_embed|{e}"] = timed(lambda: emb(src) * 1.0)
        x = torch.randn(1, n, e).to(device)
        for f, h in itertools.product(ffns, heads):
            layer = EncoderLayer(e, f, qkv_dim, h, 0.0).eval().to(device)
            entries[_encoder_key(e, f, h)] = timed(lambda: layer(x, mask))
    for d in embeds_d:
        emb = torch.nn.Embedding(vocab_size, d).to(device)
        tok = torch.zeros(beam, 1, dtype=torch.long, device=device)

        def io_steps() -> None:
            for _ in range(n):
                y = emb(tok)
                lp = torch.log_softmax(torch.nn.functional.linear(y, emb.weight)[:, -1], -1)
                lp.view(-1).topk(beam)

        entries[f"decoder_io|{d}"] = timed(io_steps)
        for e in embeds_e:
            memory = [torch.randn(beam, n, e).to(device) for _ in range(max(ks))]
            for f, hs, he, k in itertools.product(ffns, heads, heads, ks):
                layer = DecoderLayer(d, e, f, qkv_dim, hs, he, k, 0.0).eval().to(device)
                rows = torch.arange(beam, device=device)

                def steps() -> None:
                    cache: dict[str, torch.Tensor] = {}
                    x = torch.randn(beam, 1, d, device=device)
                    for _ in range(n):
                        layer(x, memory, beam_mask, None, cache)
                        for key in cache:
                            cache[key] = cache[key].index_select(0, rows)

                entries[_decoder_key(d, e, f, hs, he, k)] = timed(steps)
        if progress:
            progress(f"decoder width {d}: {len(entries)} entries")
    meta = {"space": space.name, "vocab_size": vocab_size, "qkv_dim": qkv_dim, "beam": beam, "tokens": n,
            "device": device_label(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "statistic": statistic, "warmup": warmup, "repeats": repeats,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return LatencyTable(entries, meta)


class LutConfig(StrictModel):
    """``linas build-lut`` settings for ``supernet: hat``.

    ``device`` (default ``cpu``; or ``auto``, ``cuda``, ``cuda:N``) is where the blocks are
    timed; ``threads`` is torch's CPU thread count (``null``: torch's default).
    """

    supernet: str
    space: str = "hat_cpu"
    vocab_size: int = Field(8000, gt=4)
    qkv_dim: int = Field(192, gt=0)
    beam: int = Field(4, gt=0)
    threads: int | None = Field(1, gt=0)
    device: str = "cpu"
    warmup: int = Field(2, ge=0)
    repeats: int = Field(7, gt=0)
    statistic: Literal["min", "trimmed_mean"] = "min"
    output: str


@lut_builders.register("hat")
def build_lut(settings: dict[str, Any], config_path: Path) -> Path:
    """Entry point of ``linas build-lut CONFIG.yaml`` for ``supernet: hat``.

    The blocks are timed on the config's ``device`` (default ``cpu``; ``auto`` is a GPU when
    torch sees one; a GPU asked for where there is none is a :class:`ConfigError`), and the
    table's ``meta["device"]`` names it (``cpu``, or ``cuda:`` and the GPU's name), so a table
    built on a GPU is told from a CPU one. With ``threads: null`` torch keeps its thread count.

    Example config::

        supernet: hat
        space: hat_cpu
        device: cuda
        threads: null
        output: results/hat/latency_lut_gpu.json
    """
    cfg = parse(LutConfig, settings, str(config_path))
    device = resolve_device(cfg.device, str(config_path))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    table = build_table(get_space(cfg.space), cfg.vocab_size, cfg.qkv_dim, cfg.beam, cfg.warmup, cfg.repeats,
                        cfg.statistic, progress=print, device=device)
    path = table.save(cfg.output)
    print(f"wrote {len(table.entries)} entries ({table.meta['device']}) to {path}")
    return path
