"""Export an extracted subnet to timm's ``MobileNetV3`` and to ONNX.

The timm model is built from an architecture definition (the compact block strings
of timm's ``_efficientnet_builder.decode_arch_def``), so a found network can be
fine-tuned with timm's training scripts; its weights are copied from the subnet and
its outputs are the same.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import nn

from .arch import BlockSpec, NetSpec
from .subnet import MobileNetV3Subnet


def _block_string(b: BlockSpec) -> str:
    act = "_nre" if b.act == "relu" else ""  # blocks without the suffix use the model's hard-swish
    se = "_se0.25" if b.se else ""
    if b.name == "first_block":
        return f"ds_r1_k{b.kernel}_s{b.stride}_c{b.out_channels}{se}{act}"
    e = b.mid_channels / b.in_channels
    return f"ir_r1_k{b.kernel}_s{b.stride}_e{e:g}_c{b.out_channels}{se}{act}"


def timm_arch_def(spec: NetSpec) -> list[list[str]]:
    """timm block strings of a subnet: one stage per OFA stage, then the 1x1 final-expand conv.

    Example: ``[['ds_r1_k3_s1_c16_nre'], ['ir_r1_k7_s2_e6_c24_nre', ...], ..., ['cn_r1_k1_s1_c960']]``.
    """
    stages: list[list[str]] = [[_block_string(spec.blocks[0])]]
    current = None
    for b in spec.blocks[1:]:
        stage = int(b.name.split(".")[1]) // 4
        if stage != current:
            stages.append([])
            current = stage
        stages[-1].append(_block_string(b))
    stages.append([f"cn_r1_k1_s1_c{spec.final_expand}"])
    return stages


def to_timm(subnet: MobileNetV3Subnet) -> nn.Module:
    """A timm ``MobileNetV3`` with the subnet's architecture and weights (same outputs).

    Mid widths round the same way in both (multiples of 8 from integer ratios), the SE
    reduction is computed from the expanded width, and the head conv has no bias, as in OFA.
    """
    from timm.layers import get_act_layer
    from timm.models._efficientnet_blocks import SqueezeExcite
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.mobilenetv3 import MobileNetV3

    spec = subnet.spec
    dropout = subnet.classifier.dropout
    drop_rate = dropout.p if isinstance(dropout, nn.Dropout) else 0.0  # same head dropout when fine-tuned
    se_layer = partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU, rd_round_fn=round_channels)
    model = MobileNetV3(block_args=decode_arch_def(timm_arch_def(spec)), num_classes=spec.n_classes,
                        stem_size=spec.stem, fix_stem=True, num_features=spec.last_channel, head_bias=False,
                        drop_rate=drop_rate,
                        act_layer=get_act_layer("hard_swish"), se_layer=se_layer,
                        round_chs_fn=partial(round_channels, multiplier=1.0))
    _check_shapes(model, spec)
    model.load_state_dict(_timm_state(subnet), strict=True)
    bn = next(m for m in subnet.modules() if isinstance(m, nn.BatchNorm2d))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum, m.eps = bn.momentum, bn.eps
    return model.train(subnet.training)


def _check_shapes(model: nn.Module, spec: NetSpec) -> None:
    blocks = [b for stage in model.blocks[:-1] for b in stage]
    for ours, theirs in zip(spec.blocks, blocks):
        dw = theirs.conv_dw
        if dw.out_channels != ours.mid_channels or dw.kernel_size[0] != ours.kernel:
            raise RuntimeError(f"timm built {ours.name} as {dw}, expected {ours}")


def _timm_state(subnet: MobileNetV3Subnet) -> dict[str, torch.Tensor]:
    src = subnet.state_dict()
    out: dict[str, torch.Tensor] = {}

    def bn(dst: str, name: str) -> None:
        for field in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{dst}.{field}"] = src[f"{name}.{field}"]

    out["conv_stem.weight"] = src["first_conv.conv.weight"]
    bn("bn1", "first_conv.bn")
    # timm groups blocks by stage: [first block], then each OFA stage, then the final-expand conv.
    positions: list[tuple[int, int]] = [(0, 0)]
    stage, j, current = 0, 0, None
    for b in subnet.spec.blocks[1:]:
        s = int(b.name.split(".")[1]) // 4
        if s != current:
            stage, j, current = stage + 1, 0, s
        positions.append((stage, j))
        j += 1
    for p, ((stage, j), b) in enumerate(zip(positions, subnet.spec.blocks)):
        t, o = f"blocks.{stage}.{j}", f"blocks.{p}.conv"
        if b.name == "first_block":
            out[f"{t}.conv_dw.weight"] = src[f"{o}.depth_conv.conv.weight"]
            bn(f"{t}.bn1", f"{o}.depth_conv.bn")
            out[f"{t}.conv_pw.weight"] = src[f"{o}.point_linear.conv.weight"]
            bn(f"{t}.bn2", f"{o}.point_linear.bn")
            continue
        out[f"{t}.conv_pw.weight"] = src[f"{o}.inverted_bottleneck.conv.weight"]
        bn(f"{t}.bn1", f"{o}.inverted_bottleneck.bn")
        out[f"{t}.conv_dw.weight"] = src[f"{o}.depth_conv.conv.weight"]
        bn(f"{t}.bn2", f"{o}.depth_conv.bn")
        if b.se:
            for a, c in (("conv_reduce", "reduce"), ("conv_expand", "expand")):
                out[f"{t}.se.{a}.weight"] = src[f"{o}.depth_conv.se.fc.{c}.weight"]
                out[f"{t}.se.{a}.bias"] = src[f"{o}.depth_conv.se.fc.{c}.bias"]
        out[f"{t}.conv_pwl.weight"] = src[f"{o}.point_linear.conv.weight"]
        bn(f"{t}.bn3", f"{o}.point_linear.bn")
    last = len(set(s for s, _ in positions))
    out[f"blocks.{last}.0.conv.weight"] = src["final_expand_layer.conv.weight"]
    bn(f"blocks.{last}.0.bn1", "final_expand_layer.bn")
    out["conv_head.weight"] = src["feature_mix_layer.conv.weight"]
    out["classifier.weight"] = src["classifier.linear.weight"]
    out["classifier.bias"] = src["classifier.linear.bias"]
    return {k: v.detach().clone() for k, v in out.items()}


def to_onnx(model: nn.Module, path: str | Path, resolution: int, opset: int = 17) -> Path:
    """Write ``model`` (in eval mode) to ONNX with a dynamic batch dimension; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    dummy = torch.zeros(1, 3, resolution, resolution)
    try:
        torch.onnx.export(model, (dummy,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    finally:
        model.train(was_training)
    return path
