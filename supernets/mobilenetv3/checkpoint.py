"""Reading supernet weights: OFA's released files and this package's own checkpoints.

Everything goes through :func:`read_weights` (``torch.load(weights_only=True)``: a
checkpoint can hold tensors and plain containers, never code), and every way a file can
be wrong (missing, truncated, another network's weights) is one clear
:class:`~linas.errors.LinasError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from linas.errors import ConfigError, LinasError

from .supernet import OFAMobileNetV3

OFA_RELEASES = {
    "ofa_mbv3_d234_e346_k357_w1.0": 1.0,
    "ofa_mbv3_d234_e346_k357_w1.2": 1.2,
}


def read_weights(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely; raise a one-line error when it is missing or unreadable."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{p}: no such checkpoint file")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, pickle and EOF errors all mean an unusable file
        raise LinasError(f"{p}: cannot read the checkpoint (truncated, corrupt or not a PyTorch file: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(data, Mapping):
        raise LinasError(f"{p}: expected a state dict (a mapping), found {type(data).__name__}")
    return dict(data)


def file_digest(path: str | Path, n: int = 16) -> str:
    """Short SHA-256 of a file (identifies a checkpoint in evaluator identities and logs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def ofa_state_dict(data: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The supernet state dict inside an OFA file, with old key names brought up to date.

    Released files wrap it as ``{"state_dict": ...}``; early ones name each block's
    layer ``mobile_inverted_conv`` where later code says ``conv``.
    """
    state = data.get("state_dict", data)
    if not isinstance(state, Mapping):
        raise LinasError("checkpoint: 'state_dict' is not a mapping of tensors")
    return {k.replace(".mobile_inverted_conv.", ".conv."): v for k, v in state.items()}


def load_supernet_weights(net: OFAMobileNetV3, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state`` into ``net`` strictly, naming the first missing, extra or mis-shaped key.

    BN ``num_batches_tracked`` counters are the one thing allowed to be absent (files
    written by old PyTorch versions lack them; they do not change the network).
    """
    own = net.state_dict()
    state = dict(state)
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first {missing[0]!r}")
        if extra:
            parts.append(f"{len(extra)} unexpected key(s), first {extra[0]!r}")
        raise LinasError(f"{source}: does not match the supernet ({'; '.join(parts)})")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise LinasError(f"{source}: {k} is not a tensor")
        if tuple(v.shape) != tuple(own[k].shape):
            raise LinasError(f"{source}: {k} has shape {tuple(v.shape)}, the supernet expects {tuple(own[k].shape)} "
                             f"(wrong width multiplier or number of classes?)")
    net.load_state_dict(state, strict=True)


def load_ofa_supernet(path: str | Path, name: str | None = None, n_classes: int = 1000) -> OFAMobileNetV3:
    """Build OFA's released ImageNet supernet and load its weights from ``path``.

    ``name`` is ``ofa_mbv3_d234_e346_k357_w1.0`` or ``..._w1.2``; by default it is read
    from the file name.

    Example::

        net = load_ofa_supernet("~/.torch/ofa_nets/ofa_mbv3_d234_e346_k357_w1.0")
    """
    name = name or Path(path).name.split(".pth")[0]
    if name not in OFA_RELEASES:
        raise ConfigError(f"unknown OFA supernet '{name}'; known: {', '.join(OFA_RELEASES)}")
    net = OFAMobileNetV3(n_classes=n_classes, width_mult=OFA_RELEASES[name], dropout=0.1)
    load_supernet_weights(net, ofa_state_dict(read_weights(path)), source=str(path))
    return net


# ----------------------------------------------------------------- this package's files
def supernet_arch(net: OFAMobileNetV3) -> dict[str, Any]:
    """What is needed to rebuild ``net`` before loading its weights."""
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    return {"n_classes": net.n_classes, "width_mult": net.width_mult, "dropout": net.dropout,
            "bn_momentum": bn.momentum, "bn_eps": bn.eps}


def save_supernet(path: str | Path, net: OFAMobileNetV3, meta: Mapping[str, Any] | None = None,
                  half: bool = False) -> Path:
    """Write a trained supernet (weights, architecture, metadata) readable by :func:`load_supernet`.

    ``half`` stores floating-point weights as float16 (half the size; they are cast back
    to float32 on loading).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().clone()
             for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": "linas-ofa-mbv3", "arch": supernet_arch(net), "state_dict": state,
                "meta": dict(meta or {})}, tmp)
    tmp.replace(path)
    return path


def load_supernet(path: str | Path) -> OFAMobileNetV3:
    """A supernet from a file written by :func:`save_supernet` or by the trainer's checkpoints,
    or one of OFA's released files (recognized by its name)."""
    name = Path(path).name.split(".pth")[0]
    if name in OFA_RELEASES:
        return load_ofa_supernet(path, name)
    data = read_weights(path)
    if data.get("format") != "linas-ofa-mbv3":
        raise LinasError(f"{path}: not a linas OFA-MobileNetV3 supernet file (no 'format: linas-ofa-mbv3'); "
                         f"OFA's released files must keep their names, e.g. {next(iter(OFA_RELEASES))}")
    arch = data.get("arch", {})
    if not isinstance(arch, Mapping):
        raise LinasError(f"{path}: bad architecture record {arch!r} (expected a mapping)")
    try:
        net = OFAMobileNetV3(**arch)
    except (TypeError, ValueError) as exc:
        raise LinasError(f"{path}: bad architecture record {arch!r} ({exc})") from None
    weights = data.get("state_dict")
    if not isinstance(weights, Mapping):
        raise LinasError(f"{path}: no 'state_dict' mapping of tensors in the file")
    state = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
             for k, v in weights.items()}
    load_supernet_weights(net, state, source=str(path))
    return net
