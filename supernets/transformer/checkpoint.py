"""Saving and loading a trained SuperTransformer with its tokenizer.

A checkpoint directory holds

- ``supernet.pt``: the weights (fp16 by default, to keep the file small), the space name,
  the widths that are not search variables, the update count and the training settings;
- ``tokenizer/``: the shared subword tokenizer (``save_pretrained``);
- ``train_state/`` (training only): fp32 weights, Adam moments and the run's position,
  in shards small enough to commit (see :mod:`supernets.transformer.train_state`).

``positions`` in ``supernet.pt`` says how sinusoidal positions were computed: ``"sliced"``
(at the SuperTransformer's width, sliced to the active one, as HAT). Checkpoints of the
first recipe have no entry; they computed positions at the active width and are loaded
that way, so their subnets score as they did.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from linas.errors import LinasError
from linas.spaces import get_space
from supernets.transformer.data import load_tokenizer
from supernets.transformer.model import SuperTransformer

WEIGHTS = "supernet.pt"
TRAIN_STATE = "train_state"
POSITIONS = "sliced"
# position_dims for a SuperTransformer that computes positions at the active width (first recipe).
LEGACY_POSITION_DIMS = (0, 0)
TOKENIZER = "tokenizer"


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file, so an interrupted save never leaves a broken file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_weights(net: SuperTransformer, directory: Path, step: int, settings: dict[str, Any],
                 half: bool = True, extra: dict[str, Any] | None = None) -> Path:
    """Write ``supernet.pt`` (weights and what is needed to rebuild the supernet)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in net.state_dict().items()}
    payload = {"model": state, "space": net.space.name, "vocab_size": net.arch.vocab_size,
               "qkv_dim": net.arch.qkv_dim, "dropout": net.dropout_p, "step": step, "settings": settings,
               "positions": POSITIONS,
               **(extra or {})}
    path = directory / WEIGHTS
    save_atomic(payload, path)
    return path


def load_supernet(directory: str | Path, device: str = "cpu") -> tuple[SuperTransformer, Any, dict[str, Any]]:
    """``(supernet, tokenizer, checkpoint metadata)`` of a checkpoint directory (or its ``supernet.pt``)."""
    d = Path(directory).expanduser()
    if d.name == WEIGHTS:
        d = d.parent
    path = d / WEIGHTS
    if not path.is_file():
        raise LinasError(f"{path}: no such checkpoint (train one with: linas train-supernet CONFIG.yaml)")
    payload = read_torch_file(path, device)
    try:
        net = SuperTransformer(get_space(payload["space"]), payload["vocab_size"], payload["qkv_dim"],
                               payload.get("dropout", 0.1), position_dims=position_dims_of(payload, path))
        load_weights(net, payload["model"], path)
    except KeyError as exc:
        raise LinasError(f"{path}: not a SuperTransformer checkpoint (no {exc})") from None
    net.to(device).eval()
    tokenizer = load_tokenizer(d / TOKENIZER)
    meta = {k: v for k, v in payload.items() if k != "model"}
    meta["sha256"] = file_hash(path)
    return net, tokenizer, meta


def position_dims_of(payload: dict[str, Any], path: Path) -> tuple[int, int] | None:
    """``position_dims`` for the SuperTransformer of a checkpoint (``None``: the supernet's widths)."""
    kind = payload.get("positions")
    if kind is None:
        return LEGACY_POSITION_DIMS
    if kind != POSITIONS:
        raise LinasError(f"{path}: unknown position embedding '{kind}' (this code knows '{POSITIONS}')")
    return None


def read_torch_file(path: Path, device: str = "cpu") -> dict[str, Any]:
    """``torch.load`` of tensors and plain data only; an unreadable file is a one-line :class:`LinasError`."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or tampered files all mean "unreadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LinasError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {first[:200]})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise LinasError(f"{path}: not a SuperTransformer checkpoint (no 'model' weights)")
    return payload


def load_weights(net: SuperTransformer, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load (fp16 or fp32) weights into ``net``; a shape or name mismatch is a one-line :class:`LinasError`."""
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
        raise LinasError(f"{path}: weights do not fit this SuperTransformer (space, vocabulary or Q/K/V width "
                         f"changed?): {detail[:200]}") from None


def file_hash(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256 (names a checkpoint in evaluator identities)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
