"""Zero-cost proxies (issue 16): each proxy against a hand computation or a second method,
and the ``zc_mbv3`` / ``zc_hat`` evaluators measure exactly what they declare."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import supernets.transformer  # noqa: E402,F401 - registers hat_tiny
from linas.evaluator import make_evaluator  # noqa: E402
from linas.spaces import get_space  # noqa: E402
from supernets import zero_cost as zc  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
DIGITS = {"kind": "digits", "load_size": 16, "flip": False, "pad_crop": 1}


def two_layer(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))


# ---------------------------------------------------------------------- the proxy math
def test_synflow_of_a_two_layer_linear_net_has_its_closed_form():
    """With |W| and an all-ones input, R = 1^T |W2| |W1| 1, and each layer's sum |W * dR/dW| is R."""
    net = two_layer()
    a1, a2 = net[0].weight.detach().abs().double(), net[2].weight.detach().abs().double()
    r = float(torch.ones(2, dtype=torch.float64) @ a2 @ a1 @ torch.ones(4, dtype=torch.float64))
    zc.make_positive(net)
    score = zc.synflow_score(zc.weights_of(net), net(torch.ones(1, 4, dtype=torch.float64)))
    assert score == pytest.approx(2 * r, rel=1e-12)
    assert zc.log_score(score) == pytest.approx(math.log(2 * r))
    assert net[0].weight.dtype == torch.float64 and bool((net[0].weight >= 0).all())


def test_remove_modules_replaces_normalization_by_identity():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()))
    zc.remove_modules(net, (nn.BatchNorm2d,))
    assert isinstance(net[1], nn.Identity) and isinstance(net[2][0], nn.Identity) and isinstance(net[2][1], nn.ReLU)


def test_grad_norm_and_snip_match_autograd_backward():
    net = two_layer(1)
    x, y = torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 1, 0, 1])
    weights = zc.weights_of(net)
    grads = zc.loss_gradients(nn.functional.cross_entropy(net(x), y), weights)
    # Second method: .backward() into .grad, norms and products by hand.
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    by_hand_norm = sum(math.sqrt(float((m.weight.grad ** 2).sum())) for m in (net[0], net[2]))
    by_hand_snip = sum(float((m.weight.grad * m.weight.detach()).abs().sum()) for m in (net[0], net[2]))
    assert zc.grad_norm(weights, grads) == pytest.approx(by_hand_norm, rel=1e-6)
    assert zc.snip(weights, grads) == pytest.approx(by_hand_snip, rel=1e-6)


def test_an_unused_weight_has_zero_gradient():
    net = two_layer()
    spare = nn.Linear(2, 2, bias=False)
    grads = zc.loss_gradients(net(torch.ones(1, 4)).sum(), [net[0].weight, spare.weight])
    assert float(grads[1].abs().sum()) == 0.0


def test_naswot_kernel_counts_agreements_of_a_hand_made_code_matrix():
    codes = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1]])
    # agreements = 3 - Hamming distance: d(0,1) = 2, d(0,2) = 1, d(1,2) = 3
    expected = torch.tensor([[3, 1, 2], [1, 3, 0], [2, 0, 3]], dtype=torch.float64)
    assert torch.equal(zc.naswot_kernel(codes), expected)
    assert zc.naswot_score(codes) == pytest.approx(math.log(12.0))  # det = 27 - 3 - 12
    # a masked unit (e.g. a padded token) counts for neither sample
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 0]])
    assert torch.equal(zc.naswot_kernel(codes, mask),
                       torch.tensor([[3, 1, 1], [1, 3, 0], [1, 0, 2]], dtype=torch.float64))


def test_activation_codes_see_the_input_before_an_inplace_relu():
    relu = nn.ReLU(inplace=True)
    x = torch.tensor([[-1.0, 2.0, 0.0], [3.0, -4.0, 5.0]])
    with zc.ActivationCodes([relu]) as codes:
        relu(x)
    assert codes.codes().tolist() == [[0, 1, 0], [1, 0, 1]]


