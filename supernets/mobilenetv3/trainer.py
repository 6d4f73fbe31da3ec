"""Supernet training as OFA/BigNAS do it: ``linas train-supernet``.

Stage 1 (the first ``stage1_epochs`` epochs, default none) trains the largest subnet
alone (label-smoothed cross-entropy), as OFA trains its full network before shrinking.
Stage 2 is BigNAS's sandwich rule with in-place distillation: each step trains, on the
same batch, the largest subnet (label-smoothed cross-entropy against the labels), the
smallest and ``n_random`` random subnets (soft cross-entropy against the largest's
detached predictions), accumulating their gradients into one SGD update. One
learning-rate schedule spans both stages: a linear warm-up, then a cosine to zero at the
last of ``epochs`` (the planned total, fixed in the config so that a resumed run follows
the same schedule). BN parameters and biases get no weight decay. With ``channels_last``
(default) the network and batches use the NHWC layout, about twice as fast on CPU for
this network's depthwise convolutions.

Runs are seeded and resumable: ``OUTPUT/checkpoint.pt`` holds the weights, optimizer,
step and every random state (the data order and augmentation are drawn from a generator
seeded by the epoch, and a resumed epoch skips its finished batches), and is rewritten
atomically every ``checkpoint_minutes`` and at each epoch's end; running the same config
again continues from it exactly where it stopped. SIGTERM or SIGINT (Ctrl-C) stops a run
cleanly: the step in progress finishes and the checkpoint is saved first. ``train.log``
gets a progress line (step, epoch, stage, losses, images/s, ETA) at each checkpoint. A
finished run leaves ``OUTPUT/supernet.pt`` (for the evaluator), ``train_log.jsonl`` (one
line per epoch) and ``config.yaml``.

Example config::

    supernet: ofa_mbv3
    data: {kind: digits, load_size: 32, flip: false}
    model: {width_mult: 0.35}
    train: {epochs: 30, batch_size: 64, lr: 0.05, resolution: 32}
    output: runs/mbv3_digits
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from pydantic import Field, model_validator
from torch import nn

from linas.config_io import StrictModel, parse
from linas.errors import LinasError
from linas.extensions import trainers

from .arch import max_config, min_config
from .checkpoint import load_supernet_weights, read_weights, save_supernet, supernet_arch
from .data import DataSettings, ImageData, load_split
from .evaluation import subnet_top1
from .supernet import OFAMobileNetV3


class ModelSettings(StrictModel):
    """Supernet shape: width multiplier (1.0 and 1.2 are OFA's), dropout, BN momentum."""

    width_mult: float = 1.0
    dropout: float = 0.1
    bn_momentum: float = 0.1


class TrainSettings(StrictModel):
    """Optimization settings of the sandwich rule."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    n_random: int = 2
    stage1_epochs: int = Field(0, ge=0)  # epochs training the largest subnet alone before the sandwich rule
    channels_last: bool = True  # NHWC layout: same results, about 2x faster on CPU
    resolution: int = 64
    seed: int = 0
    threads: int | None = None
    grad_clip: float | None = None
    checkpoint_minutes: float = 5.0
    eval_images: int | None = 2000  # per-epoch check of the largest and smallest subnets
    calib_images: int = 1000
    stop_at_step: int | None = None  # pause here (checkpoint saved; the schedule is unchanged)
    progress: bool = True

    @model_validator(mode="after")
    def _check_stages(self) -> TrainSettings:
        if self.stage1_epochs > self.epochs:
            raise ValueError(f"stage1_epochs ({self.stage1_epochs}) exceeds epochs ({self.epochs}), "
                             f"the planned total of both stages")
        return self


class TrainerConfig(StrictModel):
    """A ``linas train-supernet`` config for the OFA MobileNetV3 supernet."""

    supernet: Literal["ofa_mbv3"]
    data: DataSettings
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    output: str
    save_half: bool = False  # store supernet.pt in float16 (half the size)


@trainers.register("ofa_mbv3")
def train_from_settings(settings: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """Entry point of ``linas train-supernet CONFIG.yaml``."""
    config = parse(TrainerConfig, settings, where=str(config_path))
    return train_supernet(config)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a probability distribution (in-place distillation loss)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(1).mean()


def param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights only: BN parameters and biases (1-D tensors) are exempt."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * base * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class SandwichTrainer:
    """Holds the supernet, optimizer and random states of one training run."""

    def __init__(self, config: TrainerConfig, train: ImageData, val: ImageData | None = None) -> None:
        self.config = config
        t = config.train
        self.train_set, self.val_set = train, val
        torch.manual_seed(t.seed)
        self.net = OFAMobileNetV3(n_classes=train.n_classes, width_mult=config.model.width_mult,
                                  dropout=config.model.dropout, bn_momentum=config.model.bn_momentum)
        if t.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(param_groups(self.net, t.weight_decay), lr=t.lr, momentum=t.momentum,
                                         nesterov=t.nesterov)
        self.steps_per_epoch = len(train) // t.batch_size
        if self.steps_per_epoch < 1:
            raise LinasError(f"batch_size {t.batch_size} is larger than the {len(train)} training images")
        self.total_steps = self.steps_per_epoch * t.epochs
        self.warmup_steps = int(round(t.warmup_epochs * self.steps_per_epoch))
        self.stage1_steps = self.steps_per_epoch * t.stage1_epochs
        self.step = 0
        self.rng = np.random.default_rng(t.seed)
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------- one step
    @property
    def stage(self) -> int:
        """1 while the largest subnet trains alone, then 2 (sandwich rule)."""
        return 1 if self.step < self.stage1_steps else 2

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        t = self.config.train
        net = self.net.train()
        if t.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        stage = self.stage
        lr = lr_at(self.step, self.total_steps, self.warmup_steps, t.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        net.set_active_subnet(max_config())
        logits = net(x)
        loss_max = F.cross_entropy(logits, y, label_smoothing=t.label_smoothing)
        loss_max.backward()
        teacher = F.softmax(logits.detach(), dim=1)
        losses = {"loss_max": float(loss_max.detach()),
                  "acc_max": float((logits.detach().argmax(1) == y).float().mean() * 100)}
        for i in range(1 + t.n_random if stage == 2 else 0):
            if i == 0:
                net.set_active_subnet(min_config())
            else:
                net.sample_active_subnet(self.rng)
            loss = soft_cross_entropy(net(x), teacher)
            loss.backward()
            losses["loss_min" if i == 0 else "loss_random"] = float(loss.detach())
        if t.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
        self.optimizer.step()
        self.step += 1
        losses["lr"] = lr
        return losses

    # ------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {"format": "linas-ofa-mbv3", "arch": supernet_arch(self.net), "state_dict": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.step,
                "torch_rng": torch.get_rng_state(), "subnet_rng": json.dumps(self.rng.bit_generator.state),
                "history": json.dumps(self.history), "meta": {"config": self.config.model_dump(mode="json")}}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            torch.save(self.state(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: an interrupted save never leaves a truncated checkpoint

    def load(self, path: Path) -> None:
        data = read_weights(path)
        if data.get("arch") != supernet_arch(self.net):
            raise LinasError(f"{path}: checkpoint of another supernet {data.get('arch')} "
                             f"(this config builds {supernet_arch(self.net)}); use another output folder")
        missing = [k for k in ("state_dict", "optimizer", "step", "torch_rng", "subnet_rng") if k not in data]
        if missing:
            raise LinasError(f"{path}: not a training checkpoint (no {', '.join(missing)}); "
                             f"remove it or use another output folder")
        load_supernet_weights(self.net, data["state_dict"], source=str(path))
        self.optimizer.load_state_dict(data["optimizer"])
        self.step = int(data["step"])
        torch.set_rng_state(data["torch_rng"])
        self.rng.bit_generator.state = json.loads(data["subnet_rng"])
        self.history = json.loads(data.get("history", "[]"))

    # ------------------------------------------------------------- evaluation
    def evaluate_extremes(self) -> dict[str, float]:
        """Top-1 of the largest and smallest subnets after BN recalibration (supernet left as it was)."""
        if self.val_set is None:
            return {}
        t = self.config.train
        val = self.val_set.subset(t.eval_images, seed=0).materialize()
        calib = self.train_set.subset(t.calib_images, seed=0).materialize()
        out = {}
        for name, config in (("top1_max", max_config()), ("top1_min", min_config())):
            out[name], _ = subnet_top1(self.net, config, calib, val, t.resolution)
        return out


class Progress:
    """Seconds per step of each stage (measured in this process) and the time left of the run."""

    def __init__(self, trainer: SandwichTrainer) -> None:
        self.trainer = trainer
        self.seconds = {1: 0.0, 2: 0.0}
        self.steps = {1: 0, 2: 0}
        self.images = 0

    def add(self, stage: int, seconds: float) -> None:
        self.seconds[stage] += seconds
        self.steps[stage] += 1

    def per_step(self, stage: int) -> float | None:
        if self.steps[stage]:
            return self.seconds[stage] / self.steps[stage]
        other = 3 - stage
        if not self.steps[other]:
            return None
        # Not measured yet: a sandwich step costs about the largest's plus 0.37 of it per smaller subnet.
        ratio = 1.0 + 0.37 * (1 + self.trainer.config.train.n_random)
        return self.per_step(other) * (ratio if stage == 2 else 1.0 / ratio)

    def eta_seconds(self) -> float | None:
        tr = self.trainer
        left1 = max(tr.stage1_steps - tr.step, 0)
        left2 = tr.total_steps - max(tr.step, tr.stage1_steps)
        s1, s2 = self.per_step(1), self.per_step(2)
        if (left1 and s1 is None) or (left2 and s2 is None):
            return None
        return left1 * (s1 or 0.0) + left2 * (s2 or 0.0)

    def line(self, losses: dict[str, float]) -> str:
        tr = self.trainer
        t = tr.config.train
        epoch = tr.step / tr.steps_per_epoch
        stage = tr.stage
        per = self.per_step(stage)
        parts = [f"step {tr.step}/{tr.total_steps}", f"epoch {epoch:.2f}/{t.epochs}",
                 f"stage {stage} ({'largest alone' if stage == 1 else 'sandwich'})",
                 *(f"{k} {v:.4f}" for k, v in losses.items() if k != "lr"), f"lr {losses.get('lr', 0.0):.5f}"]
        if per:
            parts.append(f"{t.batch_size / per:.1f} img/s")
        eta = self.eta_seconds()
        if eta is not None:
            done = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() + eta))
            parts.append(f"ETA {eta / 3600:.1f} h of training (about {done} if uninterrupted)")
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + " " + ", ".join(parts)


def train_supernet(config: TrainerConfig, train: ImageData | None = None,
                   val: ImageData | None = None) -> dict[str, Any]:
    """Train (or resume) a supernet as ``config`` says; returns the last epoch's log entry.

    ``OUTPUT/run.lock`` (holding this process's id) keeps a second run off the same folder.
    """
    t = config.train
    if t.threads:
        torch.set_num_threads(t.threads)
    out = Path(config.output).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    with _output_lock(out / "run.lock"):
        (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        train = train if train is not None else load_split(config.data, "train")
        if val is None and t.eval_images != 0:
            val = load_split(config.data, "val")
        trainer = SandwichTrainer(config, train, val)
        ckpt = out / "checkpoint.pt"
        if ckpt.is_file():
            trainer.load(ckpt)
        with (out / "train.log").open("a") as log:
            if trainer.step:
                print(f"resumed from {ckpt} at step {trainer.step}/{trainer.total_steps}", file=log, flush=True)
            progress = Progress(trainer)
            summary: dict[str, Any] = trainer.history[-1] if trainer.history else {}
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover
                tqdm = None
            stop = min(trainer.total_steps, t.stop_at_step or trainer.total_steps)
            with _stop_on_signals() as signalled:
                summary = _train_epochs(trainer, config, train, out, log, progress, stop, tqdm, signalled) or summary
        if trainer.step < trainer.total_steps:
            return {"paused_at_step": trainer.step, **summary}
        save_supernet(out / "supernet.pt", trainer.net, meta={"steps": trainer.step, "history": trainer.history,
                                                              "config": config.model_dump(mode="json")},
                      half=config.save_half)
        return summary


@contextmanager
def _output_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (this process's id written in it) while training; a one-line
    error naming the holder when another process trains into the same folder. The lock dies with its process."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LinasError(f"{path.parent}: another training (process {holder}) is running into this folder; "
                             f"stop it first (kill -TERM {holder} saves its checkpoint)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def _stop_on_signals() -> Iterator[list[int]]:
    """While training, SIGTERM and SIGINT ask for a clean stop: the step in progress finishes, the checkpoint
    is saved and the run returns paused (rerun to resume). Yields the list of signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train_epochs(trainer: SandwichTrainer, config: TrainerConfig, train: ImageData, out: Path, log: Any,
                  progress: Progress, stop: int, tqdm: Any, signalled: list[int]) -> dict[str, Any] | None:
    """Epochs (or what is left of them) until step ``stop`` or a stop signal; returns the last epoch entry."""
    t = config.train
    ckpt = out / "checkpoint.pt"
    last_save = time.monotonic()
    window: dict[str, float] = {}
    window_n = 0
    summary = None
    while trainer.step < stop:
        epoch, skip = divmod(trainer.step, trainer.steps_per_epoch)
        generator = torch.Generator().manual_seed(t.seed * 100003 + epoch)
        # Batches done before a resume are skipped unread, their random numbers drawn: the stream stays identical.
        batches = train.train_batches(t.resolution, t.batch_size, generator, skip=skip,
                                      augmentation=config.data.augmentation())
        bar = None
        if t.progress and tqdm is not None:
            bar = tqdm(total=trainer.steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{t.epochs}",
                       mininterval=10, leave=False)
        sums: dict[str, float] = {}
        n, started = 0, time.monotonic()
        stage_of_epoch = trainer.stage
        tick = time.monotonic()
        for x, y in batches:
            if trainer.step >= stop:
                break
            stage = trainer.stage
            losses = trainer.train_step(x, y)
            now = time.monotonic()
            progress.add(stage, now - tick)  # the step and the loading of its batch
            n += 1
            window_n += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
                window[k] = window.get(k, 0.0) + v
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses['loss_max']:.3f}", refresh=False)
            if time.monotonic() - last_save > 60 * t.checkpoint_minutes:
                trainer.save(ckpt)
                last_save = time.monotonic()
                print(progress.line({k: v / max(window_n, 1) for k, v in window.items()}) + "; checkpoint saved",
                      file=log, flush=True)
                window, window_n = {}, 0
            tick = time.monotonic()
            if signalled:
                stop = trainer.step
                print(f"step {trainer.step}: stop asked by signal {signalled[0]}; saving the checkpoint", file=log,
                      flush=True)
                break
        if bar is not None:
            bar.close()
        if trainer.step % trainer.steps_per_epoch and trainer.step < trainer.total_steps:
            trainer.save(ckpt)  # paused mid-epoch: the epoch is logged once, when it completes
            print(f"step {trainer.step}: paused (checkpoint saved; rerun to resume)", file=log, flush=True)
            break
        epoch_done = trainer.step % trainer.steps_per_epoch == 0 or trainer.step >= trainer.total_steps
        entry = {"epoch": epoch + 1, "step": trainer.step, "stage": stage_of_epoch,
                 "seconds": round(time.monotonic() - started, 1),
                 **{k: round(v / max(n, 1), 5) for k, v in sums.items()}}
        if epoch_done:
            entry.update({k: round(v, 2) for k, v in trainer.evaluate_extremes().items()})
        trainer.history.append(entry)
        summary = entry
        print(json.dumps(entry), file=log, flush=True)
        with (out / "train_log.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")
        trainer.save(ckpt)
        last_save = time.monotonic()
        eta = progress.eta_seconds()
        if eta is not None and trainer.step < trainer.total_steps:
            print(f"epoch {epoch + 1}/{t.epochs} done; ETA {eta / 3600:.1f} h of training", file=log, flush=True)
    return summary
