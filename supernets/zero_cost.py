"""Zero-cost proxies: scores of a network from one fixed minibatch, without training it.

The proxy math, shared by the MobileNetV3 (:mod:`supernets.mobilenetv3.zero_cost`) and the
Transformer (:mod:`supernets.transformer.zero_cost`) evaluators. Conventions follow
Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021), whose scores are
sums over the weights of the network's convolutions and linear layers:

- ``grad_norm``: the sum over layers of the L2 norm of the loss gradient of each layer's
  weight, ``sum_l ||dL/dW_l||``;
- ``snip`` (Lee et al. 2019): ``sum |dL/dW * W|`` over every weight;
- ``synflow`` (Tanaka et al. 2020): data-free; every parameter replaced by its absolute
  value, normalization layers removed, an all-ones input, in double precision;
  ``R = sum(output)`` and the score is ``sum |W * dR/dW|``. Reported as its natural
  logarithm (the raw value overflows float32 on deep networks; the ranking is the same);
- ``naswot`` (Mellor et al. 2021, "NAS without training"): the binary codes
  ``c_i = [pre-activation > 0]`` of every rectifier for each sample ``i`` of the batch;
  ``K = C C^T + (1 - C)(1 - C)^T`` counts the units on which two samples agree; the score
  is ``log |det K|``;
- ``jacob_cov`` (Mellor et al. 2020, v1 of the same paper): the correlation matrix of the
  per-sample input Jacobians ``d sum(output_i) / d x_i``; with its eigenvalues ``v``,
  ``-sum(log(v + k) + 1 / (v + k))``, ``k = 1e-5``.

These functions take a module and what to differentiate; the supernet-specific parts
(which layers, which loss, which activations) live in the evaluators.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

JACOB_COV_K = 1e-5


def weights_of(model: nn.Module, types: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)) -> list[Tensor]:
    """The ``weight`` of every module of ``types`` (the layers the proxies sum over), in module order."""
    return [m.weight for m in model.modules() if isinstance(m, types) and m.weight is not None]


def loss_gradients(loss: Tensor, weights: list[Tensor]) -> list[Tensor]:
    """``dloss/dW`` for each weight (zeros where the loss does not depend on it)."""
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]


def grad_norm(weights: list[Tensor], grads: list[Tensor]) -> float:
    """``sum_l ||g_l||_2``: the gradient norm of each layer's weight, summed over layers."""
    return float(sum(float(g.double().norm()) for g in grads))


def snip(weights: list[Tensor], grads: list[Tensor]) -> float:
    """``sum |g * W|`` over every weight (SNIP's connection sensitivity, summed)."""
    return float(sum(float((g.double() * w.detach().double()).abs().sum()) for w, g in zip(weights, grads)))


def synflow_score(weights: list[Tensor], output: Tensor) -> float:
    """``sum |W * dR/dW|`` with ``R = sum(output)`` (the caller has made the net positive).

    Returns the raw sum; see :func:`log_score` for the logarithm the evaluators report.
    """
    grads = loss_gradients(output.sum(), weights)
    return float(sum(float((g * w.detach()).abs().sum()) for w, g in zip(weights, grads)))


def gradient_proxies(loss: Callable[[], Tensor], weights: list[Tensor],
                     times: dict[str, float] | None = None,
                     which: Sequence[str] = ("grad_norm", "snip")) -> dict[str, float]:
    """``grad_norm`` and ``snip`` (those of them in ``which``) from one backward pass of ``loss()``
    (called here, so its forward pass is timed too). The pass's seconds are added to each
    proxy's in ``times``: either proxy alone would need it."""
    times = {} if times is None else times
    shared: dict[str, float] = {}
    with timed(shared, "backward"):
        grads = loss_gradients(loss(), weights)
    out = {}
    for name, proxy in (("grad_norm", grad_norm), ("snip", snip)):
        if name not in which:
            continue
        with timed(times, name):
            out[name] = proxy(weights, grads)
        times[name] += shared["backward"]
    return out


