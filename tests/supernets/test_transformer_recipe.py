"""Issue 11's recipe: sandwich order, in-place distillation, sliced positions, stage switch, exact resume."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import supernets.transformer  # noqa: F401 - registers hat_tiny
from linas.config_io import parse
from linas.errors import LinasError
from linas.spaces import get_space
from supernets.transformer.arch import extreme_configs
from supernets.transformer.checkpoint import WEIGHTS, load_supernet
from supernets.transformer.layers import sinusoidal_positions
from supernets.transformer.model import PAD, SuperTransformer
from supernets.transformer.recipe import (
    LARGEST,
    RANDOM,
    SMALLEST,
    distillation_loss,
    label_smoothed_loss,
    sandwich,
    stage1_done,
)
from supernets.transformer.train_state import find_state, load_state, save_state
from supernets.transformer.trainer import HatTrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

N_PAIRS = 6
OLD_CHECKPOINT = Path(__file__).resolve().parents[2] / "results" / "hat" / "multi30k"


@pytest.fixture(scope="module")
def tiny(write_corpus):
    """``tiny(tmp_path, out="out", dropout=0.0, **train)``: a parsed hat_tiny config on six sentence pairs."""

    def make(tmp_path, out="out", dropout=0.0, **train) -> HatTrainConfig:
        corpus = write_corpus(tmp_path, N_PAIRS)
        settings = {"seed": 0, "max_updates": 8, "warmup": 4, "lr": 3e-3, "label_smoothing": 0.1,
                    "progress": False, "log_every": 2, "threads": 1, "stage1_updates": 3,
                    "sandwich": True, "sandwich_random": 2, "distill": True, "scale_dropout": True,
                    "moments_dtype": "float32"}
        settings.update(train)
        return parse(HatTrainConfig, {
            "supernet": "hat", "space": "hat_tiny", "output": str(tmp_path / out),
            "data": {"train": corpus, "valid": corpus},
            "model": {"qkv_dim": 32, "vocab_size": 100, "dropout": dropout}, "train": settings})

    return make


def train(config: HatTrainConfig) -> Trainer:
    trainer = Trainer(config)
    trainer.run()
    trainer.close()
    return trainer


# ---------------------------------------------------------------------- sandwich
def test_sandwich_trains_largest_then_smallest_then_random(space):
    largest, smallest = extreme_configs(space)
    update = sandwich(space, largest, smallest, 3, np.random.default_rng(0))
    assert [role for role, _ in update] == [LARGEST, SMALLEST, RANDOM, RANDOM, RANDOM]
    assert update[0][1] == largest and update[1][1] == smallest
    randoms = [c for _, c in update[2:]]
    assert all(c not in (largest, smallest) for c in randoms)
    assert sandwich(space, largest, smallest, 0, np.random.default_rng(0)) == update[:2]


def test_trainer_uses_the_largest_alone_in_stage1_and_the_sandwich_after(tmp_path, tiny):
    trainer = Trainer(tiny(tmp_path))
    assert trainer.stage == 1
    assert trainer.subnets_for(1) == [(LARGEST, trainer.largest)]
    stage2 = trainer.subnets_for(1, stage=2)
    assert [r for r, _ in stage2] == [LARGEST, SMALLEST, RANDOM, RANDOM]
    assert stage2 == trainer.subnets_for(1, stage=2)  # deterministic in (seed, step)
    assert stage2[2:] != trainer.subnets_for(2, stage=2)[2:]
    trainer.close()


def test_stage1_ends_at_its_update_cap_or_when_the_valid_loss_flattens():
    assert stage1_done([5.0, 4.0], 10, 10, 0, 0.01).startswith("stage 1 reached its 10 updates")
    assert stage1_done([5.0, 4.0, 3.0], 5, 10, 2, 0.01) is None          # still improving
    assert stage1_done([5.0, 4.0, 3.995, 3.999], 5, 10, 2, 0.01) is not None  # 0.005 < min_delta
    assert stage1_done([5.0, 4.0, 3.95, 3.999], 5, 10, 2, 0.01) is None   # 0.05 gain in the window
    assert stage1_done([5.0, 5.0, 5.0], 5, 10, 0, 0.01) is None            # plateau rule off


def test_stage_switch_is_logged_and_recorded(tmp_path, tiny):
    trainer = train(tiny(tmp_path, max_updates=5, valid_every=1))
    log = (tmp_path / "out" / "train.log").read_text()
    assert "stage 1 ends at update 3: stage 1 reached its 3 updates; stage 2 from update 4: sandwich" in log
    assert trainer.stage == 2 and trainer.stage2_start == 4
    assert [h["stage"] for h in trainer.history] == [1, 1, 1, 2, 2]
    assert "shuffled source" in log and "tok/s" in log and "ETA" in log


# ---------------------------------------------------------------------- distillation
def test_distillation_loss_is_kl_of_teacher_to_student_over_real_tokens():
    teacher = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])                  # [B=1, T=2, V=2]
    student = torch.tensor([[[0.0, math.log(3.0)], [5.0, -5.0]]])       # q = (1/4, 3/4) at t=0
    target = torch.tensor([[1, PAD]])                                   # t=1 is padding: ignored
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # = 0.5 ln(4/3)
    assert distillation_loss(student, teacher, target).item() == pytest.approx(expected, rel=1e-6)
    target = torch.tensor([[1, 1]])                                     # now t=1 counts: q(0) = 1/(1+e^-10)
    expected += -math.log(1 / (1 + math.exp(-10.0)))
    assert distillation_loss(student, teacher, target).item() == pytest.approx(expected, rel=1e-5)
    smooth = torch.tensor([[[0.2, 0.8], [0.6, 0.4]]])
    assert distillation_loss(smooth.log(), smooth, target).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_refuses_a_teacher_that_would_receive_gradients():
    teacher = torch.full((1, 1, 3), 1 / 3, requires_grad=True)
    with pytest.raises(ValueError, match="detached"):
        distillation_loss(torch.zeros(1, 1, 3), teacher, torch.tensor([[1]]))


def test_sandwich_gradient_is_ce_of_largest_plus_kd_of_students_with_a_constant_teacher(tmp_path, tiny):
    """The summed gradient of one update is what it must be if no gradient reaches the teacher
    through the students: a teacher that is not detached would add d KD / d teacher."""
    trainer = Trainer(tiny(tmp_path, sandwich_random=1, stage1_updates=0, label_smoothing=0.1))
    net = trainer.net
    batch = trainer.epoch_batches(0)[0]
    update = trainer.subnets_for(1)
    trainer.opt.step = lambda *a, **k: None  # keep the gradients of the update, not the step
    trainer.train_step(batch)
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    net.zero_grad(set_to_none=True)
    ntok = batch.target_tokens
    net.set_active_subnet(update[0][1])
    logits = net(batch.src, batch.prev)
    (label_smoothed_loss(logits, batch.target, 0.1) / ntok).backward()
    teacher = torch.softmax(logits.detach().float(), dim=-1)
    for _, config in update[1:]:
        net.set_active_subnet(config)
        (distillation_loss(net(batch.src, batch.prev), teacher, batch.target) / ntok).backward()
    want = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], msg=name)

    # The same update with the teacher not detached has a different gradient (so the check above can fail).
    net.zero_grad(set_to_none=True)
    net.set_active_subnet(update[0][1])
    logits = net(batch.src, batch.prev)
    loss = label_smoothed_loss(logits, batch.target, 0.1) / ntok
    live = torch.softmax(logits.float(), dim=-1)
    for _, config in update[1:]:
        net.set_active_subnet(config)
        q = torch.log_softmax(net(batch.src, batch.prev).float(), dim=-1)[batch.target.ne(PAD)]
        loss = loss + (-(live[batch.target.ne(PAD)] * q).sum()) / ntok
    loss.backward()
    assert any(not torch.allclose(p.grad, want[n]) for n, p in net.named_parameters() if n in want)
    trainer.close()


def test_bfloat16_autocast_keeps_float32_state_and_a_close_gradient(tmp_path, tiny):
    """autocast: bfloat16 computes the forward passes in bfloat16 only: parameters, gradients and
    losses stay float32, and the update's gradient is the float32 one up to bfloat16 rounding."""
    grads = {}
    for mode in ("off", "bfloat16"):
        torch.manual_seed(0)
        trainer = Trainer(tiny(tmp_path, out=mode, stage1_updates=0, autocast=mode))
        trainer.opt.step = lambda *a, **k: None
        losses = trainer.train_step(trainer.epoch_batches(0)[0])
        assert all(math.isfinite(v) for v in losses.values())
        grads[mode] = {n: q.grad.clone() for n, q in trainer.net.named_parameters() if q.grad is not None}
        assert all(q.dtype == torch.float32 for q in trainer.net.parameters())
        trainer.close()
    assert grads["off"].keys() == grads["bfloat16"].keys()
    flat = {m: torch.cat([g.flatten() for g in grads[m].values()]) for m in grads}
    assert flat["bfloat16"].dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(flat["off"], flat["bfloat16"], dim=0)
    assert 0.98 < cosine < 1.0  # close, and not the float32 computation itself
    # A run resumed with the setting changed says so in its log.
    train(tiny(tmp_path, out="c", max_updates=2))
    train(tiny(tmp_path, out="c", max_updates=3, autocast="bfloat16"))
    assert "train.autocast: 'off' -> 'bfloat16'" in (tmp_path / "c" / "train.log").read_text()


