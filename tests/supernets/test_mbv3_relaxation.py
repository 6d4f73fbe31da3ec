"""The ``mbv3_supernet`` relaxation: mixed supernet and expected lookup-table latency."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linas.objectives import Objective
from linas.spaces import get_space
from linas.spec import Problem
from linas.strategies import make_strategy
from supernets.mobilenetv3 import OFAMobileNetV3, max_config, min_config
from supernets.mobilenetv3.imagesets import ImageSet
from supernets.mobilenetv3.latency import LatencyTable, all_layer_shapes
from supernets.mobilenetv3.relaxation import Mbv3SupernetRelaxation, mixed_forward

pytestmark = pytest.mark.usefixtures("one_thread")

RESOLUTION, WIDTH, CLASSES = 32, 0.35, 7


@pytest.fixture(scope="module")
def space():
    return get_space("ofa_mbv3")


@pytest.fixture(scope="module")
def net():
    """A tiny random supernet with non-trivial BN affine parameters and kernel matrices."""
    torch.manual_seed(0)
    net = OFAMobileNetV3(n_classes=CLASSES, width_mult=WIDTH)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "matrix" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    return net.eval()


@pytest.fixture(scope="module")
def table():
    """A lookup table with a random latency per layer shape (all that matters is the sum)."""
    rng = np.random.default_rng(0)
    entries = {layer.lut_key(): float(rng.uniform(0.1, 2.0)) for layer in all_layer_shapes(WIDTH, RESOLUTION, CLASSES)}
    return LatencyTable(entries, {"width_mult": WIDTH, "n_classes": CLASSES, "resolutions": [RESOLUTION]})


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(2)
    return ImageSet(torch.randint(0, 256, (24, 3, RESOLUTION, RESOLUTION), generator=g, dtype=torch.uint8),
                    torch.randint(0, CLASSES, (24,), generator=g), CLASSES)


@pytest.fixture(scope="module")
def relaxation(space, net, table, images):
    problem = Problem(space, (Objective("top1", "max", bounds=(0, 100)), Objective("latency", "min", bounds=(5, 40))))
    return Mbv3SupernetRelaxation(problem, 0, checkpoint="", data={"kind": "digits"}, lut=table,
                                  resolution=RESOLUTION, batch_size=8, supernet=net, train_data=images)


def one_hot(space, genome, dtype=torch.float64):
    w = torch.zeros(len(space), 3, dtype=dtype)
    w[np.arange(len(space)), genome] = 1.0
    return w


def configs(space, n, seed):
    genomes = space.sample(np.random.default_rng(seed), n)
    return [space.to_config(g) for g in genomes], genomes


def test_one_hot_expected_latency_is_the_lookup_table_latency(space, relaxation, table):
    cfgs, genomes = configs(space, 60, 0)
    cfgs += [max_config(), min_config()]
    genomes = np.vstack([genomes, [space.from_config(max_config()), space.from_config(min_config())]])
    for config, g in zip(cfgs, genomes):
        expected = float(relaxation.expected_latency(one_hot(space, g)))
        assert expected == pytest.approx(table.predict(config, RESOLUTION), rel=1e-12)


def test_expected_latency_is_the_average_over_sampled_subnets(space, relaxation, table):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(len(space), 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    draws = np.array([[rng.choice(3, p=row) for row in p] for _ in range(4000)])
    mc = np.mean([table.predict(space.to_config(g), RESOLUTION) for g in space.canonicalize(draws)])
    analytic = float(relaxation.expected_latency(torch.as_tensor(p)))
    spread = np.std([table.predict(space.to_config(g), RESOLUTION) for g in space.canonicalize(draws[:500])])
    assert abs(analytic - mc) < 4 * spread / np.sqrt(len(draws))


def test_one_hot_mixed_network_is_the_extracted_subnet(space, net):
    x = torch.randn(6, 3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(3))
    cfgs, genomes = configs(space, 4, 1)
    cfgs += [max_config(), min_config()]
    genomes = np.vstack([genomes, [space.from_config(max_config()), space.from_config(min_config())]])
    with torch.no_grad():
        for config, g in zip(cfgs, genomes):
            net.set_active_subnet(config)
            subnet = net.get_active_subnet().train()  # batch-statistics BN, as the relaxation
            for m in subnet.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.eval()
            torch.testing.assert_close(mixed_forward(net, x, one_hot(space, g, torch.float32)), subnet(x),
                                       rtol=1e-4, atol=1e-4)


def test_mixtures_differ_from_every_one_hot_network(space, net):
    """A soft mixture is a network of its own (the test above is not passed by ignoring weights)."""
    x = torch.randn(4, 3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(5))
    g = space.sample(np.random.default_rng(2), 1)[0]
    soft = 0.5 * one_hot(space, g, torch.float32) + 0.5 / 3
    with torch.no_grad():
        assert not torch.allclose(mixed_forward(net, x, soft), mixed_forward(net, x, one_hot(space, g, torch.float32)),
                                  atol=1e-3)


def test_gradients_agree_with_finite_differences(space, net, relaxation):
    net64 = OFAMobileNetV3(n_classes=CLASSES, width_mult=WIDTH).double().eval()
    net64.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, RESOLUTION, RESOLUTION, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    y = torch.tensor([0, 1, 2, 3])
    # One block's kernel and expand choices, one stage's depth (the rest fixed soft): full
    # gradchecks of all 135 logits would take minutes.
    rows = [4, 24, 41]
    base = torch.as_tensor(np.random.default_rng(7).normal(size=(len(space), 3)))

    def loss(sub):
        logits = base.index_put((torch.tensor(rows),), sub)
        p = torch.softmax(logits, dim=1)
        task = torch.nn.functional.cross_entropy(mixed_forward(net64, x, p), y)
        return task + 0.7 * relaxation.cost(p)

    sub = base[rows].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (sub,), eps=1e-6, atol=1e-6)
    full = base.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: relaxation.cost(torch.softmax(z, dim=1)), (full,), eps=1e-6, atol=1e-8)


def test_the_strategy_searches_with_the_supernet_relaxation(space, relaxation):
    problem = relaxation.problem
    strategy = make_strategy("gradient", problem, 0, {"population": 6, "steps": 2, "lambdas": 3})
    strategy.relaxation = relaxation
    first = strategy.ask()
    F = np.column_stack([-np.linspace(10, 20, len(first)), np.linspace(10, 30, len(first))])
    strategy.tell(first, F)
    before = [p.detach().clone() for p in strategy.logits]
    second = strategy.ask()
    keys = space.keys(second)
    assert len(second) == 6 and len(set(keys)) == 6 and not set(keys) & strategy.known
    assert all(not torch.equal(a, b.detach()) for a, b in zip(before, strategy.logits))
    state = strategy.state_dict()
    assert "rng" in state["relaxation"]