def test_jacob_cov_of_identical_and_of_orthogonal_jacobians():
    k = zc.JACOB_COV_K
    same = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])  # correlation [[1, 1], [1, 1]]: eigenvalues 0, 2
    assert zc.jacob_cov_score(same) == pytest.approx(-(math.log(k) + 1 / k + math.log(2 + k) + 1 / (2 + k)))
    opposite = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])  # correlation -1: eigenvalues 0, 2 again
    assert zc.jacob_cov_score(opposite) == pytest.approx(zc.jacob_cov_score(same))
    rng = np.random.default_rng(0)
    j = torch.from_numpy(rng.normal(size=(4, 10)))
    v = torch.linalg.eigvalsh(torch.corrcoef(j)).clamp(min=0)  # second method: torch's corrcoef
    assert zc.jacob_cov_score(j) == pytest.approx(float(-(torch.log(v + k) + 1 / (v + k)).sum()), rel=1e-9)


# ---------------------------------------------------------------------- MobileNetV3
@pytest.fixture(scope="module")
def mbv3_options(tmp_path_factory):
    pytest.importorskip("sklearn")
    from supernets.mobilenetv3 import OFAMobileNetV3
    from supernets.mobilenetv3.checkpoint import save_supernet

    d = tmp_path_factory.mktemp("zc_mbv3")
    torch.manual_seed(0)
    save_supernet(d / "supernet.pt", OFAMobileNetV3(n_classes=10, width_mult=0.25, dropout=0.0))
    return {"checkpoint": str(d / "supernet.pt"), "data": DIGITS, "resolution": 16, "batch": 8, "threads": 1}


def test_zc_mbv3_returns_exactly_its_declared_metrics(mbv3_options):
    space = get_space("ofa_mbv3")
    evaluator = make_evaluator("zc_mbv3", space, mbv3_options)
    config = space.to_config(space.sample(np.random.default_rng(0), 1)[0])
    outcome = evaluator.guarded(config)
    assert outcome.ok, outcome.error
    assert sorted(outcome.metrics) == sorted(m.name for m in evaluator.metrics)
    assert all(type(v) is float and math.isfinite(v) for v in outcome.metrics.values())
    assert {m.name: m.direction for m in evaluator.metrics}["synflow"] == "max"
    # deterministic: one fixed minibatch
    again = evaluator.evaluate_one(config)
    for name in ("synflow", "grad_norm", "snip", "naswot", "jacob_cov", "macs", "params"):
        assert again[name] == pytest.approx(outcome.metrics[name], rel=1e-9)
    assert evaluator.identity.startswith("zc_mbv3:v1:ckpt=") and ":batch=8/0" in evaluator.identity


def test_mbv3_proxies_leave_the_subnet_as_it_was(mbv3_options):
    from supernets.mobilenetv3 import min_config
    from supernets.mobilenetv3.checkpoint import load_supernet
    from supernets.mobilenetv3.zero_cost import mbv3_proxies

    supernet = load_supernet(mbv3_options["checkpoint"])
    supernet.set_active_subnet(min_config())
    subnet = supernet.get_active_subnet().eval()
    before = {k: v.clone() for k, v in subnet.state_dict().items()}
    x, y = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 10
    scores, times = mbv3_proxies(subnet, x, y)
    assert set(scores) == set(times) == {"synflow", "grad_norm", "snip", "naswot", "jacob_cov"}
    assert not subnet.training
    for k, v in subnet.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k


def test_zc_mbv3_proxies_option_computes_only_the_subset_and_the_same_values(mbv3_options):
    space = get_space("ofa_mbv3")
    full = make_evaluator("zc_mbv3", space, mbv3_options)
    subset = make_evaluator("zc_mbv3", space, {**mbv3_options, "proxies": ["jacob_cov", "snip"]})
    assert [m.name for m in subset.metrics] == ["snip", "jacob_cov", "zc_seconds", "macs", "params"]
    assert subset.identity == full.identity + ":proxies=snip,jacob_cov"  # never shares cached scores
    config = space.to_config(space.sample(np.random.default_rng(2), 1)[0])
    outcome, reference = subset.guarded(config), full.evaluate_one(config)
    assert outcome.ok, outcome.error
    assert sorted(outcome.metrics) == sorted(m.name for m in subset.metrics)
    for name in ("snip", "jacob_cov", "macs", "params"):
        assert outcome.metrics[name] == pytest.approx(reference[name], rel=1e-9)


@pytest.mark.parametrize("proxies, message", [(["snip", "flops"], "unknown proxy 'flops'; known: synflow"),
                                              ([], "name at least one proxy")])
