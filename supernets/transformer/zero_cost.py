"""The ``zc_hat`` evaluator: zero-cost proxies of SubTransformers of a trained SuperTransformer.

Each evaluation extracts the SubTransformer with its inherited weights and scores it on
one fixed batch of sentence pairs (``batch`` pairs of ``corpus`` drawn with
``batch_seed``; by default Multi30k *train*, so the batch shares nothing with the
validation subset the measured evaluators score). The Transformer analogues of the
proxies of :mod:`supernets.zero_cost`:

- ``grad_norm``, ``snip``: the teacher-forced cross-entropy of the batch (mean per target
  token, padding ignored), one backward pass; sums over the token embedding (shared by
  source, target and output projection) and the weight of every linear layer (attention
  projections, FFN);
- ``naswot``: the binary codes of every FFN's ReLU (encoder and decoder), one sample per
  sentence pair; units at padded positions are left out of the kernel (they would make
  any two padded sentences agree);
- ``synflow``: LayerNorms removed, ``|params|`` in double, an all-ones *embedding* input
  (the data-free input; tokens cannot be all ones) of the batch's padded lengths into the
  encoder and the decoder, no positions, no padding; ``R`` is the sum of the output logits
  (through ``|embedding|``) and the score the log of ``sum |W * dR/dW|``. Attention is
  taken as a uniform average over the allowed keys (:func:`uniform_attention`), so the
  query and key projections get no synflow: exact for self-attention (every position is
  alike), a choice for encoder-decoder attention over several encoder layers (whose
  positive scores ``q k^T`` overflow double precision: the softmax is saturated there).

``jacob_cov`` is left out: the input is discrete (a Jacobian with respect to the
embeddings is possible but not what the proxy was defined on).

Dropout is off for every proxy. Metrics: the four proxies (higher is better, as in the
literature), ``zc_seconds`` (extracting and scoring the subnet), ``macs`` and ``params``
(millions, as the measured evaluators count them).

Experiment config::

    evaluator:
      name: zc_hat
      options: {checkpoint: results/hat/multi30k, batch: 64}   # proxies: [snip]: compute only these
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import types
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, field_validator
from torch import Tensor, nn

from linas import registry
from linas.config_io import parse
from linas.errors import ConfigError
from linas.evaluator import Evaluator, evaluators
from linas.objectives import Objective
from linas.space import SearchSpace
from supernets import zero_cost as zc
from supernets.devices import resolve_device
from supernets.transformer.checkpoint import load_supernet
from supernets.transformer.data import Batch, CorpusSpec, collate, encode, load_corpus, pairs, subset_indices
from supernets.transformer.latency import device_label
from supernets.transformer.layers import Attention
from supernets.transformer.model import PAD, TransformerModel

PROXIES = ("synflow", "grad_norm", "snip", "naswot")
VERSION = 1
DEFAULT_CORPUS = {"src": "../shared/data/multi30k/train.en.gz", "tgt": "../shared/data/multi30k/train.de.gz"}


def proxy_weights(model: nn.Module) -> list[Tensor]:
    """The token embedding and every linear layer's weight."""
    return zc.weights_of(model, (nn.Embedding, nn.Linear))


