"""The ``hat_supernet`` relaxation: mixed SuperTransformer and expected lookup-table latency."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linas.objectives import Objective
from linas.spec import Problem
from linas.strategies import make_strategy
from supernets.transformer.checkpoint import load_supernet
from supernets.transformer.latency import LatencyTable
from supernets.transformer.relaxation import mixed_logits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem(space):
    return Problem(space, (Objective("bleu", "max", bounds=(0, 40)), Objective("latency", "min", bounds=(1, 100))))


@pytest.fixture(scope="module")
def relaxation(problem, hat_evaluator_options):
    from linas.relaxations import make_relaxation

    o = hat_evaluator_options
    return make_relaxation("hat_supernet", problem, 0, {"checkpoint": o["checkpoint"], "corpus": o["corpus"],
                                                         "lut": o["lut"], "max_tokens": 64, "device": "cpu"})


@pytest.fixture(scope="module")
def net(hat_evaluator_options):
    """The briefly trained supernet with perturbed weights (so layers and heads differ clearly)."""
    net, _, _ = load_supernet(hat_evaluator_options["checkpoint"])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net.eval()


def one_hot(space, genome, dtype=torch.float64):
    w = torch.zeros(len(space), int(space.n_choices.max()), dtype=dtype)
    w[np.arange(len(space)), genome] = 1.0
    return w


def tokens(n_batch=3, src_len=7, tgt_len=5, vocab=60, seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab, (n_batch, src_len), generator=g)
    src[0, -2:] = 0  # padding
    prev = torch.randint(4, vocab, (n_batch, tgt_len), generator=g)
    prev[:, 0] = 1
    return src, prev


def test_one_hot_expected_latency_is_the_lookup_table_latency(space, relaxation, hat_evaluator_options):
    table = LatencyTable.load(hat_evaluator_options["lut"])
    for g in space.sample(np.random.default_rng(0), 60):
        expected = float(relaxation.expected_latency(one_hot(space, g)))
        assert expected == pytest.approx(table.predict_config(space, space.to_config(g)), rel=1e-12)


def test_expected_latency_is_the_average_over_sampled_subnets(space, relaxation, hat_evaluator_options):
    table = LatencyTable.load(hat_evaluator_options["lut"])
    rng = np.random.default_rng(4)
    mask = np.arange(int(space.n_choices.max()))[None] < space.n_choices[:, None]
    logits = np.where(mask, rng.normal(size=mask.shape), -np.inf)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    draws = space.canonicalize(np.array([[rng.choice(len(row), p=row) for row in p] for _ in range(3000)]))
    lat = np.array([table.predict_config(space, space.to_config(g)) for g in draws])
    analytic = float(relaxation.expected_latency(torch.as_tensor(p)))
    assert abs(analytic - lat.mean()) < 4 * lat.std() / np.sqrt(len(lat))


def test_one_hot_mixed_network_is_the_extracted_subtransformer(space, net):
    src, prev = tokens()
    with torch.no_grad():
        for g in space.sample(np.random.default_rng(2), 6):
            net.set_active_subnet(space.to_config(g))
            sub = net.get_active_subnet().eval()
            torch.testing.assert_close(mixed_logits(net, space, src, prev, one_hot(space, g, torch.float32)),
                                       sub(src, prev), rtol=1e-4, atol=1e-4)


def test_mixtures_differ_from_every_one_hot_network(space, net):
    src, prev = tokens()
    g = space.sample(np.random.default_rng(3), 1)[0]
    hard = one_hot(space, g, torch.float32)
    soft = 0.5 * hard + 0.25
    with torch.no_grad():
        assert not torch.allclose(mixed_logits(net, space, src, prev, soft), mixed_logits(net, space, src, prev, hard),
                                  atol=1e-3)


def test_gradients_agree_with_finite_differences(space, net, relaxation):
    net64 = copy.deepcopy(net).double()
    src, prev = tokens(n_batch=2, src_len=5, tgt_len=4)
    target = torch.randint(4, 60, prev.shape, generator=torch.Generator().manual_seed(5))
    index = {n: i for i, n in enumerate(space.names)}
    rows = [index[n] for n in ("encoder_embed_dim", "decoder_layer_num", "encoder_ffn_embed_dim_1",
                               "decoder_self_attention_heads_1", "decoder_arbitrary_ende_attn_0")]
    mask = torch.as_tensor(np.arange(int(space.n_choices.max()))[None] < space.n_choices[:, None])
    base = torch.as_tensor(np.random.default_rng(7).normal(size=mask.shape)).masked_fill(~mask, -1e9)

    def loss(sub):
        p = torch.softmax(base.index_put((torch.tensor(rows),), sub), dim=1)
        logits = mixed_logits(net64, space, src, prev, p)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()) + 0.3 * relaxation.cost(p)

    sub = base[rows].clone().requires_grad_(True)  # padding stays at -1e9: probability 0
    assert torch.autograd.gradcheck(loss, (sub,), eps=1e-6, atol=1e-6)


def test_the_strategy_searches_with_the_supernet_relaxation(space, problem, hat_evaluator_options):
    o = hat_evaluator_options
    options = {"population": 5, "steps": 2, "lambdas": 2, "relaxation": "hat_supernet",
               "relaxation_options": {"checkpoint": o["checkpoint"], "corpus": o["corpus"], "lut": o["lut"],
                                      "max_tokens": 64, "device": "cpu"}}
    strategy = make_strategy("gradient", problem, 0, options)
    first = strategy.ask()
    strategy.tell(first, np.column_stack([-np.linspace(1, 9, len(first)), np.linspace(2, 9, len(first))]))
    second = strategy.ask()
    keys = space.keys(second)
    assert len(second) == 5 and len(set(keys)) == 5 and not set(keys) & strategy.known
    assert strategy.trained == [6, 4]  # proposals alternate between the two weights, 2 steps each