# ---------------------------------------------------------------------- positions
def test_subnet_positions_are_the_full_width_ones_sliced(space):
    torch.manual_seed(0)
    net = SuperTransformer(space, vocab_size=50, qkv_dim=32, dropout=0.0).eval()
    _, smallest = extreme_configs(space)
    net.set_active_subnet(smallest)
    e, full = net.active.encoder_embed_dim, net.arch.encoder_embed_dim
    assert e < full
    with torch.no_grad():
        net.embed.weight.zero_()  # leaves only the positions in the embedding output
    positions = torch.arange(7).expand(2, 7)
    tokens = torch.full((2, 7), 5)
    got = net._embed(tokens, e, positions, net.position_dims[0])
    want = sinusoidal_positions(positions, full)[..., :e]
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, sinusoidal_positions(positions, e))  # the first recipe's positions differ
    # An extracted SubTransformer keeps the super widths, so it computes the same positions.
    assert net.get_active_subnet().position_dims == (net.arch.encoder_embed_dim, net.arch.decoder_embed_dim)


def test_extracted_subnet_matches_the_supernet_with_sliced_positions(space):
    torch.manual_seed(0)
    net = SuperTransformer(space, vocab_size=50, qkv_dim=32, dropout=0.0).eval()
    net.set_active_subnet(extreme_configs(space)[1])
    src = torch.randint(4, 50, (2, 6))
    prev = torch.randint(4, 50, (2, 5))
    torch.testing.assert_close(net.get_active_subnet().eval()(src, prev), net(src, prev))


