"""SuperTransformer: slicing, SubTransformer extraction, cost counts and config validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from linas.errors import ConfigError
from linas.spaces import get_space
from supernets.transformer.arch import extreme_configs, super_arch
from supernets.transformer.model import SuperTransformer

VOCAB = 300


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def space():
    """This module's space: hat_cpu, the real-sized one."""
    return get_space("hat_cpu")


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return SuperTransformer(space, VOCAB, qkv_dim=192, dropout=0.0).eval()


def tokens(batch: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, VOCAB, (batch, length), generator=g)


def random_configs(space, n: int, seed: int = 0) -> list[dict]:
    return [space.to_config(g) for g in space.sample(np.random.default_rng(seed), n)]


def test_extracted_subnet_gives_the_supernets_outputs(space, supernet):
    src, prev = tokens(3, 11, 1), tokens(3, 9, 2)
    src[1, 7:] = 0  # padding must be handled the same way
    for config in random_configs(space, 4):
        supernet.set_active_subnet(config)
        expected = supernet(src, prev)
        sub = supernet.get_active_subnet().eval()
        torch.testing.assert_close(sub(src, prev), expected, rtol=1e-5, atol=1e-5)


def test_extracted_subnet_is_standalone_with_the_subnets_shapes(space, supernet):
    config = random_configs(space, 1, seed=3)[0]
    supernet.set_active_subnet(config)
    sub = supernet.get_active_subnet()
    assert len(sub.decoder) == config["decoder_layer_num"]
    assert sub.encoder[0].ffn.fc1.weight.shape == (config["encoder_ffn_embed_dim_0"], config["encoder_embed_dim"])
    with torch.no_grad():
        sub.embed.weight.add_(1.0)  # a copy: the supernet is untouched
    assert not torch.equal(sub.embed.weight[:5, :8], supernet.embed.weight[:5, :8])


def test_weights_are_sliced_in_forward_not_cached(space):
    torch.manual_seed(0)
    net = SuperTransformer(space, VOCAB, qkv_dim=192, dropout=0.0).eval()
    _, smallest = extreme_configs(space)
    net.set_active_subnet(smallest)
    src, prev = tokens(2, 6, 4), tokens(2, 5, 5)
    before = net(src, prev)
    with torch.no_grad():
        net.decoder[0].ffn.fc1.weight[:256, :128].mul_(2.0)  # inside the active slice
    assert not torch.allclose(net(src, prev), before)


def test_training_a_subnet_updates_only_its_slice(space):
    torch.manual_seed(0)
    net = SuperTransformer(space, VOCAB, qkv_dim=192, dropout=0.0)
    _, smallest = extreme_configs(space)
    net.set_active_subnet(smallest)
    net(tokens(2, 6, 6), tokens(2, 5, 7)).sum().backward()
    grad = net.encoder[0].ffn.fc1.weight.grad
    assert grad[:256, :128].abs().sum() > 0
    assert grad[256:].abs().sum() == 0 and grad[:, 128:].abs().sum() == 0
    assert net.decoder[1].ffn.fc1.weight.grad is None  # decoder depth 1: layer 1 unused


def test_arch_counts_params_and_macs_of_the_extracted_module(space, supernet):
    src, prev = tokens(1, 12, 8), tokens(1, 7, 9)
    for config in random_configs(space, 2, seed=5):
        supernet.set_active_subnet(config)
        sub = supernet.get_active_subnet().eval()
        assert sum(p.numel() for p in sub.parameters()) == sub.arch.params()
        with FlopCounterMode(display=False) as counter:
            sub(src, prev)
        assert counter.get_total_flops() // 2 == sub.arch.macs(src_len=12, tgt_len=7)


def test_more_encoder_layers_attended_cost_more_macs(space, supernet):
    config = random_configs(space, 1, seed=11)[0]
    config["decoder_layer_num"] = 6
    for i in range(6):
        config[f"decoder_arbitrary_ende_attn_{i}"] = -1
    one = supernet.arch_of(config).macs()
    config["decoder_arbitrary_ende_attn_0"] = 2
    assert supernet.arch_of(config).macs() > one


def test_largest_subnet_is_the_whole_supernet(space, supernet):
    src, prev = tokens(2, 7, 10), tokens(2, 6, 11)
    supernet.set_active_arch(supernet.arch)
    full = supernet(src, prev)
    largest, _ = extreme_configs(space)
    supernet.set_active_subnet(largest)
    assert supernet.active == supernet.arch
    torch.testing.assert_close(supernet(src, prev), full)


def test_hat_wmt14_supernet_has_hats_sizes():
    arch = super_arch(get_space("hat_wmt14_ende"), vocab_size=32000, qkv_dim=512)
    assert (arch.encoder_embed_dim, arch.decoder_embed_dim) == (640, 640)
    assert arch.encoder_ffn == (3072,) * 6 and arch.decoder_ffn == (3072,) * 6
    assert arch.encoder_heads == (8,) * 6 and arch.decoder_ende_attn == (3,) * 6


@pytest.mark.parametrize("change, message", [
    ({"encoder_embed_dim": 100}, "encoder_embed_dim=100 is not one of"),
    ({"decoder_arbitrary_ende_attn_0": 3}, "decoder_arbitrary_ende_attn_0=3 is not one of"),
    ({"decoder_layers": 2}, "unknown variable"),
])
def test_invalid_configs_are_rejected_with_a_clear_error(space, supernet, change, message):
    config = {**random_configs(space, 1)[0], **change}
    with pytest.raises(ConfigError, match=message):
        supernet.set_active_subnet(config)


def test_config_missing_a_used_variable_is_rejected(space, supernet):
    config = random_configs(space, 1)[0]
    config["decoder_layer_num"] = 6
    del config["decoder_ffn_embed_dim_5"]
    with pytest.raises(ConfigError, match="missing variable"):
        supernet.set_active_subnet(config)


def test_rejected_config_leaves_the_active_subnet_unchanged(space, supernet):
    good = random_configs(space, 1, seed=2)[0]
    supernet.set_active_subnet(good)
    with pytest.raises(ConfigError):
        supernet.set_active_subnet({**good, "encoder_embed_dim": 7})
    assert supernet.get_active_net_config() == space.to_config(space.from_config(good))
