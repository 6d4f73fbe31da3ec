"""The SuperTransformer training recipe: which SubTransformers an update trains, and their losses.

Two stages (issue 11):

1. the largest SubTransformer alone, with label-smoothed cross entropy, until its
   validation loss flattens (:func:`stage1_done`). Training one random SubTransformer
   per update, as the first recipe did, trains decoder layer 6 in 1/6 of the updates
   and wide FFN columns in 1/3, so the largest network was almost never trained;
2. the sandwich rule with in-place distillation (BigNAS, AttentiveNAS): every update
   trains the largest on the labels, then the smallest and ``n`` random ones against the
   largest's detached output distribution (:func:`distillation_loss`); the gradients of
   all of them are summed and one optimizer step taken.

Optionally dropout is scaled with the sampled width, as HAT does (``p * width /
super width``), since narrow subnets need less regularisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from linas.space import SearchSpace
from supernets.transformer.model import PAD, SuperTransformer

LARGEST, SMALLEST, RANDOM = "largest", "smallest", "random"


def label_smoothed_loss(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Summed label-smoothed cross entropy over non-padding target tokens."""
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD,
                           label_smoothing=eps, reduction="sum")


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor,
                      target: torch.Tensor) -> torch.Tensor:
    """Summed KL(teacher || student) over non-padding target tokens.

    ``teacher_probs`` must already be detached (the largest's softmax): no gradient may
    reach the teacher through the students' losses. KL and soft cross entropy differ by
    the teacher's entropy, a constant here, so the gradients are those of soft CE; KL is
    reported because it is 0 when a student matches its teacher.
    """
    if teacher_probs.requires_grad:
        raise ValueError("teacher_probs must be detached")
    keep = target.ne(PAD)
    logq = F.log_softmax(student_logits.float(), dim=-1)[keep]
    p = teacher_probs.float()[keep]
    # xlogy: 0 * log 0 = 0 for tokens the teacher gives no mass.
    return (torch.special.xlogy(p, p) - p * logq).sum()


def sandwich(space: SearchSpace, largest: Mapping[str, Any], smallest: Mapping[str, Any], n_random: int,
             rng: np.random.Generator) -> list[tuple[str, dict[str, Any]]]:
    """``[(role, config)]`` of one sandwich update: the largest first (it is the teacher the
    others distil from, so it must run first), then the smallest, then ``n_random`` sampled."""
    sampled = [space.to_config(g) for g in space.sample(rng, n_random)] if n_random else []
    return [(LARGEST, dict(largest)), (SMALLEST, dict(smallest))] + [(RANDOM, c) for c in sampled]


def stage1_done(history: Sequence[float], step: int, max_updates: int, patience: int,
                min_delta: float) -> str | None:
    """Why stage 1 ends now (a sentence for the log), or ``None`` to go on.

    ``history``: the largest's validation losses of stage 1, oldest first. Stage 1 ends at
    ``max_updates``, or when the last ``patience`` validations are all no better than
    ``min_delta`` below the best one before them (the curve has flattened).
    """
    if step >= max_updates:
        return f"stage 1 reached its {max_updates} updates"
    if patience > 0 and len(history) > patience:
        best_before = min(history[:-patience])
        recent = min(history[-patience:])
        if recent > best_before - min_delta:
            return (f"valid loss of the largest flattened: best of the last {patience} validations "
                    f"{recent:.4f} is not {min_delta} below the earlier best {best_before:.4f}")
    return None


def scale_dropout(net: SuperTransformer, base: float) -> None:
    """Dropout ``base * active width / super width`` for the encoder and the decoder (HAT's calc_dropout)."""
    enc = base * net.active.encoder_embed_dim / net.arch.encoder_embed_dim
    dec = base * net.active.decoder_embed_dim / net.arch.decoder_embed_dim
    # The embedding dropout is shared by both sides; HAT's encoder and decoder each have
    # their own, here the larger of the two rates is used for it.
    net.dropout.p = max(enc, dec)
    for layer in net.encoder:
        layer.dropout.p = enc
    for layer in net.decoder:
        layer.dropout.p = dec


def reset_dropout(net: nn.Module, base: float) -> None:
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = base
