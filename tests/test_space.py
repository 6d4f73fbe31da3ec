"""Search spaces: conversions, canonical form, sampling, encodings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linas.errors import ConfigError
from linas.space import SearchSpace
from linas.spaces import get_space
from linas.spaces import ofa_mbv3 as ofa

SPACES = {name: get_space(name) for name in ("ofa_mbv3", "hat_wmt14_ende", "hat_cpu")}
SPACES["ofa_mbv3_res"] = get_space("ofa_mbv3", resolutions=[160, 176, 192, 208, 224])


def genomes(space: SearchSpace):
    return st.lists(st.integers(0, 10**6), min_size=len(space), max_size=len(space)).map(
        lambda xs: np.array(xs) % space.n_choices)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_genome_config_key_round_trips(name):
    space = SPACES[name]

    @settings(max_examples=60, deadline=None)
    @given(genomes(space))
    def check(g):
        canonical = space.canonicalize(g)[0]
        config = space.to_config(g)
        assert np.array_equal(space.from_config(config), canonical)
        assert np.array_equal(space.from_key(space.key(g)), canonical)
        assert space.keys(g[None])[0] == space.key(g)

    check()


@pytest.mark.parametrize("name", sorted(SPACES))
def test_canonicalize_is_idempotent_and_only_touches_inactive_variables(name):
    space = SPACES[name]

    @settings(max_examples=60, deadline=None)
    @given(genomes(space))
    def check(g):
        once = space.canonicalize(g)
        assert np.array_equal(space.canonicalize(once), once)
        active = space.active_mask(g)[0]
        assert np.array_equal(once[0][active], g[active])
        assert np.all(once[0][~active] == 0)

    check()


def test_changing_an_unused_block_does_not_change_the_key(mbv3_space, rng):
    g = mbv3_space.sample(rng, 1)[0]
    g[mbv3_space.names.index("d_0")] = 0  # depth 2: blocks 2 and 3 of stage 0 unused
    other = g.copy()
    other[mbv3_space.names.index("ks_3")] = 2
    other[mbv3_space.names.index("e_2")] = 1
    assert mbv3_space.key(g) == mbv3_space.key(other)
    # ... but changing a used block does.
    other[mbv3_space.names.index("ks_1")] = (g[mbv3_space.names.index("ks_1")] + 1) % 3
    assert mbv3_space.key(g) != mbv3_space.key(other)


def test_decoder_depth_masks_hat_layer_variables():
    space = SPACES["hat_wmt14_ende"]
    config = space.to_config(np.zeros(len(space), dtype=int))
    config["decoder_layer_num"] = 2
    config["decoder_ffn_embed_dim_4"] = 1024  # layer 4 is not used at depth 2
    assert space.from_config(config)[space.names.index("decoder_ffn_embed_dim_4")] == 0
    config["decoder_ffn_embed_dim_1"] = 1024  # layer 1 is used
    assert space.to_config(space.from_config(config))["decoder_ffn_embed_dim_1"] == 1024


def test_declared_spaces_have_the_documented_sizes():
    assert len(SPACES["ofa_mbv3"]) == 45
    assert len(SPACES["ofa_mbv3_res"]) == 46
    assert len(SPACES["hat_wmt14_ende"]) == 40
    assert len(SPACES["hat_cpu"]) == 40
    # OFA: about 2 x 10^19 distinct subnets (counting the canonical form only).
    assert 1e19 < SPACES["ofa_mbv3"].size() < 3e19


def test_ofa_layer_shapes_match_the_released_supernet_range():
    biggest = {**{f"ks_{i}": 7 for i in range(20)}, **{f"e_{i}": 6 for i in range(20)},
               **{f"d_{s}": 4 for s in range(5)}}
    smallest = {**{f"ks_{i}": 3 for i in range(20)}, **{f"e_{i}": 3 for i in range(20)},
                **{f"d_{s}": 2 for s in range(5)}}
    assert ofa.macs(biggest) / 1e6 == pytest.approx(566, abs=1)
    assert ofa.macs(smallest) / 1e6 == pytest.approx(121, abs=1)
    assert ofa.params(biggest) / 1e6 == pytest.approx(7.7, abs=0.05)
    assert ofa.params(smallest) / 1e6 == pytest.approx(3.4, abs=0.05)


def test_sampling_is_reproducible_and_ignores_global_random_state(mbv3_space):
    np.random.seed(1)
    a = mbv3_space.sample(np.random.default_rng(7), 20)
    np.random.seed(2)
    b = mbv3_space.sample(np.random.default_rng(7), 20)
    assert np.array_equal(a, b)
    assert np.array_equal(a, mbv3_space.canonicalize(a))


def test_sample_unique_excludes_given_keys(toy_space, rng):
    first = toy_space.sample_unique(rng, 10)
    keys = toy_space.keys(first)
    assert len(set(keys)) == 10
    more = toy_space.sample_unique(rng, 10, exclude=keys)
    assert not set(toy_space.keys(more)) & set(keys)


def test_sample_unique_stops_when_the_space_is_exhausted(toy_space, rng):
    everything = toy_space.sample_unique(rng, 10_000)
    assert len(everything) == toy_space.size() == len(set(toy_space.keys(everything)))


def test_onehot_feature_order_is_fixed_by_the_space(toy_space):
    names = toy_space.feature_names("onehot")
    assert names[:4] == ["d0=2", "d0=3", "d1=2", "d1=3"]
    assert len(names) == 4 + 6 * 3
    g = toy_space.from_config({"d0": 2, "d1": 3, "k00": 5, "k01": 3, "k10": 7, "k11": 7, "k12": 5})
    x = toy_space.encode(g[None], "onehot")[0]
    on = {n for n, v in zip(names, x) if v}
    assert on == {"d0=2", "d1=3", "k00=5", "k01=3", "k10=7", "k11=7", "k12=5"}  # k02 unused: all zeros


def test_encoding_of_one_network_does_not_depend_on_other_networks(mbv3_space, rng):
    g = mbv3_space.sample(rng, 30)
    for enc in ("onehot", "ordinal"):
        together = mbv3_space.encode(g, enc)
        alone = np.vstack([mbv3_space.encode(row[None], enc) for row in g])
        assert np.array_equal(together, alone)


def test_ordinal_encoding_marks_unused_variables_zero(toy_space):
    g = toy_space.from_config({"d0": 2, "d1": 2, "k00": 7, "k01": 3, "k10": 5, "k11": 5})
    x = dict(zip(toy_space.feature_names("ordinal"), toy_space.encode(g[None], "ordinal")[0]))
    assert x["k02"] == 0 and x["k12"] == 0
    assert x["k00"] == pytest.approx(1.0) and x["k01"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("config, message", [
    ({"d0": 2, "d1": 2, "k00": 4, "k01": 3, "k10": 3, "k11": 3}, "k00=4 is not one of"),
    ({"d0": 4, "d1": 2, "k00": 3, "k01": 3, "k10": 3, "k11": 3}, "d0=4 is not one of"),
    ({"d0": 2, "d1": 2, "k00": 3, "k01": 3, "k10": 3}, "missing variable(s) ['k11']"),
    ({"d0": 2, "d1": 2, "k00": 3, "k01": 3, "k10": 3, "k11": 3, "k99": 3}, "unknown variable(s) ['k99']"),
])
def test_invalid_configs_are_rejected_with_a_clear_message(toy_space, config, message):
    with pytest.raises(ConfigError, match=None) as info:
        toy_space.from_config(config)
    assert message in str(info.value)


def test_invalid_genomes_and_keys_are_rejected(toy_space):
    with pytest.raises(ConfigError, match="needs 8 entries"):
        toy_space.key([0, 0])
    with pytest.raises(ConfigError, match="outside"):
        toy_space.key([0, 0, 0, 0, 5, 0, 0, 0])
    with pytest.raises(ConfigError, match="needs 8 values"):
        toy_space.from_key("2,2")


def test_fingerprint_changes_with_the_space(toy_space):
    assert toy_space.fingerprint() != get_space("ofa_mbv3").fingerprint()
    assert get_space("ofa_mbv3").fingerprint() == get_space("ofa_mbv3").fingerprint()


def test_unknown_space_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown space 'nope'"):
        get_space("nope")


def test_mutation_changes_every_child_and_keeps_it_canonical(toy_space, rng):
    parents = toy_space.sample(rng, 200)
    children = toy_space.mutate(parents, rng)
    assert np.array_equal(children, toy_space.canonicalize(children))
    assert all(a != b for a, b in zip(toy_space.keys(parents), toy_space.keys(children)))


def test_mutation_rate_sets_how_many_variables_change(mbv3_space, rng):
    parents = mbv3_space.sample(rng, 300)
    changed = lambda rate: (mbv3_space.mutate(parents, rng, rate) != parents).sum(1).mean()  # noqa: E731
    assert changed(None) < 2.5 < changed(0.2)


def test_mutation_redraws_among_the_other_choices(rng):
    from linas.space import SearchSpace, Variable

    space = SearchSpace("one", [Variable("x", (1, 2, 3))])
    children = space.mutate(np.zeros((3000, 1), dtype=np.int64), rng, rate=1.0)
    counts = np.bincount(children[:, 0], minlength=3)
    assert counts[0] == 0 and abs(counts[1] - counts[2]) < 300


def test_crossover_takes_each_variable_from_a_parent(mbv3_space, rng):
    a, b = mbv3_space.sample(rng, 100), mbv3_space.sample(rng, 100)
    child = mbv3_space.crossover(a, b, rng)
    active = mbv3_space.active_mask(child)
    assert np.all(~active | (child == a) | (child == b))
    assert np.array_equal(child, mbv3_space.canonicalize(child))
    assert 0.3 < (child == a)[active & (a != b)].mean() < 0.7
