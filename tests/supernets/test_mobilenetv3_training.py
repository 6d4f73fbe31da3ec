"""Training, BN recalibration, evaluation and latency of the OFA MobileNetV3 supernet (digits, random tensors)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from linas.config_io import parse
from linas.errors import ConfigError, LinasError
from linas.evaluator import make_evaluator
from linas.spaces import get_space
from supernets.mobilenetv3 import OFAMobileNetV3, max_config, min_config
from supernets.mobilenetv3.checkpoint import load_supernet, read_weights
from supernets.mobilenetv3.data import DataSettings, load_split
from supernets.mobilenetv3.evaluation import recalibrate_bn
from supernets.mobilenetv3.latency import LatencyTable, measure_latency
from supernets.mobilenetv3.trainer import TrainerConfig, lr_at, param_groups, train_supernet

DIGITS = {"kind": "digits", "load_size": 16, "flip": False, "pad_crop": 1}


def _digits_config(out, **train):
    settings = {"supernet": "ofa_mbv3", "data": DIGITS, "model": {"width_mult": 0.25, "dropout": 0.0},
                "train": {"epochs": 1, "batch_size": 32, "lr": 0.15, "resolution": 16, "warmup_epochs": 0.2,
                          "n_random": 0, "label_smoothing": 0.0, "eval_images": None, "calib_images": 200,
                          "progress": False,
                          "threads": 1, **train},
                "output": str(out)}
    return parse(TrainerConfig, settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny supernet trained on digits (shared by the tests that need trained weights)."""
    out = tmp_path_factory.mktemp("digits")
    summary = train_supernet(_digits_config(out))
    return out, summary


def test_tiny_supernet_learns_digits_well_above_chance(trained):
    _, summary = trained
    assert summary["top1_max"] > 50.0  # chance is 10%
    assert summary["top1_min"] > 25.0


def test_training_writes_a_loadable_supernet_and_a_log(trained):
    out, _ = trained
    net = load_supernet(out / "supernet.pt")
    assert net.n_classes == 10 and net.width_mult == 0.25
    lines = (out / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]


def test_resumed_training_reproduces_an_uninterrupted_run(tmp_path):
    quick = {"epochs": 1, "batch_size": 64, "n_random": 1, "eval_images": 0}
    full, paused = tmp_path / "full", tmp_path / "paused"
    assert train_supernet(_digits_config(full, stop_at_step=6, **quick))["paused_at_step"] == 6
    assert train_supernet(_digits_config(paused, stop_at_step=3, **quick))["paused_at_step"] == 3
    train_supernet(_digits_config(paused, stop_at_step=6, **quick))
    a = read_weights(full / "checkpoint.pt")
    b = read_weights(paused / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0)


def test_no_weight_decay_on_batch_norm_and_biases():
    groups = param_groups(OFAMobileNetV3(n_classes=3, width_mult=0.25), 1e-4)
    decayed = {id(p) for p in groups[0]["params"]}
    net_bn = [m for m in OFAMobileNetV3(n_classes=3, width_mult=0.25).modules()
              if isinstance(m, torch.nn.BatchNorm2d)]
    assert groups[1]["weight_decay"] == 0.0 and all(p.ndim <= 1 for p in groups[1]["params"])
    assert all(p.ndim > 1 for p in groups[0]["params"]) and decayed and net_bn


def test_learning_rate_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[100] == pytest.approx(0.0)