def uniform_attention(self: Attention, query: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Attention with uniform weights: the context is the mean of ``v`` over the keys.

    For synflow's all-ones input every position of a layer carries the same vector, so
    self-attention's scores are constant along each row and this is exact (and their
    gradient is zero). Encoder-decoder attention over the last k > 1 encoder layers sees
    different keys per layer; there this is a choice, not the softmax, whose positive
    scores ``q k^T`` overflow even double precision a few layers deep."""
    b, tq, _ = query.shape
    context = v.mean(1, keepdim=True).expand(b, tq, v.shape[-1])
    return self.out_proj(context, out_features=query.shape[-1])


def synflow_output(model: TransformerModel, src_len: int, tgt_len: int) -> Tensor:
    """Logits of the (positive, normalization-free) model for all-ones embeddings ``[1, len, dim]``.

    Attention runs as :func:`uniform_attention` (exact for this input).
    """
    for m in model.modules():
        if isinstance(m, Attention):
            m.forward = types.MethodType(uniform_attention, m)
    a = model.active
    dtype, device = model.embed.weight.dtype, model.embed.weight.device
    x = torch.ones(1, src_len, a.encoder_embed_dim, dtype=dtype, device=device)
    pad = torch.zeros(1, 1, 1, src_len, dtype=torch.bool, device=device)
    layers = []
    for layer in model.encoder[: a.encoder_layers]:
        x = layer(x, pad)
        layers.append(x)
    y = torch.ones(1, tgt_len, a.decoder_embed_dim, dtype=dtype, device=device)
    causal = torch.ones(tgt_len, tgt_len, dtype=torch.bool, device=device).triu(1)
    for layer in model.decoder[: a.decoder_layers]:
        y = layer(y, layers, pad, causal)
    return F.linear(y, model.embed.weight[:, : a.decoder_embed_dim])


def naswot_codes(model: TransformerModel, batch: Batch) -> tuple[Tensor, Tensor]:
    """``(codes, mask)`` ``[B, units]`` of every FFN ReLU, masked at padded positions."""
    a = model.active
    enc = [layer.ffn.fc2 for layer in model.encoder[: a.encoder_layers]]
    dec = [layer.ffn.fc2 for layer in model.decoder[: a.decoder_layers]]
    # fc2's input is relu(fc1(x)): positive exactly where the pre-activation is.
    with zc.ActivationCodes(enc) as enc_codes, zc.ActivationCodes(dec) as dec_codes, torch.no_grad():
        model(batch.src, batch.prev)
    codes, masks = [], []
    for parts, tokens in ((enc_codes.parts, batch.src), (dec_codes.parts, batch.target)):
        keep = tokens.ne(PAD).to(torch.uint8)[:, :, None]
        for p in parts:
            codes.append(p.reshape(p.shape[0], -1))
            masks.append(keep.expand_as(p).reshape(p.shape[0], -1))
    return torch.cat(codes, 1), torch.cat(masks, 1)


def hat_proxies(model: TransformerModel, batch: Batch, proxies: tuple[str, ...] = PROXIES
                ) -> tuple[dict[str, float], dict[str, float]]:
    """``(proxy scores, seconds per proxy)`` of an extracted SubTransformer on ``batch`` (on its device;
    only the ``proxies`` named)."""
    times: dict[str, float] = {}
    out: dict[str, float] = {}
    was_training = model.training
    model.eval()  # dropout off; no batch statistics in a Transformer
    weights = proxy_weights(model)

    def loss() -> Tensor:
        logits = model(batch.src, batch.prev)
        return F.cross_entropy(logits.flatten(0, 1), batch.target.flatten(), ignore_index=PAD)

    gradient = [p for p in ("grad_norm", "snip") if p in proxies]
    if gradient:
        out.update(zc.gradient_proxies(loss, weights, times, gradient))
    if "naswot" in proxies:
        with zc.timed(times, "naswot"):
            out["naswot"] = zc.naswot_score(*naswot_codes(model, batch))
    if "synflow" in proxies:
        with zc.timed(times, "synflow"):
            net = zc.make_positive(zc.remove_modules(copy.deepcopy(model), (nn.LayerNorm,))).eval()
            out["synflow"] = zc.log_score(zc.synflow_score(
                proxy_weights(net), synflow_output(net, batch.src.shape[1], batch.prev.shape[1])))
    model.train(was_training)
    return out, times


@evaluators.register("zc_hat")
class ZeroCostHatEvaluator(Evaluator):
    """Zero-cost proxies (synflow, grad_norm, snip, naswot) of SubTransformers, their cost, MACs and params."""

    metrics: ClassVar[tuple[Objective, ...]] = tuple(Objective(p, "max") for p in PROXIES) + (
        Objective("zc_seconds", "min", "s"), Objective("macs", "min", "M"), Objective("params", "min", "M"))

    class Options(registry.Options):
        checkpoint: str = "results/hat/multi30k"
        corpus: CorpusSpec = Field(default_factory=lambda: CorpusSpec(**DEFAULT_CORPUS))
        batch: PositiveInt = 64  # sentence pairs in the fixed batch
        batch_seed: int = 0
        max_len: PositiveInt = 64  # tokens per sentence (longer ones are cut)
        threads: PositiveInt | None = 1
        src_lang: str = "en"
        tgt_lang: str = "de"
        device: str = "auto"
        proxies: list[str] | None = None  # compute only these (default: all of PROXIES)

        @field_validator("proxies")
        @classmethod
        def _known_proxies(cls, v: list[str] | None) -> list[str] | None:
            zc.check_proxies(v, PROXIES)
            return v

    def __init__(self, space: SearchSpace, checkpoint: str = "results/hat/multi30k",
                 corpus: CorpusSpec | Mapping[str, Any] | None = None, batch: int = 64, batch_seed: int = 0,
                 max_len: int = 64, threads: int | None = 1, src_lang: str = "en", tgt_lang: str = "de",
                 device: str = "auto", proxies: list[str] | None = None) -> None:
        super().__init__(space)
        try:
            self.proxies = zc.check_proxies(proxies, PROXIES)
        except ValueError as exc:
            raise ConfigError(f"zc_hat: proxies: {exc}") from None
        if self.proxies != PROXIES:  # this instance measures fewer metrics than the class declares
            self.metrics = tuple(m for m in type(self).metrics if m.name not in PROXIES or m.name in self.proxies)
        spec = parse(CorpusSpec, corpus if corpus is not None else DEFAULT_CORPUS, "zc_hat: corpus")
        self.device = resolve_device(device, "zc_hat")
        if threads:
            torch.set_num_threads(threads)
        self.net, self.tokenizer, self.meta = load_supernet(checkpoint)
        self.net.to(self.device)
        if self.meta["space"] != space.name:
            raise ConfigError(f"zc_hat: the checkpoint was trained on space '{self.meta['space']}', "
                              f"but the experiment searches '{space.name}'")
        src, tgt = pairs(load_corpus(spec, src_lang, tgt_lang), src_lang, tgt_lang)
        keep = subset_indices(len(src), batch, batch_seed)
        src_ids = encode(self.tokenizer, [src[i] for i in keep], max_len)
        tgt_ids = encode(self.tokenizer, [tgt[i] for i in keep], max_len)
        b = collate(src_ids, tgt_ids, keep)
        self.batch = Batch(b.src.to(self.device), b.prev.to(self.device), b.target.to(self.device), b.index)
        data_id = json.dumps([spec.model_dump(), batch, batch_seed, max_len, src_lang, tgt_lang], sort_keys=True)
        self._identity = (f"zc_hat:v{VERSION}:ckpt={self.meta['sha256']}:"
                          f"data={hashlib.sha256(data_id.encode()).hexdigest()[:12]}:"
                          f"device={device_label(self.device)}"
                          + ("" if self.proxies == PROXIES else f":proxies={','.join(self.proxies)}"))

    @property
    def identity(self) -> str:
        return self._identity

    def evaluate_one(self, config: Mapping[str, Any]) -> dict[str, float]:
        start = time.perf_counter()
        self.net.set_active_subnet(config)
        model = self.net.get_active_subnet().to(self.device)
        out, _ = hat_proxies(model, self.batch, self.proxies)
        out["zc_seconds"] = time.perf_counter() - start
        arch = self.net.arch_of(config)
        out.update(macs=arch.macs() / 1e6, params=arch.params() / 1e6)
        return out
