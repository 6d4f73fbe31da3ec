"""The training state of a SuperTransformer run, in shards small enough to commit to git.

A later run, possibly on a fresh clone on another machine, resumes from what is
committed, so the state must be committable: every file at most ``shard_mb`` MB (git
hosting limits files to 25 MB here) and the whole small enough that committing it once a
session does not bloat the history.

What is kept, and why:

- weights in float32, exactly (the float16 ``supernet.pt`` for evaluators is not enough
  to continue training: Adam's small updates vanish below float16's resolution);
- Adam's first and second moments in ``moments_dtype``: ``bfloat16`` by default, which
  halves them (7.8M-parameter hat_cpu: 31 MB instead of 62 MB; state 62 MB in all
  instead of 93 MB). bfloat16 keeps float32's exponent range, so tiny second moments do
  not underflow as they would in float16; its 8-bit mantissa rounds each moment by at
  most 0.4 %, a perturbation of the step size far below the noise of a minibatch. A
  resume is then not bitwise exact, only close; ``float32`` makes it bitwise exact;
- the run's position (update, epoch, batch), stage and validation history, in
  ``state.json`` (readable by people).

The shards are written into ``train_state.tmp/`` and the folder is swapped in with
renames (the old one moved to ``train_state.old/`` first), so a kill at any moment leaves
either the new or the old state complete; :func:`load_state` falls back to
``train_state.old/`` when the swap was cut short.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from linas.errors import LinasError

MANIFEST = "state.json"
FORMAT = 1


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def flat_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 moments_dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Every tensor of the state under a flat name, and the optimizer's param groups (plain data)."""
    tensors = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, value in st.items():
            if not torch.is_tensor(value):
                raise LinasError(f"optimizer state '{key}' is not a tensor; this state format cannot save it")
            if key in ("exp_avg", "exp_avg_sq"):
                value = value.to(moments_dtype)
            tensors[f"opt.{idx}.{key}"] = value.detach().clone()
    return tensors, opt["param_groups"]


def save_state(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               info: dict[str, Any], moments_dtype: str = "bfloat16", shard_mb: float = 20.0) -> Path:
    """Write ``directory/train_state/`` (shards + ``state.json``) atomically; returns its path."""
    dtype = getattr(torch, moments_dtype)
    tensors, groups = flat_tensors(model, optimizer, dtype)
    limit = int(shard_mb * 1e6)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        # + 1 KB for what torch.save adds per tensor (zip record, name, alignment), so a
        # shard's file, not just its data, stays below the limit.
        n = t.numel() * t.element_size() + 1024
        if n > limit:
            raise LinasError(f"tensor {name} ({n / 1e6:.1f} MB) is larger than a shard ({shard_mb} MB)")
        if size + n > limit and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += n

    final = directory / "train_state"
    tmp, old = directory / "train_state.tmp", directory / "train_state.old"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    names = []
    for i, shard in enumerate(shards):
        name = f"shard{i:02d}.pt"
        with open(tmp / name, "wb") as f:
            torch.save(shard, f)
            f.flush()
            os.fsync(f.fileno())
        names.append(name)
    manifest = {"format": FORMAT, "moments_dtype": moments_dtype, "shards": names,
                "param_groups": groups, **info}
    with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    # Swap: after each rename one complete state exists under 'train_state' or 'train_state.old'.
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(directory)
    if old.exists():
        shutil.rmtree(old)
    return final


def find_state(directory: Path) -> Path | None:
    """The complete state folder under ``directory`` (``train_state/``, else a left-over ``train_state.old/``)."""
    for name in ("train_state", "train_state.old"):
        path = directory / name
        if (path / MANIFEST).is_file():
            return path
    return None


def load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load a state folder into ``model`` and ``optimizer``; returns the manifest (position, stage, ...).

    Anything unreadable or not matching this model is a one-line :class:`LinasError`.
    """
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LinasError(f"{path / MANIFEST}: unreadable training state ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise LinasError(f"{path}: training state format {manifest.get('format')}, this code reads {FORMAT}")
    tensors: dict[str, torch.Tensor] = {}
    for name in manifest["shards"]:
        shard_path = path / name
        try:
            tensors.update(torch.load(shard_path, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - missing, truncated or foreign files all mean "unreadable"
            first = (str(exc).strip().splitlines() or [""])[0]
            raise LinasError(f"{shard_path}: unreadable training-state shard ({type(exc).__name__}: "
                             f"{first[:160]}); is it a Git LFS pointer or half-copied?") from None
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else (lines[0] if lines else "")
        raise LinasError(f"{path}: weights do not fit this SuperTransformer (space, vocabulary or Q/K/V width "
                         f"changed?): {detail[:200]}") from None
    params = {i: p for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if not name.startswith("opt."):
            continue
        _, idx, key = name.split(".", 2)
        i = int(idx)
        if key in ("exp_avg", "exp_avg_sq"):
            if i not in params or value.shape != params[i].shape:
                raise LinasError(f"{path}: optimizer state does not fit this SuperTransformer (parameter {i})")
            value = value.to(params[i].dtype)
        opt_state.setdefault(i, {})[key] = value
    groups = manifest["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    except (KeyError, ValueError) as exc:
        raise LinasError(f"{path}: optimizer state does not fit this run ({exc})") from None
    return manifest


def state_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) / 1e6