def test_bn_recalibration_is_the_average_of_exact_batch_statistics():
    torch.manual_seed(0)
    net = OFAMobileNetV3(n_classes=4, width_mult=0.25)
    net.set_active_subnet(min_config())
    subnet = net.get_active_subnet()
    batches = [torch.randn(8, 3, 16, 16) * (i + 1) for i in range(3)]
    recalibrate_bn(subnet, batches)
    first = subnet.first_conv
    with torch.no_grad():
        means = [first.conv(x).mean((0, 2, 3)) for x in batches]
    torch.testing.assert_close(first.bn.running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
    stats = {k: v.clone() for k, v in subnet.state_dict().items()}
    for m in subnet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.add_(3.0)
    recalibrate_bn(subnet, batches)  # again, from disturbed statistics
    for k, v in subnet.state_dict().items():
        torch.testing.assert_close(v, stats[k], rtol=0, atol=0)
    assert not subnet.training


def test_digits_split_is_seeded_and_disjoint():
    settings = DataSettings(**DIGITS)
    train, val = load_split(settings, "train"), load_split(settings, "val")
    assert len(train) + len(val) == 1797 and train.n_classes == 10
    again = load_split(settings, "val")
    assert torch.equal(val.images, again.images)


def test_missing_data_folder_is_a_one_line_error(tmp_path):
    settings = DataSettings(kind="tiny_imagenet", root=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="is not a folder"):
        load_split(settings, "train")


def test_lookup_table_predicts_every_subnet_of_its_resolution(tmp_path):
    table = LatencyTable.build(0.25, 10, [16], repeats=2, warmup=1, progress=False)
    path = table.save(tmp_path / "lut.json")
    table = LatencyTable.load(path)
    small, big = table.predict(min_config()), table.predict(max_config())
    assert 0 < small < big
    deeper = dict(min_config(), d_2=3, ks_10=7, e_10=6)  # one more block than the smallest
    assert table.predict(deeper) > small
    space = get_space("ofa_mbv3")
    for genome in space.sample(np.random.default_rng(0), 20):  # every shape of the space is in the table
        assert table.predict(space.to_config(genome)) > 0
    with pytest.raises(ConfigError, match="no entry"):
        table.predict(min_config(), resolution=24)


def test_measured_latency_reports_min_and_median():
    net = OFAMobileNetV3(n_classes=10, width_mult=0.25)
    net.set_active_subnet(min_config())
    result = measure_latency(net.get_active_subnet(), 16, warmup=1, repeats=3)
    assert 0 < result["min_ms"] <= result["median_ms"]


def test_evaluator_measures_all_metrics_with_data_loaded_once(trained, tmp_path):
    out, summary = trained
    LatencyTable.build(0.25, 10, [16], repeats=2, warmup=1, progress=False).save(tmp_path / "lut.json")
    options = {"checkpoint": str(out / "supernet.pt"), "data": DIGITS, "resolution": 16,
               "calib_images": 200, "calib_batch": 200, "lut": str(tmp_path / "lut.json")}
    evaluator = make_evaluator("ofa_mbv3_supernet", get_space("ofa_mbv3"), options)
    big = evaluator.evaluate_one(max_config())
    small = evaluator.evaluate_one(min_config())
    assert big["top1"] == pytest.approx(summary["top1_max"], abs=0.01)  # same calibration recipe as training (log rounds)
    assert big["macs"] > small["macs"] and big["params"] > small["params"] and big["latency"] > small["latency"]
    assert evaluator.evaluate_one(max_config()) == big  # deterministic
    assert "ckpt=" in evaluator.identity


def test_evaluator_rejects_an_invalid_config(trained, tmp_path):
    out, _ = trained
    options = {"checkpoint": str(out / "supernet.pt"), "data": DIGITS, "resolution": 16, "calib_images": 64,
               "latency": "measured", "latency_repeats": 1}
    evaluator = make_evaluator("ofa_mbv3_supernet", get_space("ofa_mbv3"), options)
    outcome = evaluator.guarded(dict(max_config(), ks_0=4))
    assert not outcome.ok and "ks_0=4" in outcome.error


def _write_images(folder, n, value):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (12, 10), (value, i * 10, 0)).save(folder / f"img{i}.JPEG")


def test_imagefolder_layout_is_read_with_sorted_class_labels(tmp_path, monkeypatch):
    from supernets.mobilenetv3 import datasets

    monkeypatch.setattr(datasets, "CACHE", tmp_path / "cache")
    for label, name in enumerate(["cat", "dog"]):
        _write_images(tmp_path / "cifar" / "train" / name, 3, 100 * label)
        _write_images(tmp_path / "cifar" / "test" / name, 2, 100 * label)
    settings = DataSettings(kind="imagefolder", root=str(tmp_path / "cifar"), val_split="test", load_size=8)
    train, val = load_split(settings, "train"), load_split(settings, "val")
    assert train.images.shape == (6, 3, 8, 8) and train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(val) == 4 and val.n_classes == 2
    assert torch.equal(load_split(settings, "train").images, train.images)  # from the decoded cache