def check_proxies(proxies: Sequence[str] | None, known: Sequence[str]) -> tuple[str, ...]:
    """The proxies to compute, in the order of ``known`` (all of them for None); ValueError, one
    line, for an empty list or an unknown name (an evaluator's ``proxies`` option)."""
    if proxies is None:
        return tuple(known)
    if not proxies:
        raise ValueError("name at least one proxy, or leave proxies out for all of them")
    for p in proxies:
        if p not in known:
            raise ValueError(f"unknown proxy '{p}'; known: {', '.join(known)}")
    return tuple(p for p in known if p in proxies)


def log_score(value: float) -> float:
    """Natural logarithm of a non-negative score; ``-inf`` is replaced by a large negative number."""
    return math.log(value) if value > 0 else -1e9


@torch.no_grad()
def make_positive(model: nn.Module) -> nn.Module:
    """Synflow's linearization: every parameter and buffer replaced by its absolute value, in double."""
    model.double()
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            tensor.abs_()
    return model


def remove_modules(model: nn.Module, types: tuple[type[nn.Module], ...]) -> nn.Module:
    """Replace every submodule of ``types`` by ``nn.Identity`` (synflow runs without normalization)."""
    for name, child in list(model.named_children()):
        if isinstance(child, types):
            setattr(model, name, nn.Identity())
        else:
            remove_modules(child, types)
    return model


def naswot_kernel(codes: Tensor, mask: Tensor | None = None) -> Tensor:
    """``K = C C^T + (M - C)(M - C)^T`` of binary codes ``C [N, units]`` (float64).

    ``K[i, j]`` is the number of units on which samples ``i`` and ``j`` agree (both active
    or both inactive). ``mask`` (same shape, 1 where a unit exists for that sample, e.g.
    not at a padded token) leaves the other units out of both terms.
    """
    c = codes.double()
    m = torch.ones_like(c) if mask is None else mask.double()
    c = c * m
    off = m - c
    return c @ c.T + off @ off.T


def naswot_score(codes: Tensor, mask: Tensor | None = None) -> float:
    """``log |det K|`` of :func:`naswot_kernel` (Mellor et al. 2021)."""
    return float(torch.linalg.slogdet(naswot_kernel(codes, mask)).logabsdet)


def jacob_cov_score(jacobians: Tensor, k: float = JACOB_COV_K) -> float:
    """``-sum(log(v + k) + 1/(v + k))`` over the eigenvalues ``v`` of the correlation matrix of the
    per-sample Jacobians ``[N, ...]`` (flattened per sample)."""
    j = jacobians.reshape(jacobians.shape[0], -1).detach().double().cpu().numpy()
    corr = np.corrcoef(j)
    v = np.linalg.eigvalsh(np.nan_to_num(corr))
    return float(-np.sum(np.log(np.maximum(v, 0.0) + k) + 1.0 / (np.maximum(v, 0.0) + k)))


class ActivationCodes:
    """Collects binary codes ``input > 0`` of the given modules during a forward pass.

    A pre-forward hook sees the input before an in-place activation overwrites it.
    ``parts`` holds each hooked call's codes ``[N, ...]`` (uint8) in call order;
    ``codes()`` is ``[N, units]``: every part flattened per sample and concatenated.
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.parts: list[Tensor] = []
        self._handles = [m.register_forward_pre_hook(self._hook) for m in modules]

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self.parts.append((inputs[0].detach() > 0).to(torch.uint8))

    def codes(self) -> Tensor:
        return torch.cat([p.reshape(p.shape[0], -1) for p in self.parts], dim=1)

    def close(self) -> None:
        for h in self._handles:
            h.remove()

    def __enter__(self) -> ActivationCodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def timed(times: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to ``times[name]`` (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times[name] = times.get(name, 0.0) + time.perf_counter() - start


def dropout_off(model: nn.Module) -> nn.Module:
    """Every dropout module in eval mode (the rest of the model keeps its mode)."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    return model
