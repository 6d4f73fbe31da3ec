"""The OFA MobileNetV3 supernet: extraction, export, OFA weights and config validation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linas.errors import ConfigError, LinasError
from supernets.mobilenetv3 import OFAMobileNetV3, max_config, min_config, subnet_config
from supernets.mobilenetv3.checkpoint import (
    load_ofa_supernet,
    load_supernet_weights,
    ofa_state_dict,
)
from supernets.mobilenetv3.export import to_onnx, to_timm


def _randomized(net: OFAMobileNetV3, seed: int = 0) -> OFAMobileNetV3:
    """Non-trivial BN statistics and kernel matrices, so equal outputs mean equal weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "matrix" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    return net.eval()


@pytest.fixture(scope="module")
def small_net() -> OFAMobileNetV3:
    torch.manual_seed(0)
    return _randomized(OFAMobileNetV3(n_classes=7, width_mult=0.35))


def test_extracted_subnet_matches_supernet_outputs(small_net):
    x = torch.randn(2, 3, 32, 32)
    rng = np.random.default_rng(3)
    with torch.no_grad():
        for config in [max_config(), min_config(), small_net.sample_active_subnet(rng)]:
            small_net.set_active_subnet(config)
            static = small_net.get_active_subnet().eval()
            torch.testing.assert_close(static(x), small_net(x), rtol=1e-5, atol=1e-5)


def test_extracted_subnet_has_the_analytic_parameter_count(small_net):
    small_net.sample_active_subnet(np.random.default_rng(5))
    static = small_net.get_active_subnet()
    assert sum(p.numel() for p in static.parameters()) == small_net.active_params()


def test_smaller_kernel_uses_the_transformation_matrix(small_net):
    small_net.set_active_subnet(dict(max_config(), ks_4=5))
    block = small_net.blocks[5].conv  # stage 1, block 0
    x = torch.randn(1, block.inverted_bottleneck.conv.conv.in_channels, 24, 24)
    before = block(x)
    matrix = block.depth_conv.conv.get_parameter("7to5_matrix")
    with torch.no_grad():
        matrix.mul_(0.5)
        after = block(x)
        matrix.mul_(2.0)
    assert not torch.allclose(before, after)


def test_timm_export_gives_the_same_outputs(small_net):
    small_net.sample_active_subnet(np.random.default_rng(11))
    static = small_net.get_active_subnet().eval()
    model = to_timm(static).eval()
    assert type(model).__name__ == "MobileNetV3" and type(model).__module__.startswith("timm")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), static(x), rtol=1e-5, atol=1e-5)