def test_tiny_imagenet_validation_labels_come_from_the_annotations(tmp_path, monkeypatch):
    from supernets.mobilenetv3 import datasets

    monkeypatch.setattr(datasets, "CACHE", tmp_path / "cache")
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        _write_images(root / "train" / w / "images", 2, 0)
    _write_images(root / "val" / "images", 3, 0)
    (root / "val" / "val_annotations.txt").write_text(
        "img0.JPEG\tn02\t0\t0\t5\t5\nimg1.JPEG\tn01\t0\t0\t5\t5\nimg2.JPEG\tn02\t0\t0\t5\t5\n")
    settings = DataSettings(kind="tiny_imagenet", root=str(root), load_size=8)
    val = load_split(settings, "val")
    assert val.labels.tolist() == [1, 0, 1] and val.n_classes == 2  # classes sorted: n01 -> 0, n02 -> 1
    assert load_split(settings, "train").labels.tolist() == [0, 0, 1, 1]


def test_shipped_mbv3_configs_are_valid():
    from pathlib import Path

    from linas.config_io import load_yaml
    from supernets.mobilenetv3.evaluator import SupernetEvaluatorOptions
    from supernets.mobilenetv3.latency import LutSettings

    configs = sorted((Path(__file__).resolve().parents[2] / "experiments" / "configs").glob("mbv3_*.yaml"))
    assert configs
    for path in configs:
        data = load_yaml(path)
        if "evaluator" in data:
            parse(SupernetEvaluatorOptions, data["evaluator"]["options"], where=str(path))
        elif "resolutions" in data:
            parse(LutSettings, data, where=str(path))
        else:
            parse(TrainerConfig, data, where=str(path))


def test_calibration_subset_is_seeded_and_not_in_class_order():
    from supernets.mobilenetv3.data import ImageSet

    labels = torch.arange(10).repeat_interleave(40)  # stored class by class, as ImageFolder reads them
    images = torch.arange(400, dtype=torch.uint8).view(400, 1, 1, 1).expand(400, 3, 2, 2).contiguous()
    data = ImageSet(images, labels, 10)
    calib = data.subset(200, seed=0)
    assert torch.equal(calib.labels, data.subset(200, seed=0).labels) and len(calib) == 200
    first_batch = calib.labels[:50]
    assert len(first_batch.unique()) >= 8  # a batch mixes classes; sorted indices would give about 3
    assert len(data.subset(1000, seed=1)) == 400 and data.subset(None, seed=1) is data