def test_a_first_recipe_checkpoint_loads_with_active_width_positions(tmp_path, tiny):
    trainer = train(tiny(tmp_path, max_updates=2))
    out = tmp_path / "out"
    payload = torch.load(out / WEIGHTS, weights_only=True)
    assert load_supernet(out)[0].position_dims == (trainer.net.arch.encoder_embed_dim,
                                                    trainer.net.arch.decoder_embed_dim)
    del payload["positions"]  # as the first recipe wrote it
    torch.save(payload, out / WEIGHTS)
    assert load_supernet(out)[0].position_dims == (0, 0)


@pytest.mark.skipif(not (OLD_CHECKPOINT / WEIGHTS).is_file(), reason="the first recipe's checkpoint is not here")
def test_the_committed_first_recipe_checkpoint_still_loads():
    net, _, meta = load_supernet(OLD_CHECKPOINT)
    assert "positions" not in meta and net.position_dims == (0, 0)


def test_training_on_from_first_recipe_weights_is_a_one_line_error(tmp_path, tiny):
    train(tiny(tmp_path, max_updates=2))
    out = tmp_path / "out"
    payload = torch.load(out / WEIGHTS, weights_only=True)
    del payload["positions"]
    torch.save(payload, out / WEIGHTS)
    shutil.rmtree(out / "train_state")  # so the trainer falls back to supernet.pt
    with pytest.raises(LinasError, match="positions at the active width") as info:
        Trainer(tiny(tmp_path, max_updates=3))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------- state and resume