def test_zc_mbv3_proxies_option_rejects_a_bad_list_in_one_line(mbv3_options, proxies, message):
    from linas.errors import ConfigError

    with pytest.raises(ConfigError, match=f"evaluator 'zc_mbv3': proxies: {message}") as info:
        make_evaluator("zc_mbv3", get_space("ofa_mbv3"), {**mbv3_options, "proxies": proxies})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------- Transformer
def test_uniform_attention_is_exact_when_every_position_is_alike():
    from supernets.transformer.layers import Attention
    from supernets.transformer.zero_cost import uniform_attention

    torch.manual_seed(0)
    attn = Attention(8, 8, 8, 2).double()
    x = torch.randn(1, 1, 8, dtype=torch.float64).expand(1, 5, 8)
    k, v = attn.project_kv(x)
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    assert torch.allclose(attn(x, k, v, causal), uniform_attention(attn, x, k, v, causal))


def test_zc_hat_returns_exactly_its_declared_metrics(hat_evaluator_options, space):
    options = {"checkpoint": hat_evaluator_options["checkpoint"], "corpus": hat_evaluator_options["corpus"],
               "batch": 4, "threads": 1}
    evaluator = make_evaluator("zc_hat", space, options)
    configs = [space.to_config(g) for g in space.sample(np.random.default_rng(0), 2)]
    for _, outcome in evaluator.evaluate(configs):
        assert outcome.ok, outcome.error
        assert sorted(outcome.metrics) == sorted(m.name for m in evaluator.metrics)
        assert all(type(v) is float and math.isfinite(v) for v in outcome.metrics.values())
    assert evaluator.evaluate_one(configs[0])["snip"] == pytest.approx(
        evaluator.evaluate_one(configs[0])["snip"], rel=1e-9)
    assert evaluator.identity.startswith("zc_hat:v1:ckpt=")


def test_hat_naswot_codes_leave_padding_out(hat_evaluator_options, space):
    from supernets.transformer.zero_cost import naswot_codes

    evaluator = make_evaluator("zc_hat", space, {"checkpoint": hat_evaluator_options["checkpoint"],
                                                 "corpus": hat_evaluator_options["corpus"], "batch": 4})
    config = space.to_config(space.sample(np.random.default_rng(1), 1)[0])
    evaluator.net.set_active_subnet(config)
    model = evaluator.net.get_active_subnet().eval()
    codes, mask = naswot_codes(model, evaluator.batch)
    assert codes.shape == mask.shape and codes.shape[0] == 4
    a = model.active
    units = (sum(a.encoder_ffn[: a.encoder_layers]) * evaluator.batch.src.shape[1]
             + sum(a.decoder_ffn[: a.decoder_layers]) * evaluator.batch.target.shape[1])
    assert codes.shape[1] == units
    real = (sum(a.encoder_ffn[: a.encoder_layers]) * evaluator.batch.src.ne(0).sum(1)
            + sum(a.decoder_ffn[: a.decoder_layers]) * evaluator.batch.target.ne(0).sum(1))
    assert mask.sum(1).tolist() == real.tolist()
    assert json.dumps(zc.naswot_score(codes, mask))  # a finite float


def test_zc_hat_proxies_option_computes_only_the_subset(hat_evaluator_options, space):
    from linas.errors import ConfigError

    options = {"checkpoint": hat_evaluator_options["checkpoint"], "corpus": hat_evaluator_options["corpus"],
               "batch": 4, "threads": 1}
    full = make_evaluator("zc_hat", space, options)
    subset = make_evaluator("zc_hat", space, {**options, "proxies": ["snip"]})
    assert [m.name for m in subset.metrics] == ["snip", "zc_seconds", "macs", "params"]
    assert subset.identity == full.identity + ":proxies=snip"
    config = space.to_config(space.sample(np.random.default_rng(0), 1)[0])
    outcome = subset.guarded(config)
    assert outcome.ok, outcome.error
    assert sorted(outcome.metrics) == ["macs", "params", "snip", "zc_seconds"]
    assert outcome.metrics["snip"] == pytest.approx(full.evaluate_one(config)["snip"], rel=1e-9)
    with pytest.raises(ConfigError, match="evaluator 'zc_hat': proxies: unknown proxy 'jacob_cov'; known: synflow"):
        make_evaluator("zc_hat", space, {**options, "proxies": ["jacob_cov"]})