def test_bad_training_config_is_a_one_line_cli_error(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "train.yaml"
    config.write_text("supernet: ofa_mbv3\ndata: {kind: digits}\ntrain: {n_random: two}\noutput: "
                      f"{tmp_path / 'out'}\n")
    result = subprocess.run([sys.executable, "-m", "linas.cli", "train-supernet", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("linas: error:") and "n_random" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_output_folder_holding_another_file_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    from supernets.mobilenetv3.checkpoint import save_supernet

    save_supernet(out / "checkpoint.pt", OFAMobileNetV3(n_classes=10, width_mult=0.25, dropout=0.0))
    with pytest.raises(LinasError, match="not a training checkpoint"):
        train_supernet(_digits_config(out, eval_images=0))


# ----------------------------------------------------------------- stages, exact resume, progress
STAGED = {"epochs": 2, "stage1_epochs": 1, "batch_size": 64, "n_random": 1, "eval_images": 0}
STAGED_DATA = {**DIGITS, "flip": True, "resized_crop_scale": [0.3, 1.0]}


def _staged_config(out, **train):
    config = _digits_config(out, **{**STAGED, **train})
    return config.model_copy(update={"data": parse(DataSettings, STAGED_DATA),
                                     "model": config.model.model_copy(update={"dropout": 0.2})})


def test_stage_one_trains_the_largest_alone_then_the_sandwich_rule_follows(tmp_path, monkeypatch):
    from supernets.mobilenetv3 import trainer as trainer_module

    calls = []
    original = trainer_module.OFAMobileNetV3.set_active_subnet

    def spy(self, config):
        canonical = original(self, config)
        calls.append("max" if canonical == max_config() else "min" if canonical == min_config() else "random")
        return canonical

    steps_seen = []
    original_step = trainer_module.SandwichTrainer.train_step

    def step_spy(self, x, y):
        calls.clear()
        out = original_step(self, x, y)
        steps_seen.append((self.step, tuple(calls)))
        return out

    monkeypatch.setattr(trainer_module.OFAMobileNetV3, "set_active_subnet", spy)
    monkeypatch.setattr(trainer_module.SandwichTrainer, "train_step", step_spy)
    summary = train_supernet(_staged_config(tmp_path, stop_at_step=24))
    per_epoch = 1348 // 64  # digits: 1,348 training images
    assert summary["paused_at_step"] == 24
    assert [s for s, _ in steps_seen] == list(range(1, 25))
    for step, subnets in steps_seen:
        assert subnets == (("max",) if step <= per_epoch else ("max", "min", "random")), step
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [(e["epoch"], e["stage"]) for e in log] == [(1, 1)] and "loss_min" not in log[0]


def test_stage1_epochs_beyond_the_total_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="stage1_epochs"):
        _digits_config(tmp_path, epochs=2, stage1_epochs=3)


def test_resume_across_the_stages_equals_an_uninterrupted_run_exactly(tmp_path):
    """k steps, save, resume for m more == k + m uninterrupted: weights, BN buffers, momentum, random states."""
    full, paused = tmp_path / "full", tmp_path / "paused"
    train_supernet(_staged_config(full, stop_at_step=26))
    for stop in (9, 21, 23, 26):  # mid stage 1, the end of stage 1 (an epoch), inside stage 2, the target
        result = train_supernet(_staged_config(paused, stop_at_step=stop))
        assert result["paused_at_step"] == stop
    a, b = read_weights(full / "checkpoint.pt"), read_weights(paused / "checkpoint.pt")
    assert a["step"] == b["step"] == 26
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0, msg=k)
    momenta_a = a["optimizer"]["state"]
    momenta_b = b["optimizer"]["state"]
    assert momenta_a.keys() == momenta_b.keys() and momenta_a
    for k in momenta_a:
        torch.testing.assert_close(momenta_a[k]["momentum_buffer"], momenta_b[k]["momentum_buffer"], rtol=0, atol=0)
    assert torch.equal(a["torch_rng"], b["torch_rng"]) and a["subnet_rng"] == b["subnet_rng"]
    assert "resumed from" in (paused / "train.log").read_text()


def test_progress_lines_report_stage_speed_and_eta(tmp_path):
    train_supernet(_staged_config(tmp_path, stop_at_step=24, checkpoint_minutes=0.0))
    log = (tmp_path / "train.log").read_text().splitlines()
    lines = [line for line in log if line.endswith("; checkpoint saved")]
    assert len(lines) >= 20
    assert "stage 1 (largest alone)" in lines[0] and "stage 2 (sandwich)" in lines[-1]
    assert all("img/s" in line and "ETA" in line for line in lines)
    assert "step 24/42" in lines[-1]


def test_checkpoint_is_written_atomically_and_stays_readable(tmp_path, monkeypatch):
    train_supernet(_staged_config(tmp_path, stop_at_step=3))
    before = read_weights(tmp_path / "checkpoint.pt")

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        train_supernet(_staged_config(tmp_path, stop_at_step=5))
    after = read_weights(tmp_path / "checkpoint.pt")  # the interrupted write never replaced it
    assert after["step"] == before["step"] == 3


def test_channels_last_changes_the_layout_not_the_step():
    from supernets.mobilenetv3.trainer import SandwichTrainer

    config = _staged_config("unused", stage1_epochs=0)
    train = load_split(config.data, "train")
    x, y = next(train.train_batches(16, 64, torch.Generator().manual_seed(0), augmentation=config.data.augmentation()))
    results = []
    for layout in (True, False):
        c = config.model_copy(update={"train": config.train.model_copy(update={"channels_last": layout})})
        trainer = SandwichTrainer(c, train)
        torch.manual_seed(1)
        results.append((trainer.train_step(x, y), trainer.net.state_dict()))
    (la, wa), (lb, wb) = results
    assert wa["first_conv.conv.weight"].is_contiguous(memory_format=torch.channels_last)
    assert not wb["first_conv.conv.weight"].is_contiguous(memory_format=torch.channels_last)
    for k in ("loss_max", "loss_min", "loss_random"):
        assert la[k] == pytest.approx(lb[k], abs=1e-5)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-5, msg=k)