@pytest.mark.parametrize("moments", ["float32", "bfloat16"])
def test_optimizer_state_round_trips_through_the_sharded_files(tmp_path, tiny, moments):
    trainer = train(tiny(tmp_path, max_updates=3))
    save_state(tmp_path / "s", trainer.net, trainer.opt, {"step": 3}, moments, shard_mb=0.05)
    path = find_state(tmp_path / "s")
    assert len(list(path.glob("shard*.pt"))) > 1  # 0.05 MB shards: the state is split
    fresh = Trainer(tiny(tmp_path, out="fresh"))
    assert load_state(path, fresh.net, fresh.opt)["step"] == 3
    a, b = trainer.opt.state_dict(), fresh.opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, st in a["state"].items():
        for key, value in st.items():
            if moments == "float32" or key == "step":
                assert torch.equal(value, b["state"][i][key]), (i, key)
            else:  # bfloat16: 8 significant bits
                torch.testing.assert_close(b["state"][i][key], value, rtol=2 ** -8, atol=0)
    for p, q in zip(trainer.net.parameters(), fresh.net.parameters()):
        assert torch.equal(p, q)  # weights always float32
    trainer.close()
    fresh.close()


def test_resume_with_float32_moments_is_bitwise_the_uninterrupted_run(tmp_path, tiny):
    """k updates, save, resume, m updates == k + m updates, across the stage switch (k=5 > 3) with
    sandwich, distillation and dropout (scaled with the width)."""
    straight = train(tiny(tmp_path, out="a", max_updates=8, dropout=0.1))
    train(tiny(tmp_path, out="b", max_updates=5, dropout=0.1))
    resumed = train(tiny(tmp_path, out="b", max_updates=8, dropout=0.1))
    assert resumed.step == 8 and resumed.stage == straight.stage == 2
    for (name, p), q in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(p, q), name
    for (i, st), st2 in zip(straight.opt.state_dict()["state"].items(), resumed.opt.state_dict()["state"].values()):
        for key in st:
            assert torch.equal(st[key], st2[key]), (i, key)
    assert "resumed from" in (tmp_path / "b" / "train.log").read_text()


def test_resume_with_bfloat16_moments_stays_close_and_says_so(tmp_path, tiny):
    straight = train(tiny(tmp_path, out="a", max_updates=8, moments_dtype="bfloat16"))
    train(tiny(tmp_path, out="b", max_updates=5, moments_dtype="bfloat16"))
    resumed = train(tiny(tmp_path, out="b", max_updates=8, moments_dtype="bfloat16"))
    # 3 updates at lr <= 3e-3 after the resume: far below one step's size apart.
    for (name, p), q in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-3, msg=name)
    assert "Adam moments were stored as bfloat16" in (tmp_path / "b" / "train.log").read_text()


def test_weights_only_resume_says_it_starts_a_fresh_optimizer(tmp_path, tiny):
    train(tiny(tmp_path, max_updates=2))
    shutil.rmtree(tmp_path / "out" / "train_state")
    trainer = Trainer(tiny(tmp_path, max_updates=3))
    assert trainer.step == 2
    trainer.close()
    assert "FRESH OPTIMIZER" in (tmp_path / "out" / "train.log").read_text()


def test_a_save_cut_short_falls_back_to_the_previous_complete_state(tmp_path, tiny):
    train(tiny(tmp_path, max_updates=2))
    out = tmp_path / "out"
    # As if killed between the two renames of a save: only train_state.old/ is complete.
    (out / "train_state").rename(out / "train_state.old")
    (out / "train_state.tmp").mkdir()
    (out / "train_state.tmp" / "shard00.pt").write_bytes(b"half")
    assert find_state(out) == out / "train_state.old"
    trainer = Trainer(tiny(tmp_path, max_updates=3))
    assert trainer.step == 2
    trainer.run()
    trainer.close()
    assert find_state(out) == out / "train_state" and not (out / "train_state.old").exists()


def test_every_state_file_is_below_the_shard_size(tmp_path, tiny):
    train(tiny(tmp_path, max_updates=2, shard_mb=0.05))
    for f in (tmp_path / "out" / "train_state").iterdir():
        assert f.stat().st_size <= 0.05e6, f


def test_a_damaged_shard_is_a_one_line_error(tmp_path, tiny):
    train(tiny(tmp_path, max_updates=2))
    (tmp_path / "out" / "train_state" / "shard00.pt").write_bytes(b"version https://git-lfs")
    with pytest.raises(LinasError, match="unreadable training-state shard") as info:
        Trainer(tiny(tmp_path, max_updates=3))
    assert "\n" not in str(info.value)


def test_space_fixture_is_hat_tiny(space):
    assert space.name == get_space("hat_tiny").name
