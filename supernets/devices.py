"""Where the supernets run: the ``device`` option of evaluators, trainers and table builders."""

from __future__ import annotations

import re

import torch

from linas.errors import ConfigError


def resolve_device(device: str, where: str) -> torch.device:
    """The torch device a ``device`` option names.

    ``"auto"`` is ``cuda`` when a GPU is available, else ``cpu``; ``"cpu"``, ``"cuda"``
    and ``"cuda:N"`` are taken as they are. A GPU asked for where there is none is a
    :class:`ConfigError` naming ``where``.
    """
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError(f"{where}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"{where}: device '{device}' needs a CUDA GPU and torch sees none "
                          "(set device: cpu, or auto to use a GPU only when there is one)")
    resolved = torch.device(device)
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(f"{where}: device '{device}' does not exist "
                          f"(torch sees {torch.cuda.device_count()} GPU(s))")
    return resolved