def test_tiny_imagenet_training_config_is_valid_and_its_checkpoint_is_committable():
    """The planned run: stage 1 then the sandwich rule, a new output folder, a checkpoint <= 25 MB with momentum."""
    import io
    from pathlib import Path

    from linas.config_io import load_yaml
    from supernets.mobilenetv3.trainer import SandwichTrainer

    root = Path(__file__).resolve().parents[2]
    configs = sorted((root / "experiments" / "configs").glob("tiny_imagenet_mbv3*train*.yaml"))
    assert configs
    for path in configs:
        config = parse(TrainerConfig, load_yaml(path), where=str(path))
        t = config.train
        assert 0 < t.stage1_epochs < t.epochs and t.threads and config.data.resized_crop_scale
        assert config.output != "results/mbv3/tiny_imagenet"  # the earlier supernet stays as it was
        images = torch.zeros(t.batch_size, 3, 8, 8, dtype=torch.uint8)
        from supernets.mobilenetv3.data import ImageSet

        trainer = SandwichTrainer(config, ImageSet(images, torch.arange(t.batch_size) % 200, 200))
        trainer.train_step(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
        for p in trainer.net.parameters():  # the worst case: every weight has trained and holds a momentum buffer
            trainer.optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
        buffer = io.BytesIO()
        torch.save(trainer.state(), buffer)
        assert buffer.tell() > 4 * 2 * sum(p.numel() for p in trainer.net.parameters())  # fp32 weights + momentum
        assert buffer.tell() <= 25e6, f"{path.name}: checkpoint of {buffer.tell() / 1e6:.1f} MB"


def test_a_stop_signal_saves_the_checkpoint_and_the_run_resumes_exactly(tmp_path, monkeypatch):
    import os
    import signal

    from supernets.mobilenetv3 import trainer as trainer_module

    full, stopped = tmp_path / "full", tmp_path / "stopped"
    train_supernet(_staged_config(full, stop_at_step=12))
    original_step = trainer_module.SandwichTrainer.train_step

    def step_then_signal(self, x, y):
        out = original_step(self, x, y)
        if self.step == 7:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` at a session's end
        return out

    monkeypatch.setattr(trainer_module.SandwichTrainer, "train_step", step_then_signal)
    assert train_supernet(_staged_config(stopped, stop_at_step=12))["paused_at_step"] == 7
    assert read_weights(stopped / "checkpoint.pt")["step"] == 7
    assert "stop asked by signal" in (stopped / "train.log").read_text()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers given back
    monkeypatch.setattr(trainer_module.SandwichTrainer, "train_step", original_step)
    train_supernet(_staged_config(stopped, stop_at_step=12))
    a, b = read_weights(full / "checkpoint.pt"), read_weights(stopped / "checkpoint.pt")
    assert a["step"] == b["step"] == 12
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0, msg=k)


def test_a_second_training_into_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    import fcntl
    import os

    tmp_path.mkdir(exist_ok=True)
    fd = os.open(tmp_path / "run.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running trainer holds it
        os.write(fd, b"4242\n")
        with pytest.raises(LinasError, match="another training \\(process 4242\\)"):
            train_supernet(_staged_config(tmp_path, stop_at_step=1))
        assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "config.yaml").exists()
    finally:
        os.close(fd)
    assert train_supernet(_staged_config(tmp_path, stop_at_step=1))["paused_at_step"] == 1  # free again
    assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())
