"""Greedy and beam-search decoding, incremental (cached keys and values) by default.

The beam search follows fairseq's, which HAT reports with: ``2 * beam`` candidates per
step, a hypothesis ends when ``</s>`` is among the best ``beam`` candidates, a sentence
is done once it has ``beam`` finished hypotheses, and finished hypotheses are ranked by
``log-probability / length ** len_penalty``. With ``beam=1`` it reduces to greedy search.

Both searches run on the device of the source tokens (the model's weights must be there
too); the few values the loop needs on the host are copied once per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from supernets.transformer.model import TransformerModel


def max_length(src: Tensor, pad_id: int, a: float = 1.5, b: int = 10) -> int:
    """Longest output allowed for a batch: ``a * longest source + b`` tokens (``</s>`` included)."""
    return int(src.ne(pad_id).sum(1).max().item() * a + b)


def _step_logprobs(model: TransformerModel, tokens: Tensor, enc, cache, step: int, last: bool) -> Tensor:
    logits = model.decode(tokens, enc, cache)[:, -1]
    lprobs = torch.log_softmax(logits.float(), dim=-1)
    lprobs[:, model.pad_id] = float("-inf")
    lprobs[:, model.bos_id] = float("-inf")
    if last:
        # Out of room: every hypothesis must end here.
        eos = lprobs[:, model.eos_id].clone()
        lprobs.fill_(float("-inf"))
        lprobs[:, model.eos_id] = eos
    return lprobs


@torch.no_grad()
def greedy_search(model: TransformerModel, src: Tensor, use_cache: bool = True,
                  max_len: int | None = None) -> list[list[int]]:
    """Most probable next token at every step; token ids without ``<s>``/``</s>``."""
    max_len = max_len or max_length(src, model.pad_id)
    enc = model.encode(src)
    b = src.shape[0]
    tokens = torch.full((b, 1), model.bos_id, dtype=torch.long, device=src.device)
    cache = model.new_cache() if use_cache else None
    ended = torch.zeros(b, dtype=torch.bool, device=src.device)
    for step in range(max_len):
        nxt = _step_logprobs(model, tokens, enc, cache, step, step == max_len - 1).argmax(-1)
        nxt = nxt.masked_fill(ended, model.pad_id)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        ended |= nxt.eq(model.eos_id)
        if ended.all():
            break
    return [_strip(row.tolist(), model) for row in tokens[:, 1:]]


@torch.no_grad()
def beam_search(model: TransformerModel, src: Tensor, beam: int = 4, len_penalty: float = 0.6,
                use_cache: bool = True, max_len: int | None = None) -> list[list[int]]:
    """Best hypothesis of each source sentence; token ids without ``<s>``/``</s>``."""
    max_len = max_len or max_length(src, model.pad_id)
    bsz, device = src.shape[0], src.device
    enc = model.encode(src).index_select(torch.arange(bsz, device=device).repeat_interleave(beam))
    tokens = torch.full((bsz * beam, 1), model.bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(bsz, beam, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    cache = model.new_cache() if use_cache else None
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(bsz)]
    done = torch.zeros(bsz, dtype=torch.bool, device=device)
    offsets = (torch.arange(bsz, device=device) * beam)[:, None]

    for step in range(max_len):
        lprobs = _step_logprobs(model, tokens, enc, cache, step, step == max_len - 1)
        vocab = lprobs.shape[-1]
        cand = (scores.view(-1, 1) + lprobs).view(bsz, beam * vocab)
        cand_scores, cand_idx = cand.topk(min(2 * beam, cand.shape[1]), dim=1)
        cand_beam, cand_tok = cand_idx // vocab, cand_idx % vocab
        is_eos = cand_tok.eq(model.eos_id) & torch.isfinite(cand_scores)

        # Finalize hypotheses ending among the best `beam` candidates.
        ends = is_eos[:, :beam].nonzero().tolist()
        if ends:
            end_beams, end_scores = cand_beam[:, :beam].tolist(), cand_scores[:, :beam].tolist()
        for b, j in ends:
            if len(finished[b]) >= beam:  # the sentence is done
                continue
            row = b * beam + end_beams[b][j]
            hyp = tokens[row, 1:].tolist()
            finished[b].append((end_scores[b][j] / (step + 1) ** len_penalty, hyp))
        done |= torch.tensor([len(f) >= beam for f in finished], device=device)
        if done.all() or step == max_len - 1:
            break

        # Continue with the best `beam` candidates that did not end.
        rank = torch.arange(cand_idx.shape[1], device=device).expand_as(cand_idx)
        order = (rank + is_eos.long() * cand_idx.shape[1]).argsort(dim=1)[:, :beam]
        keep_beam = cand_beam.gather(1, order)
        scores = cand_scores.gather(1, order).masked_fill(is_eos.gather(1, order), float("-inf"))
        scores = scores.masked_fill(done[:, None], float("-inf"))
        rows = (offsets + keep_beam).view(-1)
        tokens = torch.cat([tokens.index_select(0, rows), cand_tok.gather(1, order).view(-1, 1)], dim=1)
        if cache is not None:
            model.reorder_cache(cache, rows)

    return [_strip(max(f)[1], model) if f else [] for f in finished]


def _strip(ids: Sequence[int], model: TransformerModel) -> list[int]:
    out = []
    for t in ids:
        if t == model.eos_id or t == model.pad_id:
            break
        out.append(int(t))
    return out


def generate(model: TransformerModel, src: Tensor, beam: int = 4, len_penalty: float = 0.6,
             use_cache: bool = True) -> list[list[int]]:
    """Beam search, or greedy search when ``beam`` is 0 or 1."""
    if beam <= 1:
        return greedy_search(model, src, use_cache=use_cache)
    return beam_search(model, src, beam, len_penalty, use_cache=use_cache)
