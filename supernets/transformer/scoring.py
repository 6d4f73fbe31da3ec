"""Translation quality: corpus BLEU (sacrebleu, detokenized) and validation loss.

Both run on the device of the model's weights; batches are moved there as they come.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from supernets.transformer.data import Batch, collate, decode, encode, token_batches
from supernets.transformer.decoding import generate
from supernets.transformer.model import PAD, TransformerModel


@dataclass(frozen=True)
class BleuResult:
    """Corpus BLEU and sacrebleu's signature of how it was computed."""

    score: float
    signature: str
    text: str


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> BleuResult:
    """sacrebleu's default corpus BLEU (13a tokenization, exp smoothing) of detokenized text."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return BleuResult(float(result.score), str(metric.get_signature()), str(result))


@torch.no_grad()
def translate(model: TransformerModel, tokenizer, sources: Sequence[str], beam: int = 4, len_penalty: float = 0.6,
              max_tokens: int = 2048, use_cache: bool = True, max_src_len: int = 256) -> list[str]:
    """Detokenized translations of ``sources``, in their order (batched by length)."""
    was_training = model.training
    model.eval()
    device = model.embed.weight.device
    ids = encode(tokenizer, sources, max_len=max_src_len)
    lens = [len(x) for x in ids]
    # The beam multiplies the decoder batch, so batches hold fewer sentences.
    batches = token_batches(lens, lens, max(max_tokens // max(beam, 1), max(lens)))
    out: list[str] = [""] * len(sources)
    for index in batches:
        batch = collate([ids[i] for i in index], [ids[i] for i in index], index)
        hyps = generate(model, batch.src.to(device, non_blocking=True), beam, len_penalty, use_cache)
        for i, text in zip(index, decode(tokenizer, hyps)):
            out[i] = text
    model.train(was_training)
    return out


def make_batches(tokenizer, sources: Sequence[str], targets: Sequence[str], max_tokens: int,
                 max_len: int = 256, rng: np.random.Generator | None = None) -> list[Batch]:
    """Padded batches of a parallel corpus (length-sorted; shuffled with ``rng``)."""
    return batches_of_ids(encode(tokenizer, sources, max_len), encode(tokenizer, targets, max_len), max_tokens, rng)


def batches_of_ids(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], max_tokens: int,
                   rng: np.random.Generator | None = None) -> list[Batch]:
    """Padded batches of already-encoded pairs (length-sorted; shuffled with ``rng``)."""
    groups = token_batches([len(x) for x in src], [len(x) for x in tgt], max_tokens, rng)
    return [collate([src[i] for i in g], [tgt[i] for i in g], g) for g in groups]


@torch.no_grad()
def validation_loss(model: TransformerModel, batches: Sequence[Batch]) -> float:
    """Mean negative log-likelihood per target token (nats, no label smoothing)."""
    was_training = model.training
    model.eval()
    device = model.embed.weight.device
    total, count = 0.0, 0
    for b in batches:
        src, prev, target = (t.to(device, non_blocking=True) for t in (b.src, b.prev, b.target))
        logits = model(src, prev)
        total += float(F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD,
                                       reduction="sum"))
        count += b.target_tokens
    model.train(was_training)
    return total / max(count, 1)
