"""Fidelity of the supernet evaluators: a share of the validation data, nested, full at 1."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import supernets.transformer  # noqa: F401 - registers hat_tiny
from linas.evaluator import make_evaluator
from linas.spaces import get_space

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = {"kind": "digits", "load_size": 16, "flip": False, "pad_crop": 1}


@pytest.fixture(scope="module")
def mbv3(tmp_path_factory):
    """ofa_mbv3_supernet on an untrained width-0.25 supernet for digits, 120 validation images."""
    pytest.importorskip("sklearn")
    import json

    from supernets.mobilenetv3 import OFAMobileNetV3
    from supernets.mobilenetv3.checkpoint import save_supernet

    d = tmp_path_factory.mktemp("mbv3_fidelity")
    torch.manual_seed(0)
    save_supernet(d / "supernet.pt", OFAMobileNetV3(n_classes=10, width_mult=0.25, dropout=0.0))
    (d / "lut.json").write_text(json.dumps({"meta": {}, "entries": {}}))
    options = {"checkpoint": str(d / "supernet.pt"), "data": DIGITS, "resolution": 16, "calib_images": 64,
               "calib_batch": 32, "val_images": 120, "batch_size": 64, "lut": str(d / "lut.json"), "threads": 1,
               "latency": "measured", "latency_repeats": 1}
    space = get_space("ofa_mbv3")
    return make_evaluator("ofa_mbv3_supernet", space, options), space


def test_mbv3_fidelity_takes_the_first_share_of_the_validation_images(mbv3):
    evaluator, space = mbv3
    quarter = evaluator.validation_images(0.25)
    assert len(quarter) == 30 and torch.equal(quarter.labels, evaluator.val.labels[:30])
    assert torch.equal(quarter.images, evaluator.val.images[:30])
    assert len(evaluator.validation_images(0.001)) == 1 and evaluator.validation_images(1.0) is evaluator.val
    config = space.to_config(space.sample(np.random.default_rng(0), 1)[0])
    low = evaluator.evaluate_one(config, fidelity=0.25)["top1"]
    assert low * 30 / 100 == pytest.approx(round(low * 30 / 100))  # a share of 30 images
    assert evaluator.evaluate_one(config, fidelity=1.0)["top1"] == evaluator.evaluate_one(config)["top1"]


@pytest.fixture
def hat(hat_evaluator_options):
    return dict(hat_evaluator_options)


@pytest.mark.parametrize("name", ["hat_supernet", "hat_supernet_loss"])
def test_hat_fidelity_uses_nested_fixed_subsets_of_the_pairs(hat, space, name):
    evaluator = make_evaluator(name, space, hat)
    assert len(evaluator.sources) == 4
    subsets = {f: set(zip(*evaluator.pairs_at(f))) for f in (0.25, 0.5, 0.75, 1.0)}
    assert [len(subsets[f]) for f in (0.25, 0.5, 0.75, 1.0)] == [1, 2, 3, 4]
    assert subsets[0.25] < subsets[0.5] < subsets[0.75] < subsets[1.0]
    assert evaluator.pairs_at(0.5) == make_evaluator(name, space, hat).pairs_at(0.5)  # fixed seed
    config = space.to_config(space.sample(np.random.default_rng(0), 1)[0])
    outcome = dict(evaluator.evaluate([config], fidelity=0.5))[0]
    assert outcome.ok, outcome.error
    assert evaluator.evaluate_one(config, fidelity=1.0) == evaluator.evaluate_one(config)


def test_hat_bleu_at_a_fidelity_is_the_bleu_of_its_pairs(hat, space):
    from supernets.transformer.scoring import corpus_bleu, translate

    evaluator = make_evaluator("hat_supernet", space, hat)
    config = space.to_config(space.sample(np.random.default_rng(1), 1)[0])
    sources, references = evaluator.pairs_at(0.5)
    model = evaluator.subnet(config)
    hyps = translate(model, evaluator.tokenizer, sources, evaluator.beam, evaluator.len_penalty,
                     evaluator.max_tokens)
    assert evaluator.evaluate_one(config, fidelity=0.5)["bleu"] == corpus_bleu(hyps, references).score
