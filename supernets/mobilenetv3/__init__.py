"""OFA-style MobileNetV3 supernet (Cai et al., ICLR'20) for LINAS.

Modules: ``arch`` (subnet configs, validation and the static architecture they describe),
``elastic`` (weight-sharing ops), ``layers`` (static layers), ``supernet`` (the supernet and
subnet extraction), ``subnet`` (the static network), ``export`` (timm and ONNX),
``checkpoint`` (OFA's released weights and our own checkpoints), ``data`` (the names of the
image-data modules: ``datasets`` for the ImageFolder, Tiny-ImageNet and digits layouts and the
decoded cache, ``imagesets`` for in-memory and streamed splits, ``decoding`` for image files,
``transforms`` for augmentation and normalization), ``evaluation`` (BN recalibration and top-1), ``latency`` (measured
latency and per-block lookup tables, ``linas build-lut``), ``trainer`` (the largest alone,
then sandwich-rule training, ``linas train-supernet``), ``evaluator`` (the ``ofa_mbv3_supernet`` evaluator).
"""

from .arch import max_config, min_config, net_spec, subnet_config
from .subnet import MobileNetV3Subnet
from .supernet import OFAMobileNetV3

__all__ = ["MobileNetV3Subnet", "OFAMobileNetV3", "max_config", "min_config", "net_spec", "subnet_config"]
