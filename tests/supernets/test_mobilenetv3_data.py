"""Image data of the MobileNetV3 supernet: streamed from disk vs decoded into memory (tiny trees in tmp_path)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from linas.config_io import parse
from linas.errors import ConfigError
from linas.evaluator import make_evaluator
from linas.spaces import get_space
from supernets.mobilenetv3 import OFAMobileNetV3, max_config
from supernets.mobilenetv3 import datasets as datasets_module
from supernets.mobilenetv3 import decoding as decoding_module
from supernets.mobilenetv3.checkpoint import save_supernet
from supernets.mobilenetv3.data import DataSettings, ImageFiles, ImageSet, load_split

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = [(12, 10), (9, 14), (8, 8), (20, 11)]  # wider, taller, exact and larger: every resize/crop path


def _write_image(path, index: int) -> None:
    from PIL import Image

    w, h = SIZES[index % len(SIZES)]
    pixels = np.random.default_rng(index).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _imagefolder(root, train: int = 5, val: int = 3):
    """``root/{train,val}/<class>/`` with three classes of PNG and JPEG images."""
    n = 0
    for split, count in (("train", train), ("val", val)):
        for c in ("ant", "bee", "cat"):
            for i in range(count):
                _write_image(root / split / c / f"{i}.{'png' if i % 2 else 'jpg'}", n)
                n += 1
    return root


def _tiny_imagenet(root):
    """Tiny-ImageNet layout: wnids.txt, train/<wnid>/images/, val/images/ with val_annotations.txt."""
    wnids = ["n03", "n01", "n02"]
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    n = 0
    for w in wnids:
        for i in range(4):
            _write_image(root / "train" / w / "images" / f"{w}_{i}.JPEG", n)
            n += 1
    lines = []
    for i in range(5):
        _write_image(root / "val" / "images" / f"val_{i}.JPEG", n)
        n += 1
        lines.append(f"val_{i}.JPEG\t{wnids[i % 3]}\t0\t0\t5\t5")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets_module, "CACHE", tmp_path / "cache")


@pytest.fixture(params=["imagefolder", "tiny_imagenet"])
def settings(request, tmp_path, cache):
    """In-memory settings of a tiny tree of either layout (``stream`` off)."""
    if request.param == "imagefolder":
        root = _imagefolder(tmp_path / "folder")
    else:
        root = _tiny_imagenet(tmp_path / "tiny-imagenet-200")
    return DataSettings(kind=request.param, root=str(root), load_size=8, pad_crop=2)


def _streamed(settings: DataSettings, workers: int = 2) -> DataSettings:
    return settings.model_copy(update={"stream": True, "workers": workers})


@pytest.fixture
def decodes(monkeypatch):
    """Counts the images decoded from disk (a list of their paths)."""
    seen = []
    decode_one = decoding_module.decode_one

    def counting(path, *args):
        seen.append(path)
        return decode_one(path, *args)

    monkeypatch.setattr(decoding_module, "decode_one", counting)
    return seen


def _all(batches):
    return [(x.clone(), y.clone()) for x, y in batches]


def _assert_same_batches(a, b):
    assert len(a) == len(b) and a
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_eval_batches_equal_the_decoded_ones(settings, split, workers):
    memory, streamed = load_split(settings, split), load_split(_streamed(settings, workers), split)
    assert isinstance(memory, ImageSet) and isinstance(streamed, ImageFiles)
    assert torch.equal(memory.labels, streamed.labels) and memory.n_classes == streamed.n_classes == 3
    for resolution in (8, 6):
        _assert_same_batches(_all(memory.eval_batches(resolution, 4)), _all(streamed.eval_batches(resolution, 4)))
    assert torch.equal(streamed.materialize().images, memory.images)


def test_subset_picks_the_same_images_in_both_modes_and_decodes_nothing(settings, decodes):
    memory = load_split(settings, "train")
    decodes.clear()
    streamed = load_split(_streamed(settings), "train")
    for n, seed in ((7, 3), (5, 0), (100, 1)):
        a, b = memory.subset(n, seed), streamed.subset(n, seed)
        assert len(a) == len(b) == min(n, len(memory)) and torch.equal(a.labels, b.labels)
        assert not decodes
        assert torch.equal(b.materialize().images, a.images) and len(decodes) == len(b)
        decodes.clear()
    assert streamed.subset(None, seed=0) is streamed and memory.subset(5, 0).materialize().images.shape[0] == 5


def test_streamed_train_batches_equal_the_decoded_ones_with_the_same_seed(settings):
    memory, streamed = load_split(settings, "train"), load_split(_streamed(settings), "train")

    def epoch(images, seed, **kw):
        generator = torch.Generator().manual_seed(seed)
        return _all(images.train_batches(8, 3, generator, settings.pad_crop, True, **kw))

    _assert_same_batches(epoch(memory, 5), epoch(streamed, 5))
    assert len(epoch(memory, 5)) == len(memory) // 3
    assert not all(torch.equal(x, y) for (x, _), (y, _) in zip(epoch(memory, 5), epoch(memory, 6)))


def test_skipped_batches_are_not_read_and_the_rest_of_the_epoch_is_unchanged(settings, decodes):
    streamed = load_split(_streamed(settings), "train")
    full = _all(streamed.train_batches(8, 3, torch.Generator().manual_seed(1), 2, True))
    decodes.clear()
    rest = _all(streamed.train_batches(8, 3, torch.Generator().manual_seed(1), 2, True, skip=2))
    _assert_same_batches(rest, full[2:])
    assert len(decodes) == 3 * len(rest)


def test_evaluator_on_streamed_data_decodes_only_calibration_and_validation_images(tmp_path, cache, decodes):
    root = _imagefolder(tmp_path / "folder", train=6, val=4)
    checkpoint = save_supernet(tmp_path / "supernet.pt", OFAMobileNetV3(n_classes=3, width_mult=0.25, dropout=0.0))
    data = {"kind": "imagefolder", "root": str(root), "load_size": 16, "flip": False, "stream": True, "workers": 2}
    options = {"checkpoint": str(checkpoint), "data": data, "resolution": 16, "calib_images": 5, "calib_batch": 5,
               "val_images": 4, "batch_size": 4, "latency": "measured", "latency_repeats": 1}
    evaluator = make_evaluator("ofa_mbv3_supernet", get_space("ofa_mbv3"), options)
    assert len(decodes) == 5 + 4 and len(set(decodes)) == 9  # of 18 training and 12 validation images
    assert isinstance(evaluator.calib, ImageSet) and isinstance(evaluator.val, ImageSet)
    result = evaluator.evaluate_one(max_config())
    assert 0.0 <= result["top1"] <= 100.0 and len(decodes) == 9  # evaluations reuse the decoded images

    in_memory = make_evaluator("ofa_mbv3_supernet", get_space("ofa_mbv3"),
                               {**options, "data": {**data, "stream": False}})
    assert torch.equal(in_memory.calib.images, evaluator.calib.images)
    assert torch.equal(in_memory.val.labels, evaluator.val.labels)
    assert in_memory.identity == evaluator.identity  # same pixels: shared cache entries


def test_training_on_streamed_data_gives_the_weights_of_training_in_memory(tmp_path, cache):
    from supernets.mobilenetv3.trainer import TrainerConfig, train_supernet

    root = _imagefolder(tmp_path / "folder", train=4, val=1)  # 12 images: 2 steps of 6
    weights = []
    for stream in (False, True):
        config = parse(TrainerConfig, {
            "supernet": "ofa_mbv3", "output": str(tmp_path / f"out-{stream}"),
            "data": {"kind": "imagefolder", "root": str(root), "load_size": 16, "stream": stream, "workers": 2},
            "model": {"width_mult": 0.25, "dropout": 0.0},
            "train": {"epochs": 1, "batch_size": 6, "resolution": 16, "n_random": 0, "eval_images": 0,
                      "threads": 1, "progress": False}})
        train_supernet(config)
        weights.append(torch.load(tmp_path / f"out-{stream}" / "supernet.pt", weights_only=True)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("stream", [False, True])
def test_data_errors_are_one_line_config_errors(tmp_path, cache, stream):
    def fails(match, root, split="train", kind="imagefolder"):
        settings = DataSettings(kind=kind, root=str(root), load_size=8, stream=stream)
        with pytest.raises(ConfigError, match=match) as info:
            images = load_split(settings, split)
            next(images.eval_batches(8, 64))
        assert "\n" not in str(info.value)

    fails("is not a folder", tmp_path / "nowhere")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    fails("has no class subfolders", tmp_path / "empty")
    (tmp_path / "noimages" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "noimages" / "train" / "cat" / "notes.txt").write_text("no image")
    fails("has class subfolders but no images", tmp_path / "noimages")

    root = _imagefolder(tmp_path / "bad", train=2, val=1)
    (root / "train" / "bee" / "broken.jpg").write_bytes(b"not a jpeg")
    fails(r"cannot read image .*bee/broken\.jpg", root)

    tiny = _tiny_imagenet(tmp_path / "tiny")
    (tiny / "val" / "images" / "val_3.JPEG").unlink()
    fails(r"cannot read image .*val_3\.JPEG", tiny, "val", "tiny_imagenet")


def test_new_settings_keep_existing_configs_and_their_identity():
    settings = DataSettings(kind="imagefolder", root="/data")
    assert settings.stream is False and settings.workers >= 0 and settings.crop_ratio == 1.0
    assert set(settings.identity()) == {"kind", "root", "train_split", "val_split", "load_size", "val_fraction",
                                        "split_seed", "flip", "pad_crop"}  # as before: cached results still match
    assert settings.model_copy(update={"stream": True, "workers": 9}).identity() == settings.identity()
    assert settings.model_copy(update={"crop_ratio": 0.875}).identity()["crop_ratio"] == 0.875
    for bad in ({"workers": -1}, {"crop_ratio": 0.0}, {"crop_ratio": 1.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            parse(DataSettings, {"kind": "imagefolder", **bad})


def test_crop_ratio_resizes_the_shorter_side_up_then_crops_the_center_in_both_modes(tmp_path, cache):
    from PIL import Image

    root = _imagefolder(tmp_path / "folder", train=2, val=1)
    settings = DataSettings(kind="imagefolder", root=str(root), load_size=8, crop_ratio=0.5)
    memory, streamed = load_split(settings, "train"), load_split(_streamed(settings), "train").materialize()
    assert torch.equal(memory.images, streamed.images)
    assert not torch.equal(memory.images, load_split(settings.model_copy(update={"crop_ratio": 1.0}), "train").images)
    with Image.open(root / "train" / "ant" / "0.jpg") as im:  # 12 x 10: shorter side to 16, center 8 x 8
        expected = np.asarray(im.convert("RGB").resize((19, 16), Image.BILINEAR).crop((5, 4, 13, 12)))
    assert np.array_equal(memory.images[0].permute(1, 2, 0).numpy(), expected)


# ----------------------------------------------------------------- split modules, random-resized-crop
def test_data_module_still_exports_what_other_modules_import():
    from supernets.mobilenetv3 import data, datasets, decoding, imagesets, transforms

    assert data.load_split is datasets.load_split and data.DataSettings is datasets.DataSettings
    assert data.ImageSet is imagesets.ImageSet and data.ImageFiles is imagesets.ImageFiles
    assert data.ImageData is imagesets.ImageData and data.subset_index is imagesets.subset_index
    assert data.decode_one is decoding.decode_one and data.IMAGENET_MEAN == transforms.IMAGENET_MEAN
    assert data.CACHE == datasets.CACHE


def test_random_resized_crop_of_the_whole_image_is_the_image_and_mirror_flips_it():
    from supernets.mobilenetv3.transforms import resized_crop

    x = torch.rand(2, 3, 8, 8)
    whole = torch.tensor([[1.0, 1.0, 0.5, 0.5]] * 2)
    torch.testing.assert_close(resized_crop(x, whole, None, 8), x, rtol=0, atol=1e-6)
    mirrored = resized_crop(x, whole, torch.tensor([True, False]), 8)
    torch.testing.assert_close(mirrored[0], x[0].flip(2), rtol=0, atol=1e-6)
    torch.testing.assert_close(mirrored[1], x[1], rtol=0, atol=1e-6)
    # The left half, stretched to the full width: what a bilinear resize of that half gives.
    left = resized_crop(x, torch.tensor([[0.5, 1.0, 0.25, 0.5]] * 2), None, 8)
    expected = torch.nn.functional.interpolate(x[..., :4], size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(left[..., :7], expected[..., :7], rtol=0, atol=1e-5)
    # ... except at the box's right edge, where the pixel beyond the box is blended in, as it is in the image.
    torch.testing.assert_close(left[..., 7], 0.75 * x[..., 3] + 0.25 * x[..., 4], rtol=0, atol=1e-5)
    # A box of a quarter of the area, upscaled to 12 x 12 (the training resolution may differ from the load size).
    assert resized_crop(x, torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2), None, 12).shape == (2, 3, 12, 12)


def test_random_resized_crop_boxes_stay_inside_the_image_and_follow_the_scale():
    from supernets.mobilenetv3.transforms import Augmentation, draw_augmentation

    aug = Augmentation(resized_crop_scale=(0.35, 1.0))
    d = draw_augmentation(4000, torch.Generator().manual_seed(0), aug)
    w, h, cx, cy = d.box.unbind(1)
    assert (w <= 1).all() and (h <= 1).all() and (cx - w / 2 >= 0).all() and (cx + w / 2 <= 1 + 1e-6).all()
    assert (cy - h / 2 >= 0).all() and (cy + h / 2 <= 1 + 1e-6).all()
    area = w * h
    assert area.min() >= 0.35 * 0.74 and area.max() <= 1.0  # clamping to the image only shrinks large boxes
    assert 0.4 < d.mirror.float().mean() < 0.6 and d.dy is None


def test_random_resized_crop_epochs_are_seeded_and_a_resumed_epoch_skips_exactly(settings):
    rrc = settings.model_copy(update={"resized_crop_scale": (0.3, 1.0)})
    data = load_split(rrc, "train")

    def epoch(seed, skip=0, aug=rrc):
        return _all(data.train_batches(6, 3, torch.Generator().manual_seed(seed), skip=skip,
                                       augmentation=aug.augmentation()))

    full = epoch(4)
    _assert_same_batches(epoch(4), full)
    _assert_same_batches(epoch(4, skip=2), full[2:])
    assert full[0][0].shape == (3, 3, 6, 6)
    plain = epoch(4, aug=settings)  # pad-crop: the same images in the same order, other pixels
    assert all(torch.equal(a[1], b[1]) for a, b in zip(full, plain))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(full, plain))


def test_resized_crop_settings_are_checked_and_leave_old_identities_alone():
    settings = DataSettings(kind="tiny_imagenet", root="/data")
    assert "resized_crop_scale" not in settings.identity()
    assert settings.model_copy(update={"resized_crop_scale": (0.5, 1.0)}).identity()["resized_crop_scale"] == [0.5, 1]
    for bad in ({"resized_crop_scale": [0.0, 1.0]}, {"resized_crop_scale": [0.8, 0.5]},
                {"resized_crop_scale": [0.5, 1.5]}, {"resized_crop_ratio": [2.0, 1.0]}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            parse(DataSettings, {"kind": "tiny_imagenet", **bad})


TINY_IMAGENET = datasets_module.Path("~/.cache/linas/data/tiny-imagenet-200").expanduser()


@pytest.mark.skipif(not (TINY_IMAGENET / "wnids.txt").is_file(),
                    reason="Tiny-ImageNet not unpacked into ~/.cache/linas/data (from ../shared/data/images)")
def test_real_tiny_imagenet_has_its_200_classes_and_is_listed_in_both_splits():
    settings = DataSettings(kind="tiny_imagenet", root=str(TINY_IMAGENET), load_size=64, stream=True, workers=0,
                            resized_crop_scale=(0.35, 1.0))
    train, val = load_split(settings, "train"), load_split(settings, "val")
    assert (len(train), len(val), train.n_classes, val.n_classes) == (100_000, 10_000, 200, 200)
    assert torch.equal(torch.bincount(val.labels, minlength=200), torch.full((200,), 50))
    x, y = next(train.subset(16, seed=0).train_batches(64, 8, torch.Generator().manual_seed(0),
                                                      augmentation=settings.augmentation()))
    assert x.shape == (8, 3, 64, 64) and y.shape == (8,) and -3 < float(x.mean()) < 3
