"""Training the SuperTransformer: ``linas train-supernet CONFIG.yaml`` with ``supernet: hat``.

As HAT, every update trains one SubTransformer sampled uniformly from the space
(optionally the sandwich rule: the largest, the smallest and random ones, gradients
summed). Label-smoothed cross entropy, Adam, linear warm-up then inverse-sqrt or cosine
decay, batches by token count.

Runs are reproducible and resumable: the batch order of epoch ``e`` and the subnet and
dropout randomness of update ``u`` are derived from ``(seed, e)`` and ``(seed, u)``, so a
run stopped and resumed from ``train_state.pt`` takes exactly the same updates. Without
``train_state.pt`` (e.g. only the committed ``supernet.pt``), training resumes from the
weights and update count with a fresh optimizer.

Example config::

    supernet: hat
    space: hat_cpu
    output: results/hat/multi30k
    data:
      train: {src: ../shared/data/multi30k/train.en.gz, tgt: ../shared/data/multi30k/train.de.gz}
      valid: {src: ../shared/data/multi30k/val.en.gz, tgt: ../shared/data/multi30k/val.de.gz}
    model: {qkv_dim: 192, vocab_size: 8000}
    train: {max_updates: 20000, max_tokens: 4096, lr: 0.0007, warmup: 1000}
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from pydantic import Field

from linas.config_io import StrictModel, parse
from linas.errors import LinasError
from linas.extensions import trainers
from linas.spaces import get_space
from supernets.devices import resolve_device
from supernets.transformer.arch import extreme_configs
from supernets.transformer.checkpoint import (
    TOKENIZER,
    TRAIN_STATE,
    WEIGHTS,
    load_weights,
    read_torch_file,
    save_atomic,
    save_weights,
)
from supernets.transformer.data import CorpusSpec, encode, load_corpus, load_tokenizer, pairs, train_tokenizer
from supernets.transformer.model import PAD, SuperTransformer
from supernets.transformer.scoring import batches_of_ids, make_batches, validation_loss


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
    sandwich: bool = False
    sandwich_random: int = Field(1, ge=0)
    clip_norm: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    save_every_minutes: float = Field(5.0, gt=0)
    log_every: int = Field(100, gt=0)
    threads: int | None = Field(None, gt=0)
    half_weights: bool = True
    progress: bool = True
    device: str = "auto"  # "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N"


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


def label_smoothed_loss(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Summed label-smoothed cross entropy over non-padding target tokens."""
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD,
                           label_smoothing=eps, reduction="sum")


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
        self.valid = None
        if d.valid is not None:
            vs, vt = pairs(load_corpus(d.valid, d.src_lang, d.tgt_lang), d.src_lang, d.tgt_lang)
            self.valid = make_batches(self.tokenizer, vs, vt, t.max_tokens, t.max_len)

        torch.manual_seed(t.seed)
        self.net = SuperTransformer(self.space, len(self.tokenizer), config.model.qkv_dim,
                                    config.model.dropout).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=t.lr, betas=(0.9, 0.98), eps=1e-8,
                                    weight_decay=t.weight_decay)
        self.step, self.epoch, self.epoch_pos = 0, 0, 0
        self._ids: tuple[list[list[int]], list[list[int]]] | None = None
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
        state_path, weights_path = self.out / TRAIN_STATE, self.out / WEIGHTS
        if state_path.is_file():
            state = read_torch_file(state_path)
            load_weights(self.net, state["model"], state_path)
            try:
                self.opt.load_state_dict(state["optimizer"])
                self.step, self.epoch, self.epoch_pos = state["step"], state["epoch"], state["epoch_pos"]
            except (KeyError, ValueError) as exc:
                raise LinasError(f"{state_path}: not a training state of this run ({exc}); delete it to "
                                 "resume from supernet.pt with a fresh optimizer") from None
            self.log(f"resumed from {state_path} at update {self.step} (epoch {self.epoch}, batch {self.epoch_pos})")
        elif weights_path.is_file():
            payload = read_torch_file(weights_path)
            if payload.get("space") != self.space.name:
                raise LinasError(f"{weights_path} was trained on space '{payload.get('space')}', this config "
                                 f"names '{self.space.name}'; choose another output folder")
            load_weights(self.net, payload["model"], weights_path)
            self.step = int(payload["step"])
            self.epoch, self.epoch_pos = int(payload.get("epoch", 0)), int(payload.get("epoch_pos", 0))
            self.log(f"resumed weights from {weights_path} at update {self.step} with a fresh optimizer")
        else:
            self.log(f"new run: {json.dumps(self.settings())}")
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.settings(), sort_keys=False))

    def save(self) -> None:
        t = self.cfg.train
        save_atomic({"model": self.net.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                     "epoch": self.epoch, "epoch_pos": self.epoch_pos}, self.out / TRAIN_STATE)
        # The epoch position lets a weights-only resume continue where this run was.
        path = save_weights(self.net, self.out, self.step, self.settings(), half=t.half_weights,
                            extra={"epoch": self.epoch, "epoch_pos": self.epoch_pos})
        msg = f"saved update {self.step} to {path} ({path.stat().st_size / 1e6:.1f} MB)"
        if self.valid is not None:
            losses = []
            for name, config in (("largest", self.largest), ("smallest", self.smallest)):
                self.net.set_active_subnet(config)
                losses.append(f"{name} {validation_loss(self.net, self.valid):.3f}")
            msg += "; valid loss " + ", ".join(losses)
        self.log(msg)

    # ------------------------------------------------------------------ training
    def epoch_batches(self, epoch: int):
        if self._ids is None:
            self._ids = (encode(self.tokenizer, self.src, self.cfg.train.max_len),
                         encode(self.tokenizer, self.tgt, self.cfg.train.max_len))
        rng = np.random.default_rng([self.cfg.train.seed, epoch])
        return batches_of_ids(*self._ids, self.cfg.train.max_tokens, rng)

    def subnets_for(self, step: int) -> list[dict[str, Any]]:
        """The SubTransformers trained at update ``step`` (deterministic in seed and step)."""
        t = self.cfg.train
        rng = np.random.default_rng([t.seed, step, 1])
        if t.sandwich:
            sampled = self.space.sample(rng, t.sandwich_random)
            return [self.largest, self.smallest] + [self.space.to_config(g) for g in sampled]
        return [self.space.to_config(self.space.sample(rng, 1)[0])]

    def train_step(self, batch) -> float:
        t = self.cfg.train
        self.step += 1
        torch.manual_seed(t.seed * 1_000_003 + self.step)
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(self.step, t)
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        ntok = max(batch.target_tokens, 1)
        total = 0.0
        configs = self.subnets_for(self.step)
        src, prev, target = (x.to(self.device, non_blocking=True) for x in (batch.src, batch.prev, batch.target))
        for config in configs:
            self.net.set_active_subnet(config)
            loss = label_smoothed_loss(self.net(src, prev), target, t.label_smoothing) / ntok
            loss.backward()
            total += loss.item()
        if t.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), t.clip_norm)
        self.opt.step()
        return total / len(configs)

    def run(self) -> int:
        """Train; returns the update count reached."""
        from tqdm import tqdm

        t = self.cfg.train
        start = last_save = time.time()
        bar = tqdm(total=t.max_updates, initial=self.step, disable=not t.progress, file=sys.stderr,
                   mininterval=10, desc="hat supernet", unit="upd")
        running, seen = 0.0, 0
        stop = False
        while self.step < t.max_updates and not stop:
            batches = self.epoch_batches(self.epoch)
            while self.epoch_pos < len(batches):
                loss = self.train_step(batches[self.epoch_pos])
                self.epoch_pos += 1
                running, seen = running + loss, seen + 1
                bar.update(1)
                if self.step % t.log_every == 0:
                    self.log(f"update {self.step} epoch {self.epoch} loss {running / seen:.4f} "
                             f"lr {learning_rate(self.step, t):.2e} elapsed {time.time() - start:.0f}s")
                    bar.set_postfix(loss=f"{running / seen:.3f}")
                    running, seen = 0.0, 0
                if time.time() - last_save > 60 * t.save_every_minutes:
                    self.save()
                    last_save = time.time()
                if self.step >= t.max_updates or (t.max_minutes and time.time() - start > 60 * t.max_minutes):
                    stop = True
                    break
            if not stop:
                self.epoch, self.epoch_pos = self.epoch + 1, 0
        bar.close()
        self.save()
        self.log(f"stopped at update {self.step} (epoch {self.epoch}) after {time.time() - start:.0f}s")
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

