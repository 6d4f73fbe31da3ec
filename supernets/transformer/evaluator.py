"""The ``hat_supernet`` evaluator: BLEU, latency, MACs and params of SubTransformers.

The trained supernet, its tokenizer and the evaluation sentences are loaded once; each
evaluation activates the configuration, extracts the SubTransformer, translates the
(fixed-seed subset of the) corpus with beam search and scores it with sacrebleu.

Example experiment config::

    evaluator:
      name: hat_supernet
      options: {checkpoint: results/hat/multi30k, subset: 300, beam: 4}

``hat_supernet_loss`` is the cheap alternative: validation loss instead of BLEU.

``latency: device`` takes latency from HAT's measurements on a real device instead
(``latency_device``: ``raspberrypi``, ``xeon`` or ``titanxp``; HAT's latency predictor
fitted to its published WMT'14 En-De measurements, :mod:`linas.benchmarks.hat_latency`).

``device`` (default ``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; or ``cpu``,
``cuda``, ``cuda:N``) is where the supernet, decoding, the validation loss and measured
latency run; it is part of the identity, so GPU and CPU measurements never mix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, PositiveInt

from linas import registry
from linas.config_io import parse
from linas.errors import ConfigError
from linas.evaluator import Evaluator, evaluators
from linas.objectives import Objective
from linas.space import SearchSpace
from supernets.devices import resolve_device
from supernets.transformer.checkpoint import load_supernet
from supernets.transformer.data import CorpusSpec, load_corpus, pairs, subset_indices
from supernets.transformer.latency import LatencyTable, device_label, measure_latency
from supernets.transformer.scoring import corpus_bleu, make_batches, translate, validation_loss

DEFAULT_CORPUS = {"src": "../shared/data/multi30k/val.en.gz", "tgt": "../shared/data/multi30k/val.de.gz"}


@evaluators.register("hat_supernet")
class HatSupernetEvaluator(Evaluator):
    """BLEU (sacrebleu, beam search), latency (lookup-table proxy or measured), MACs and params.

    Options: ``checkpoint`` (directory of ``supernet.pt`` and ``tokenizer/``), ``corpus``
    (``{src, tgt}`` files or ``{hub: ...}``; default Multi30k val), ``subset`` (number of
    sentence pairs drawn with ``subset_seed``; all when None), ``beam`` (1: greedy),
    ``len_penalty``, ``latency`` (``"lut"``, ``"measured"`` or ``"device"``), ``lut`` (table path),
    ``latency_device`` and ``latency_task`` (with ``latency: device``: whose measurements),
    ``threads`` (torch's CPU threads), ``max_tokens`` (decoding batch size), ``device``
    (``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; auto: a GPU when there is one).

    At fidelity ``f < 1``, BLEU (or the loss) is measured on a fixed-seed random
    ``round(f * n)`` of the ``n`` sentence pairs, nested: a lower fidelity's pairs are among
    a higher one's (:meth:`pairs_at`).
    """

    metrics: ClassVar[tuple[Objective, ...]] = (
        Objective("bleu", "max", "BLEU"), Objective("latency", "min", "ms"),
        Objective("macs", "min", "M"), Objective("params", "min", "M"))
    supports_fidelity = True

    class Options(registry.Options):
        """Validated by ``evaluators.build`` before the checkpoint is read."""

        checkpoint: str = "results/hat/multi30k"
        corpus: CorpusSpec = Field(default_factory=lambda: CorpusSpec(**DEFAULT_CORPUS))
        subset: PositiveInt | None = 300  # sentence pairs; null: all
        subset_seed: int = 0
        beam: PositiveInt = 4  # 1: greedy search
        len_penalty: float = 0.6
        latency: Literal["lut", "measured", "device"] = "lut"
        lut: str = "results/hat/latency_lut_cpu.json"
        latency_device: Literal["raspberrypi", "xeon", "titanxp"] = "raspberrypi"
        latency_task: str = "wmt14ende"
        threads: PositiveInt | None = 1
        max_tokens: PositiveInt = 4096
        src_lang: str = "en"
        tgt_lang: str = "de"
        device: str = "auto"

    def __init__(self, space: SearchSpace, checkpoint: str = "results/hat/multi30k",
                 corpus: CorpusSpec | Mapping[str, Any] | None = None, subset: int | None = 300,
                 subset_seed: int = 0, beam: int = 4, len_penalty: float = 0.6, latency: str = "lut",
                 lut: str = "results/hat/latency_lut_cpu.json", latency_device: str = "raspberrypi",
                 latency_task: str = "wmt14ende", threads: int | None = 1, max_tokens: int = 4096,
                 src_lang: str = "en", tgt_lang: str = "de", device: str = "auto") -> None:
        super().__init__(space)
        spec = parse(CorpusSpec, corpus if corpus is not None else DEFAULT_CORPUS, "hat_supernet: corpus")
        self.device = resolve_device(device, "hat_supernet")
        if threads:
            torch.set_num_threads(threads)
        self.net, self.tokenizer, self.meta = load_supernet(checkpoint)
        self.net.to(self.device)
        if self.meta["space"] != space.name:
            raise ConfigError(f"hat_supernet: the checkpoint was trained on space '{self.meta['space']}', "
                              f"but the experiment searches '{space.name}'")
        src, tgt = pairs(load_corpus(spec, src_lang, tgt_lang), src_lang, tgt_lang)
        keep = subset_indices(len(src), subset, subset_seed)
        src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
        self.sources, self.references = src, tgt
        # A fixed order of the pairs: fidelity f keeps the first round(f * n), so a lower
        # fidelity's pairs are always among a higher one's.
        self._fidelity_order = np.random.default_rng([subset_seed, 1]).permutation(len(src))
        self._at_fidelity: dict[float, Any] = {}
        self.beam, self.len_penalty, self.max_tokens = beam, len_penalty, max_tokens
        self.latency_mode = latency
        self.table = LatencyTable.load(lut) if latency == "lut" else None
        self.device_latency = None
        if latency == "device":
            from linas.benchmarks.hat_latency import DeviceLatency

            self.device_latency = DeviceLatency(latency_device, task=latency_task)
        data_id = json.dumps([spec.model_dump(), subset, subset_seed, src_lang, tgt_lang], sort_keys=True)
        self._identity = (f"hat_supernet:ckpt={self.meta['sha256']}:data={_short_hash(data_id)}:"
                          f"beam={beam}:lenpen={len_penalty}:latency={self._latency_identity(lut)}:"
                          f"device={device_label(self.device)}:threads={torch.get_num_threads()}")

    def _latency_identity(self, lut: str) -> str:
        if self.device_latency is not None:
            return self.device_latency.identity
        if self.table is None:
            return "measured"
        return "lut-" + _short_hash(json.dumps(self.table.entries, sort_keys=True))

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def signature(self) -> str:
        """sacrebleu's signature of the BLEU this evaluator reports."""
        return corpus_bleu(["a"], ["a"]).signature

    def subnet(self, config: Mapping[str, Any]):
        """The extracted SubTransformer of ``config`` (raises ConfigError when it is not in the space)."""
        self.net.set_active_subnet(config)
        return self.net.get_active_subnet().to(self.device).eval()

    def cost(self, config: Mapping[str, Any]) -> dict[str, float]:
        """MACs and params (millions) and the latency of ``config``, without translating."""
        arch = self.net.arch_of(config)
        out = {"macs": arch.macs() / 1e6, "params": arch.params() / 1e6}
        if self.device_latency is not None:
            out["latency"] = self.device_latency(config)
        elif self.table is not None:
            out["latency"] = self.table.predict(arch)
        else:
            out["latency"] = measure_latency(self.subnet(config))
        return out

    def pairs_at(self, fidelity: float = 1.0) -> tuple[list[str], list[str]]:
        """Sources and references of an evaluation at ``fidelity``: all the pairs at 1, else a
        fixed-seed random ``round(fidelity * n)`` of them (at least one), nested across fidelities,
        in corpus order."""
        if fidelity >= 1:
            return self.sources, self.references
        keep = np.sort(self._fidelity_order[: max(1, round(fidelity * len(self.sources)))])
        return [self.sources[i] for i in keep], [self.references[i] for i in keep]

    def quality(self, model, fidelity: float = 1.0) -> dict[str, float]:
        sources, references = self.pairs_at(fidelity)
        hyps = translate(model, self.tokenizer, sources, self.beam, self.len_penalty, self.max_tokens)
        return {"bleu": corpus_bleu(hyps, references).score}

    def evaluate_one(self, config: Mapping[str, Any], fidelity: float = 1.0) -> dict[str, float]:
        model = self.subnet(config)
        out = self.cost(config)
        out.update(self.quality(model, fidelity))
        return out


@evaluators.register("hat_supernet_loss")
class HatSupernetLossEvaluator(HatSupernetEvaluator):
    """As ``hat_supernet`` with validation loss (nats per target token) instead of BLEU: much cheaper."""

    metrics: ClassVar[tuple[Objective, ...]] = (
        Objective("valid_loss", "min", "nats/token"), Objective("latency", "min", "ms"),
        Objective("macs", "min", "M"), Objective("params", "min", "M"))

    def __init__(self, space: SearchSpace, **options: Any) -> None:
        super().__init__(space, **options)
        self.batches = make_batches(self.tokenizer, self.sources, self.references, self.max_tokens)
        self._identity = self._identity.replace("hat_supernet:", "hat_supernet_loss:", 1)

    def quality(self, model, fidelity: float = 1.0) -> dict[str, float]:
        if fidelity >= 1:
            return {"valid_loss": validation_loss(model, self.batches)}
        if fidelity not in self._at_fidelity:
            self._at_fidelity[fidelity] = make_batches(self.tokenizer, *self.pairs_at(fidelity), self.max_tokens)
        return {"valid_loss": validation_loss(model, self._at_fidelity[fidelity])}


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
