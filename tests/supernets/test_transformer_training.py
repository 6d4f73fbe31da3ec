"""Training the SuperTransformer: overfitting, reproducible resume, schedule, config errors."""

from __future__ import annotations

import pytest
import torch

import supernets.transformer  # noqa: F401 - registers hat_tiny
from linas.config_io import parse
from linas.errors import ConfigError, LinasError
from linas.extensions import trainers
from supernets.transformer.checkpoint import TRAIN_STATE, WEIGHTS, load_supernet
from supernets.transformer.scoring import corpus_bleu, translate
from supernets.transformer.trainer import HatTrainConfig, Trainer, TrainSettings, learning_rate

pytestmark = pytest.mark.usefixtures("one_thread")

N_PAIRS = 6  # sentence pairs the tiny supernet trains on


@pytest.fixture(scope="module")
def tiny_config(write_corpus):
    """``tiny_config(tmp_path, out="out", **train)``: a hat_tiny training config on a few sentence pairs."""

    def make(tmp_path, out="out", **train) -> dict:
        corpus = write_corpus(tmp_path, N_PAIRS)
        settings = {"seed": 0, "max_updates": 200, "warmup": 10, "lr": 3e-3, "label_smoothing": 0.0,
                    "progress": False, "log_every": 50, "threads": 1}
        settings.update(train)
        return {"supernet": "hat", "space": "hat_tiny", "output": str(tmp_path / out),
                "data": {"train": corpus, "valid": corpus},
                "model": {"qkv_dim": 32, "vocab_size": 100, "dropout": 0.0}, "train": settings}

    return make


def run(settings: dict) -> Trainer:
    trainer = Trainer(parse(HatTrainConfig, settings))
    trainer.run()
    trainer.close()
    return trainer


def test_tiny_supernet_overfits_a_handful_of_pairs(tmp_path, tiny_config, en_de):
    en, de = en_de(N_PAIRS)
    trainer = run(tiny_config(tmp_path, sandwich=True, sandwich_random=0, max_updates=160))
    for config, least in ((trainer.largest, 75.0), (trainer.smallest, 50.0)):
        trainer.net.set_active_subnet(config)
        hyps = translate(trainer.net.get_active_subnet(), trainer.tokenizer, en, beam=4)
        assert corpus_bleu(hyps, de).score >= least, hyps


def test_checkpoint_holds_weights_tokenizer_config_and_log(tmp_path, tiny_config, en_de):
    en, _ = en_de(N_PAIRS)
    run(tiny_config(tmp_path, max_updates=3))
    out = tmp_path / "out"
    assert {WEIGHTS, TRAIN_STATE, "tokenizer", "config.yaml", "train.log"} <= {p.name for p in out.iterdir()}
    net, tokenizer, meta = load_supernet(out)
    assert meta["step"] == 3 and meta["space"] == "hat_tiny"
    assert tokenizer.decode(tokenizer(en[0])["input_ids"], skip_special_tokens=True) == en[0]
    assert "valid update 3 stage 2: largest" in (out / "train.log").read_text()


def test_resumed_training_takes_the_same_updates_as_an_uninterrupted_run(tmp_path, tiny_config):
    # float32 moments: bitwise (bfloat16 moments are covered in test_transformer_recipe.py).
    straight = run(tiny_config(tmp_path, out="a", max_updates=8, moments_dtype="float32"))
    run(tiny_config(tmp_path, out="b", max_updates=5, moments_dtype="float32"))
    resumed = run(tiny_config(tmp_path, out="b", max_updates=8, moments_dtype="float32"))
    assert resumed.step == 8
    for (name, p), q in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(p, q), name


def test_same_seed_gives_the_same_subnets_and_batches(tmp_path, tiny_config):
    a = Trainer(parse(HatTrainConfig, tiny_config(tmp_path, out="a")))
    b = Trainer(parse(HatTrainConfig, tiny_config(tmp_path, out="b")))
    assert [a.subnets_for(s) for s in range(1, 6)] == [b.subnets_for(s) for s in range(1, 6)]
    assert all(len(a.subnets_for(s)) == 1 for s in range(1, 6))  # the first recipe: one subnet per update
    assert [x.index.tolist() for x in a.epoch_batches(2)] == [x.index.tolist() for x in b.epoch_batches(2)]
    assert a.subnets_for(1) != a.subnets_for(2)
    a.close()
    b.close()


def test_learning_rate_warms_up_then_decays():
    inv = TrainSettings(lr=1e-3, warmup=100, schedule="inverse_sqrt")
    assert learning_rate(50, inv) == pytest.approx(5e-4)
    assert learning_rate(100, inv) == pytest.approx(1e-3)
    assert learning_rate(400, inv) == pytest.approx(5e-4)
    cos = TrainSettings(lr=1e-3, min_lr=1e-5, warmup=100, max_updates=1100, schedule="cosine")
    assert learning_rate(600, cos) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(1100, cos) == pytest.approx(1e-5)


def test_unknown_training_setting_is_a_one_line_config_error(tmp_path, tiny_config):
    settings = tiny_config(tmp_path, batch_size=32)
    with pytest.raises(ConfigError, match="train.batch_size: unknown key"):
        trainers.get("hat")(settings, tmp_path / "c.yaml")


def test_resuming_with_other_model_widths_is_a_clear_error(tmp_path, tiny_config):
    run(tiny_config(tmp_path, max_updates=1))
    changed = tiny_config(tmp_path, max_updates=2)
    changed["model"]["qkv_dim"] = 16
    with pytest.raises(LinasError, match="weights do not fit this SuperTransformer"):
        Trainer(parse(HatTrainConfig, changed))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / WEIGHTS).write_bytes(b"not a checkpoint")
    with pytest.raises(LinasError, match="not a readable checkpoint"):
        load_supernet(tmp_path)


def test_missing_training_data_is_a_clear_error_and_creates_nothing(tmp_path, tiny_config):
    settings = tiny_config(tmp_path)
    settings["data"]["train"] = {"src": str(tmp_path / "missing.en.gz"), "tgt": str(tmp_path / "a.de")}
    with pytest.raises(LinasError, match="missing.en.gz: no such file"):
        trainers.get("hat")(settings, tmp_path / "c.yaml")
    assert not (tmp_path / "out").exists()