def test_onnx_export_runs_with_the_same_outputs(small_net, tmp_path):
    onnx = pytest.importorskip("onnx")
    small_net.set_active_subnet(min_config())
    static = small_net.get_active_subnet().eval()
    path = to_onnx(static, tmp_path / "subnet.onnx", resolution=32)
    onnx.checker.check_model(onnx.load(str(path)))
    x = torch.randn(3, 3, 32, 32)
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
    except ImportError:  # onnx's own reference runtime (numpy) runs a net this small in a second
        from onnx.reference import ReferenceEvaluator

        session = ReferenceEvaluator(str(path))
    out = session.run(None, {"image": x.numpy()})[0]
    assert out.shape == (3, 7) and np.abs(out).max() > 1e-3  # outputs that say something
    with torch.no_grad():
        np.testing.assert_allclose(out, static(x).numpy(), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------- OFA's released weights
def ofa_reference_shapes(width_mult: float, old_names: bool = False) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of OFA's ``OFAMobileNetV3(ks_list=[3,5,7], expand_ratio_list=[3,4,6],
    depth_list=[2,3,4])`` state dict, written out from OFA's source independently of our modules."""

    def div8(v: float) -> int:
        n = max(8, int(v + 4) // 8 * 8)
        return n + 8 if n < 0.9 * v else n

    def bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}.{f}": (c,) for f in ("weight", "bias", "running_mean", "running_var")} | {
            f"{prefix}.num_batches_tracked": ()}

    base = [16, 16, 24, 40, 80, 112, 160, 960, 1280]
    w = [div8(b * width_mult) for b in base]
    out: dict[str, tuple[int, ...]] = {"first_conv.conv.weight": (w[0], 3, 3, 3), **bn("first_conv.bn", w[0])}
    layer = "mobile_inverted_conv" if old_names else "conv"
    out[f"blocks.0.{layer}.depth_conv.conv.weight"] = (w[0], 1, 3, 3)
    out |= bn(f"blocks.0.{layer}.depth_conv.bn", w[0])
    out[f"blocks.0.{layer}.point_linear.conv.weight"] = (w[1], w[0], 1, 1)
    out |= bn(f"blocks.0.{layer}.point_linear.bn", w[1])
    feature, n = w[1], 1
    for width, se in zip(w[2:7], [False, True, False, True, True]):
        for _ in range(4):
            mid = div8(round(feature * 6))
            p = f"blocks.{n}.{layer}"
            out[f"{p}.inverted_bottleneck.conv.conv.weight"] = (mid, feature, 1, 1)
            out |= bn(f"{p}.inverted_bottleneck.bn.bn", mid)
            out[f"{p}.depth_conv.conv.conv.weight"] = (mid, 1, 7, 7)
            out[f"{p}.depth_conv.conv.5to3_matrix"] = (9, 9)
            out[f"{p}.depth_conv.conv.7to5_matrix"] = (25, 25)
            out |= bn(f"{p}.depth_conv.bn.bn", mid)
            if se:
                r = div8(mid // 4)
                out |= {f"{p}.depth_conv.se.fc.reduce.weight": (r, mid, 1, 1), f"{p}.depth_conv.se.fc.reduce.bias": (r,),
                        f"{p}.depth_conv.se.fc.expand.weight": (mid, r, 1, 1), f"{p}.depth_conv.se.fc.expand.bias": (mid,)}
            out[f"{p}.point_linear.conv.conv.weight"] = (width, mid, 1, 1)
            out |= bn(f"{p}.point_linear.bn.bn", width)
            feature, n = width, n + 1
    out["final_expand_layer.conv.weight"] = (w[7], feature, 1, 1)
    out |= bn("final_expand_layer.bn", w[7])
    out["feature_mix_layer.conv.weight"] = (w[8], w[7], 1, 1)
    out["classifier.linear.weight"] = (1000, w[8])
    out["classifier.linear.bias"] = (1000,)
    return out


def _fake_ofa_file(tmp_path, width_mult: float, old_names: bool, name: str):
    g = torch.Generator().manual_seed(1)
    state = {k: (torch.tensor(7) if not shape else torch.rand(shape, generator=g))
             for k, shape in ofa_reference_shapes(width_mult, old_names).items()}
    path = tmp_path / name
    torch.save({"state_dict": state}, path)
    return path, state


@pytest.mark.parametrize("width_mult,old_names", [(1.0, False), (1.2, False), (1.0, True)])
def test_ofa_release_loads_strictly_with_its_exact_key_names(tmp_path, width_mult, old_names):
    name = f"ofa_mbv3_d234_e346_k357_w{width_mult}"
    path, state = _fake_ofa_file(tmp_path, width_mult, old_names, name)
    net = load_ofa_supernet(path)
    ours = net.state_dict()
    layer = "mobile_inverted_conv" if old_names else "conv"
    key = f"blocks.7.{layer}.depth_conv.conv.7to5_matrix"
    torch.testing.assert_close(ours[key.replace(layer, "conv")], state[key])
    assert len(ours) == len(state)


def test_w1_supernet_spans_ofa_published_sizes():
    net = OFAMobileNetV3()
    net.set_active_subnet(max_config())
    big = (net.active_params(), net.active_macs(224))
    net.set_active_subnet(min_config())
    small = (net.active_params(), net.active_macs(224))
    assert round(big[0] / 1e6, 2) == 7.66 and round(big[1] / 1e6) == 566
    assert round(small[0] / 1e6, 2) == 3.41 and round(small[1] / 1e6) == 121


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path, _ = _fake_ofa_file(tmp_path, 1.0, False, "ofa_mbv3_d234_e346_k357_w1.0")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LinasError, match="cannot read the checkpoint"):
        load_ofa_supernet(path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        load_ofa_supernet(tmp_path / "ofa_mbv3_d234_e346_k357_w1.0")


def test_checkpoint_of_another_width_is_rejected_with_the_key(tmp_path):
    path, _ = _fake_ofa_file(tmp_path, 1.2, False, "w12.pth")
    with pytest.raises(LinasError, match="first_conv.conv.weight has shape"):
        load_ofa_supernet(path, name="ofa_mbv3_d234_e346_k357_w1.0")


def test_checkpoint_with_a_missing_key_is_rejected(small_net):
    state = small_net.state_dict()
    state.pop("blocks.3.conv.depth_conv.conv.5to3_matrix")
    with pytest.raises(LinasError, match="missing key"):
        load_supernet_weights(OFAMobileNetV3(n_classes=7, width_mult=0.35), ofa_state_dict(state))


# ----------------------------------------------------------------- config validation
@pytest.mark.parametrize("config,message", [
    ({"ks": [9] + [3] * 19, "e": [3] * 20, "d": [2] * 5}, "ks_0=9 is not one of"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2, 2, 5, 2, 2]}, "d_2=5 is not one of"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [1] * 5}, "d_0=1 is not one of"),
    ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5}, "'ks' needs 20 values, got 19"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 6}, "'d' needs 5 values, got 6"),
    ({"ks": [3] * 20, "e": [5] * 20, "d": [4] * 5}, "e_0=5 is not one of"),
    (dict(max_config(), ks_99=3), "unknown variable"),
    ({k: v for k, v in max_config().items() if k != "d_1"}, "missing variable"),
    (dict(max_config(), resolution=8), "resolution must be"),
])
def test_invalid_subnet_config_is_rejected_with_a_clear_error(small_net, config, message):
    with pytest.raises(ConfigError, match=message):
        small_net.set_active_subnet(config)


def test_ofa_style_and_flat_configs_agree():
    ofa = {"ks": [7, 5, 3, 3] * 5, "e": [6, 4, 3, 4] * 5, "d": [2, 3, 4, 2, 3]}
    flat = subnet_config(ofa)
    assert flat["ks_1"] == 5 and flat["e_5"] == 4 and flat["d_4"] == 3
    assert flat["ks_2"] == 3 and flat["e_3"] == 3  # unused by depth 2: canonical
    assert subnet_config(flat) == flat
