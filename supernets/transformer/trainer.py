"""Training the SuperTransformer: ``linas train-supernet CONFIG.yaml`` with ``supernet: hat``.

The recipe (which SubTransformers an update trains, their losses, when stage 1 ends) is
in :mod:`supernets.transformer.recipe`; the committable training state in
:mod:`supernets.transformer.train_state`. Settings left at their defaults give the first
recipe (one uniformly sampled SubTransformer per update); issue 11's recipe is

    train: {stage1_updates: 4000, stage1_patience: 4, valid_every: 250,
            sandwich: true, sandwich_random: 2, distill: true, scale_dropout: true}

Label-smoothed cross entropy, Adam, linear warm-up then inverse-sqrt or cosine decay,
batches by token count.

Runs are reproducible and resumable: the batch order of epoch ``e`` and the subnet and
dropout randomness of update ``u`` are derived from ``(seed, e)`` and ``(seed, u)``, so a
run stopped and resumed from ``train_state/`` takes the same updates (bitwise with
``moments_dtype: float32``; with ``bfloat16`` moments the resumed Adam moments are
rounded, see :mod:`~supernets.transformer.train_state`). Without ``train_state/`` (e.g.
only ``supernet.pt``), training resumes from the weights with a fresh optimizer and says
so in the log. SIGTERM (``kill PID``) saves and stops at the end of the current update.

Example config::

    supernet: hat
    space: hat_cpu
    output: results/hat/multi30k_sandwich
    data:
      train: {src: ../shared/data/multi30k/train.en.gz, tgt: ../shared/data/multi30k/train.de.gz}
      valid: {src: ../shared/data/multi30k/val.en.gz, tgt: ../shared/data/multi30k/val.de.gz}
    model: {qkv_dim: 192, vocab_size: 8000, dropout: 0.3}
    train: {max_updates: 10000, max_tokens: 4096, lr: 0.001, warmup: 800, stage1_updates: 4000}
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import Field

from linas.config_io import StrictModel, parse
from linas.errors import LinasError
from linas.extensions import trainers
from linas.spaces import get_space
from supernets.devices import resolve_device
from supernets.transformer.arch import extreme_configs
from supernets.transformer.checkpoint import (
    POSITIONS,
    TOKENIZER,
    TRAIN_STATE,
    WEIGHTS,
    load_weights,
    read_torch_file,
    save_weights,
)
from supernets.transformer.data import CorpusSpec, encode, load_corpus, load_tokenizer, pairs, train_tokenizer
from supernets.transformer.model import SuperTransformer
from supernets.transformer.recipe import (
    LARGEST,
    RANDOM,
    distillation_loss,
    label_smoothed_loss,
    reset_dropout,
    sandwich,
    scale_dropout,
    stage1_done,
)
from supernets.transformer.scoring import batches_of_ids, make_batches, validation_loss
from supernets.transformer.train_state import find_state, load_state, save_state, state_size_mb

__all__ = ["HatTrainConfig", "TrainSettings", "Trainer", "label_smoothed_loss", "learning_rate", "train_supernet"]


class DataSettings(StrictModel):
    train: CorpusSpec
    valid: CorpusSpec | None = None
    src_lang: str = "en"
    tgt_lang: str = "de"


class ModelSettings(StrictModel):
    qkv_dim: int = Field(192, gt=0)
    vocab_size: int = Field(8000, ge=100)
    dropout: float = Field(0.1, ge=0, lt=1)


class TrainSettings(StrictModel):
    seed: int = 0
    max_updates: int = Field(20000, gt=0)
    max_minutes: float | None = Field(None, gt=0)
    max_tokens: int = Field(4096, gt=0)
    max_len: int = Field(128, ge=4)
    lr: float = Field(7e-4, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    warmup: int = Field(1000, ge=0)
    schedule: Literal["inverse_sqrt", "cosine"] = "inverse_sqrt"
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    # Stage 1: the largest SubTransformer alone for at most stage1_updates updates, ending
    # earlier when its validation loss flattens (stage1_patience validations without a gain
    # of stage1_min_delta; 0 turns the plateau rule off). 0 updates: no stage 1.
    stage1_updates: int = Field(0, ge=0)
    stage1_patience: int = Field(0, ge=0)
    stage1_min_delta: float = Field(0.01, ge=0)
    # Stage 2: the sandwich rule (largest, smallest, sandwich_random random ones), or without
    # it one uniformly sampled SubTransformer per update (the first recipe).
    sandwich: bool = False
    sandwich_random: int = Field(1, ge=0)
    distill: bool = False  # students learn the largest's output distribution (in-place distillation)
    scale_dropout: bool = False  # HAT: dropout * sampled width / super width
    clip_norm: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    save_every_minutes: float = Field(5.0, gt=0)
    valid_every: int = Field(0, ge=0)  # updates between validations (0: at every save)
    log_every: int = Field(100, gt=0)
    moments_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    shard_mb: float = Field(20.0, gt=0, le=25)
    threads: int | None = Field(None, gt=0)
    half_weights: bool = True
    progress: bool = True
    device: str = "auto"  # "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N"
    # Mixed precision of the training forward passes (torch.autocast): weights, gradients, Adam
    # and the losses stay float32; validation always runs in float32.
    autocast: Literal["off", "bfloat16"] = "off"


class HatTrainConfig(StrictModel):
    """``linas train-supernet`` settings for ``supernet: hat``."""

    supernet: Literal["hat"]
    space: str = "hat_cpu"
    output: str
    data: DataSettings
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()


def learning_rate(step: int, t: TrainSettings) -> float:
    """Learning rate of update ``step`` (1-based): linear warm-up, then inverse-sqrt or cosine decay."""
    if t.warmup and step <= t.warmup:
        return t.lr * step / t.warmup
    if t.schedule == "inverse_sqrt":
        return t.lr * math.sqrt(max(t.warmup, 1) / step)
    progress = min(1.0, (step - t.warmup) / max(1, t.max_updates - t.warmup))
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * progress))


def shuffled_sources(sources: list[str], seed: int) -> list[str]:
    """Every source replaced by another sentence's (a fixed derangement): the validation loss
    with these minus the true one is how much the decoder uses the source."""
    n = len(sources)
    if n < 2:
        return list(sources)
    order = np.random.default_rng([seed, 7]).permutation(n)
    out = [""] * n
    for k in range(n):
        out[order[k]] = sources[order[(k + 1) % n]]
    return out


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Trainer:
    """One training run; :meth:`run` trains until ``max_updates`` or ``max_minutes``, saving as it goes."""

    def __init__(self, config: HatTrainConfig, log=None) -> None:
        self.cfg = config
        self.out = Path(config.output).expanduser()
        self._echo = log
        t = config.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.space = get_space(config.space)
        self.largest, self.smallest = extreme_configs(self.space)
        self.device = resolve_device(t.device, "train.device")

        d = config.data
        train = load_corpus(d.train, d.src_lang, d.tgt_lang)
        self.src, self.tgt = pairs(train, d.src_lang, d.tgt_lang)
        # Only once the data is known to be there, so a typo leaves no half-made run folder.
        self.out.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.out / "train.log", "a", encoding="utf-8")
        tok_dir = self.out / TOKENIZER
        if (tok_dir / "tokenizer.json").is_file():
            self.tokenizer = load_tokenizer(tok_dir)
        else:
            self.tokenizer = train_tokenizer(self.src + self.tgt, config.model.vocab_size)
            self.tokenizer.save_pretrained(str(tok_dir))
        self.valid = self.valid_shuffled = None
        if d.valid is not None:
            vs, vt = pairs(load_corpus(d.valid, d.src_lang, d.tgt_lang), d.src_lang, d.tgt_lang)
            self.valid = make_batches(self.tokenizer, vs, vt, t.max_tokens, t.max_len)
            self.valid_shuffled = make_batches(self.tokenizer, shuffled_sources(vs, t.seed), vt, t.max_tokens,
                                               t.max_len)

        torch.manual_seed(t.seed)
        self.net = SuperTransformer(self.space, len(self.tokenizer), config.model.qkv_dim,
                                    config.model.dropout).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=t.lr, betas=(0.9, 0.98), eps=1e-8,
                                    weight_decay=t.weight_decay)
        self.step, self.epoch, self.epoch_pos = 0, 0, 0
        self.stage = 1 if t.stage1_updates > 0 else 2
        self.stage2_start: int | None = None if self.stage == 1 else 1
        self.history: list[dict[str, Any]] = []  # validations: {"step", "stage", losses...}
        self._ids: tuple[list[list[int]], list[list[int]]] | None = None
        self._stop_signal: str | None = None
        self._resume()

    # ------------------------------------------------------------------ bookkeeping
    def log(self, text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        self._log_file.write(line + "\n")
        self._log_file.flush()
        if self._echo is not None:
            self._echo(line)

    def settings(self) -> dict[str, Any]:
        return self.cfg.model_dump(mode="json")

    def _resume(self) -> None:
        state_path, weights_path = find_state(self.out), self.out / WEIGHTS
        if state_path is not None:
            info = load_state(state_path, self.net, self.opt)
            try:
                self.step, self.epoch, self.epoch_pos = int(info["step"]), int(info["epoch"]), int(info["epoch_pos"])
                self.stage, self.stage2_start = int(info["stage"]), info.get("stage2_start")
                self.history = list(info.get("history", []))
            except (KeyError, TypeError, ValueError) as exc:
                raise LinasError(f"{state_path}: not a training state of this recipe (no {exc})") from None
            exact = ("exact" if info["moments_dtype"] == "float32" else
                     f"Adam moments were stored as {info['moments_dtype']} (rounded by at most 0.4 %)")
            self.log(f"resumed from {state_path} at update {self.step} (stage {self.stage}, epoch {self.epoch}, "
                     f"batch {self.epoch_pos}); {exact}")
            self._note_changed_settings(info.get("settings", {}))
        elif weights_path.is_file():
            payload = read_torch_file(weights_path)
            if payload.get("space") != self.space.name:
                raise LinasError(f"{weights_path} was trained on space '{payload.get('space')}', this config "
                                 f"names '{self.space.name}'; choose another output folder")
            if payload.get("positions") != POSITIONS:
                raise LinasError(f"{weights_path} was trained with positions at the active width; this trainer "
                                 f"computes them at full width and slices (HAT); choose another output folder")
            load_weights(self.net, payload["model"], weights_path)
            self.step = int(payload["step"])
            self.epoch, self.epoch_pos = int(payload.get("epoch", 0)), int(payload.get("epoch_pos", 0))
            self.stage = int(payload.get("stage", self.stage))
            self.stage2_start = payload.get("stage2_start", self.stage2_start)
            self.log(f"WARNING: no {TRAIN_STATE}/ in {self.out}: resumed weights from {weights_path} (float16) at "
                     f"update {self.step} with a FRESH OPTIMIZER; the run is no longer exactly reproducible")
        else:
            self.log(f"new run: {json.dumps(self.settings())}")
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.settings(), sort_keys=False))

    def _note_changed_settings(self, saved: dict[str, Any]) -> None:
        now = self.settings()
        changed = [f"{sec}.{k}: {saved.get(sec, {}).get(k)!r} -> {v!r}" for sec in ("model", "train")
                   for k, v in now.get(sec, {}).items() if saved and saved.get(sec, {}).get(k) != v]
        if changed:
            self.log("settings changed since the state was saved: " + "; ".join(changed))

    def save(self) -> None:
        t = self.cfg.train
        info = {"step": self.step, "epoch": self.epoch, "epoch_pos": self.epoch_pos, "stage": self.stage,
                "stage2_start": self.stage2_start, "history": self.history, "settings": self.settings(),
                "saved": time.strftime("%Y-%m-%d %H:%M:%S")}
        state = save_state(self.out, self.net, self.opt, info, t.moments_dtype, t.shard_mb)
        # The epoch position and stage let a weights-only resume continue where this run was.
        path = save_weights(self.net, self.out, self.step, self.settings(), half=t.half_weights,
                            extra={"epoch": self.epoch, "epoch_pos": self.epoch_pos, "stage": self.stage,
                                   "stage2_start": self.stage2_start})
        self.log(f"saved update {self.step}: {path} ({path.stat().st_size / 1e6:.1f} MB), {state}/ "
                 f"({state_size_mb(state):.1f} MB)")

    def validate(self) -> dict[str, Any]:
        """Validation NLL/token of the largest and the smallest, with the true and a shuffled source."""
        record: dict[str, Any] = {"step": self.step, "stage": self.stage}
        for name, config in (("largest", self.largest), ("smallest", self.smallest)):
            self.net.set_active_subnet(config)
            record[name] = round(validation_loss(self.net, self.valid), 4)
            record[f"{name}_shuffled"] = round(validation_loss(self.net, self.valid_shuffled), 4)
        self.log(f"valid update {self.step} stage {self.stage}: " + ", ".join(
            f"{n} {record[n]:.3f} (shuffled source {record[n + '_shuffled']:.3f}, "
            f"{record[n + '_shuffled'] - record[n]:+.3f})" for n in ("largest", "smallest")))
        return record

    # ------------------------------------------------------------------ training
    def epoch_batches(self, epoch: int):
        if self._ids is None:
            self._ids = (encode(self.tokenizer, self.src, self.cfg.train.max_len),
                         encode(self.tokenizer, self.tgt, self.cfg.train.max_len))
        rng = np.random.default_rng([self.cfg.train.seed, epoch])
        return batches_of_ids(*self._ids, self.cfg.train.max_tokens, rng)

    def subnets_for(self, step: int, stage: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """``[(role, config)]`` trained at update ``step`` (deterministic in seed, step and stage)."""
        t = self.cfg.train
        stage = self.stage if stage is None else stage
        if stage == 1:
            return [(LARGEST, dict(self.largest))]
        rng = np.random.default_rng([t.seed, step, 1])
        if t.sandwich:
            return sandwich(self.space, self.largest, self.smallest, t.sandwich_random, rng)
        return [(RANDOM, self.space.to_config(self.space.sample(rng, 1)[0]))]

    def train_step(self, batch) -> dict[str, float]:
        """One optimizer step over the update's SubTransformers; returns each role's mean loss."""
        t = self.cfg.train
        self.step += 1
        torch.manual_seed(t.seed * 1_000_003 + self.step)
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(self.step, t)
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        ntok = max(batch.target_tokens, 1)
        losses: dict[str, list[float]] = {}
        src, prev, target = (x.to(self.device, non_blocking=True) for x in (batch.src, batch.prev, batch.target))
        teacher = None
        for role, config in self.subnets_for(self.step):
            self.net.set_active_subnet(config)
            if t.scale_dropout:
                scale_dropout(self.net, self.cfg.model.dropout)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=t.autocast == "bfloat16"):
                logits = self.net(src, prev)
            logits = logits.float()
            if teacher is not None:
                loss = distillation_loss(logits, teacher, target) / ntok
                key = f"{role}_kd"
            else:
                loss = label_smoothed_loss(logits, target, t.label_smoothing) / ntok
                key = role
                if role == LARGEST and t.distill and self.stage == 2:
                    # Detached: the students' losses must not move the teacher.
                    teacher = torch.softmax(logits.detach().float(), dim=-1)
            loss.backward()
            losses.setdefault(key, []).append(loss.item())
            del logits, loss
        if t.scale_dropout:
            reset_dropout(self.net, self.cfg.model.dropout)
        if t.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), t.clip_norm)
        self.opt.step()
        return {k: sum(v) / len(v) for k, v in losses.items()}

    def _maybe_end_stage1(self) -> None:
        t = self.cfg.train
        if self.stage != 1:
            return
        curve = [h["largest"] for h in self.history if h.get("stage") == 1]
        reason = stage1_done(curve, self.step, t.stage1_updates, t.stage1_patience, t.stage1_min_delta)
        if reason:
            self.stage, self.stage2_start = 2, self.step + 1
            what = (f"sandwich (largest, smallest, {t.sandwich_random} random"
                    f"{', distilled from the largest' if t.distill else ''})" if t.sandwich
                    else "one random SubTransformer per update")
            self.log(f"stage 1 ends at update {self.step}: {reason}; stage 2 from update {self.step + 1}: {what}")

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self._stop_signal = signal.Signals(signum).name

    def run(self) -> int:
        """Train; returns the update count reached."""
        from tqdm import tqdm

        t = self.cfg.train
        start = last_save = time.time()
        bar = tqdm(total=t.max_updates, initial=self.step, disable=not t.progress, file=sys.stderr,
                   mininterval=10, desc="hat supernet", unit="upd")
        previous = None
        try:
            previous = signal.signal(signal.SIGTERM, self._on_signal)
        except ValueError:  # not the main thread (e.g. tests run elsewhere): no graceful stop by signal
            pass
        self.log(f"training with {torch.get_num_threads()} thread(s) on {self.device}; update {self.step} of "
                 f"{t.max_updates}, stage {self.stage}")
        running: dict[str, list[float]] = {}
        window_start, window_tokens, window_updates = time.time(), 0, 0
        stop = None
        self._maybe_end_stage1()
        while self.step < t.max_updates and stop is None:
            batches = self.epoch_batches(self.epoch)
            while self.epoch_pos < len(batches):
                batch = batches[self.epoch_pos]
                for k, v in self.train_step(batch).items():
                    running.setdefault(k, []).append(v)
                self.epoch_pos += 1
                window_tokens += int(batch.src.ne(0).sum()) + batch.target_tokens
                window_updates += 1
                bar.update(1)
                if self.step % t.log_every == 0:
                    secs = time.time() - window_start
                    per_update = secs / max(window_updates, 1)
                    left = t.max_updates - self.step
                    eta = f"ETA {_duration(left * per_update)} to update {t.max_updates} at this speed"
                    if self.stage == 1:
                        eta += f" (stage 1 at most until update {t.stage1_updates}: " \
                               f"{_duration((t.stage1_updates - self.step) * per_update)})"
                    self.log(f"update {self.step} stage {self.stage} epoch {self.epoch} loss " + " ".join(
                        f"{k} {sum(v) / len(v):.4f}" for k, v in running.items())
                        + f" lr {learning_rate(self.step, t):.2e} {window_tokens / max(secs, 1e-9):.0f} tok/s "
                        f"{per_update:.2f} s/update; {eta}; elapsed {_duration(time.time() - start)}")
                    bar.set_postfix(loss=f"{np.mean(running.get(LARGEST, running.get(RANDOM, [0]))):.3f}")
                    running, window_start, window_tokens, window_updates = {}, time.time(), 0, 0
                validated = False
                if self.valid is not None and t.valid_every and self.step % t.valid_every == 0:
                    self.history.append(self.validate())
                    validated = True
                    self._maybe_end_stage1()
                elif self.stage == 1 and self.step >= t.stage1_updates:
                    self._maybe_end_stage1()
                if time.time() - last_save > 60 * t.save_every_minutes:
                    if self.valid is not None and not t.valid_every and not validated:
                        self.history.append(self.validate())
                    self.save()
                    last_save = time.time()
                if self._stop_signal:
                    stop = f"stopped by {self._stop_signal}"
                elif self.step >= t.max_updates:
                    stop = f"reached max_updates {t.max_updates}"
                elif t.max_minutes and time.time() - start > 60 * t.max_minutes:
                    stop = f"reached max_minutes {t.max_minutes}"
                if stop:
                    break
            if stop is None:
                self.epoch, self.epoch_pos = self.epoch + 1, 0
        bar.close()
        if self.valid is not None and not (self.history and self.history[-1]["step"] == self.step):
            self.history.append(self.validate())
        self.save()
        self.log(f"{stop or 'done'} at update {self.step} (stage {self.stage}, epoch {self.epoch}) after "
                 f"{_duration(time.time() - start)}; run the same command to continue")
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        return self.step

    def close(self) -> None:
        self._log_file.close()


@trainers.register("hat")
def train_supernet(settings: dict[str, Any], config_path: Path) -> int:
    """Entry point of ``linas train-supernet CONFIG.yaml`` for ``supernet: hat``."""
    config = parse(HatTrainConfig, settings, str(config_path))
    trainer = Trainer(config, log=print)
    try:
        return trainer.run()
    finally:
        trainer.close()
