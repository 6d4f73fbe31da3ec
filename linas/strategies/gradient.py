"""Gradient-based architecture search (DARTS / ProxylessNAS / FBNet style) as a strategy.

Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019; Cai et al.,
"ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019;
Wu et al., "FBNet", CVPR 2019 (Gumbel-softmax, expected latency). Each design variable
gets architecture logits ``alpha_j``; Adam minimizes

    task(w) + lambda * E_p[cost],    w = GumbelSoftmax(alpha, tau),  p = softmax(alpha)

where ``task`` is the relaxed network's task term and ``E_p[cost]`` the expected
(normalized) latency under the categorical distributions, both given by a *relaxation*
(:mod:`linas.relaxations`: ``surrogate`` for any space, ``mbv3_supernet``, ``hat_supernet``).

``gumbel: straight_through`` (default) makes ``w`` one-hot in the forward pass (a real
network: a supernet relaxation runs exactly one subnet) with the soft sample's gradient;
``soft`` uses the soft sample itself (a continuous mixture, as DARTS); ``off`` uses ``p``
(for the surrogate relaxation: the exact expectation, no sampling noise). The temperature
``tau`` anneals geometrically from ``temperature`` to ``final_temperature`` over
``anneal_steps`` steps of each trade-off weight.

One search would find one trade-off; a geometric sweep of ``lambdas`` weights from
``lambda_min`` to ``lambda_max`` covers the front. Each weight keeps its own logits and
Adam state; they take turns in bit-reversed order (for 8: 0, 4, 2, 6, 1, 5, 3, 7), so
every prefix of the sweep spreads over the whole range. Each proposal: the next weight
trains ``steps`` Adam steps, then proposes the argmax of its logits, or when that network
was validated (or is already in the batch) a sample of its distribution, then a mutation
of the argmax; only when all of those are taken is a random network proposed. Every
proposal is validated and counts toward the budget like any strategy's. Constraints are
not modelled by the relaxations: infeasible networks are validated and stay off the front.

The state saved after each tell is every weight's logits and Adam moments, the turn, the
random generator and the relaxation's own state: resume restores, it does not replay.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from linas.errors import ConfigError
from linas.relaxations import choice_mask, make_relaxation, relaxation_options
from linas.spec import Problem
from linas.strategies.base import (Strategy, StrategyOptions, initial_population, rng_state, set_rng_state,
                                   strategies)

#: Logit of a padding entry (a choice a variable does not have): exp() of it is exactly 0.
PAD = -1e9


def bit_reversed(n: int) -> list[int]:
    """``0..n-1`` in bit-reversed order (of the next power of two, skipping indices >= n)."""
    bits = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    order = [int(format(i, f"0{bits}b")[::-1], 2) for i in range(2 ** bits)]
    return [i for i in order if i < n]


def lambda_sweep(lambda_min: float, lambda_max: float, count: int) -> np.ndarray:
    """``count`` geometrically spaced trade-off weights, smallest first."""
    if count == 1:
        return np.array([math.sqrt(lambda_min * lambda_max)])
    return np.geomspace(lambda_min, lambda_max, count)


@strategies.register("gradient")
class Gradient(Strategy):
    """Gradient-based search on architecture logits over a sweep of latency weights.

    Options: ``relaxation`` (``surrogate``, ``mbv3_supernet``, ``hat_supernet``) and
    ``relaxation_options``; ``lambdas`` (weights in the sweep, default 16), ``lambda_min``
    (0.02) and ``lambda_max`` (20), in units of the normalized objectives; ``steps`` (Adam
    steps per proposal, 10); ``learning_rate`` (0.1); ``gumbel`` (``straight_through``,
    ``soft`` or ``off``); ``temperature`` (1.0), ``final_temperature`` (0.2),
    ``anneal_steps`` (300); ``samples`` (draws tried when the argmax is taken, 20).
    """

    class Options(StrategyOptions):
        relaxation: str = "surrogate"
        relaxation_options: dict[str, Any] = Field(default_factory=dict)
        lambdas: int = Field(16, ge=1)
        lambda_min: float = Field(0.02, gt=0)
        lambda_max: float = Field(20.0, gt=0)
        steps: int = Field(10, ge=1)
        learning_rate: float = Field(0.1, gt=0)
        gumbel: Literal["straight_through", "soft", "off"] = "straight_through"
        temperature: float = Field(1.0, gt=0)
        final_temperature: float = Field(0.2, gt=0)
        anneal_steps: int = Field(300, ge=1)
        samples: int = Field(20, ge=0)

        @model_validator(mode="after")
        def _check(self):
            if self.lambda_max < self.lambda_min:
                raise ValueError(f"lambda_max {self.lambda_max:g} is below lambda_min {self.lambda_min:g}")
            try:
                relaxation_options(self.relaxation, self.relaxation_options)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            return self

    quick_options = {"steps": 3}

    def __init__(self, problem: Problem, seed: int, population: int = 50, relaxation: str = "surrogate",
                 relaxation_options: dict[str, Any] | None = None, lambdas: int = 16, lambda_min: float = 0.02,
                 lambda_max: float = 20.0, steps: int = 10, learning_rate: float = 0.1,
                 gumbel: Literal["straight_through", "soft", "off"] = "straight_through", temperature: float = 1.0,
                 final_temperature: float = 0.2, anneal_steps: int = 300, samples: int = 20) -> None:
        super().__init__(problem, seed, population)
        import torch

        o = self.Options(population=population, relaxation=relaxation, relaxation_options=relaxation_options or {},
                         lambdas=lambdas, lambda_min=lambda_min, lambda_max=lambda_max, steps=steps,
                         learning_rate=learning_rate, gumbel=gumbel, temperature=temperature,
                         final_temperature=final_temperature, anneal_steps=anneal_steps, samples=samples)
        self.options = o
        self.relaxation = make_relaxation(relaxation, problem, seed, o.relaxation_options)
        self.lambdas = lambda_sweep(lambda_min, lambda_max, lambdas)
        self.order = bit_reversed(lambdas)
        self.turn = 0  # proposals made so far: the next weight is order[turn % lambdas]
        self._mask = torch.as_tensor(choice_mask(self.space))
        self._pad = torch.where(self._mask, 0.0, PAD).to(torch.float64)
        self.logits = [torch.zeros(self._mask.shape, dtype=torch.float64, requires_grad=True) for _ in self.lambdas]
        self.optimizers = [torch.optim.Adam([p], lr=learning_rate) for p in self.logits]
        self.trained = [0] * lambdas  # Adam steps of each weight (drives its temperature)
        self._rng = np.random.default_rng([seed, 7])

    # ------------------------------------------------------------------ relaxed objective
    def probabilities(self, k: int):
        """Choice probabilities of weight ``k``'s distribution, ``(variables, max choices)``."""
        import torch

        return torch.softmax(self.logits[k].detach() + self._pad, dim=1)

    def temperature(self, k: int) -> float:
        o = self.options
        frac = min(1.0, self.trained[k] / o.anneal_steps)
        return o.temperature * (o.final_temperature / o.temperature) ** frac

    def _weights(self, k: int, logits):
        """Gumbel-softmax sample (or the probabilities, ``gumbel: off``) of weight ``k``'s logits."""
        import torch

        z = logits + self._pad
        if self.options.gumbel == "off":
            return torch.softmax(z, dim=1)
        u = self._rng.random(z.shape)
        noise = torch.as_tensor(-np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-12))), dtype=z.dtype)
        soft = torch.softmax((z + noise) / self.temperature(k), dim=1)
        if self.options.gumbel == "soft":
            return soft
        hard = torch.zeros_like(soft).scatter_(1, soft.argmax(dim=1, keepdim=True), 1.0)
        return hard - soft.detach() + soft

    def loss(self, k: int, logits=None):
        """``task(w) + lambda_k * E[cost]`` of weight ``k`` (at ``logits``, default its own)."""
        import torch

        logits = self.logits[k] if logits is None else logits
        w = self._weights(k, logits)
        p = torch.softmax(logits + self._pad, dim=1)
        return self.relaxation.task(w) + float(self.lambdas[k]) * self.relaxation.cost(p)

    def train(self, k: int, steps: int) -> None:
        for _ in range(steps):
            opt = self.optimizers[k]
            opt.zero_grad()
            self.loss(k).backward()
            opt.step()
            self.trained[k] += 1

    # ------------------------------------------------------------------ proposals
    def argmax(self, k: int) -> np.ndarray:
        g = (self.logits[k].detach() + self._pad).argmax(dim=1).numpy().astype(np.int64)
        return self.space.canonicalize(g)[0]

    def _candidates(self, k: int):
        """The argmax of weight ``k``, then samples of its distribution, then mutations of the argmax."""
        best = self.argmax(k)
        yield best
        p = self.probabilities(k).numpy()
        n = self.space.n_choices
        for _ in range(self.options.samples):
            g = np.array([self._rng.choice(c, p=p[j, :c] / p[j, :c].sum()) for j, c in enumerate(n)], dtype=np.int64)
            yield self.space.canonicalize(g)[0]
        for _ in range(self.options.samples):
            yield self.space.mutate(best[None], self._rng)[0]

    def propose(self, k: int, taken: set[str]) -> np.ndarray | None:
        for g in self._candidates(k):
            key = self.space.keys(g[None])[0]
            if key not in taken:
                taken.add(key)
                return g
        return None

    def ask(self) -> np.ndarray:
        if self.step == 0:
            return initial_population(self.space, self.seed, self.population)
        self.relaxation.update(self.genomes, self.F, self.G)
        taken = set(self.known)
        out = []
        for _ in range(self.population):
            k = self.order[self.turn % len(self.order)]
            self.turn += 1
            self.train(k, self.options.steps)
            g = self.propose(k, taken)
            if g is None:
                extra = self.space.sample_unique(self._rng, 1, exclude=taken)
                if not len(extra):
                    break  # the space ran out of networks
                taken.update(self.space.keys(extra))
                g = extra[0]
            out.append(g)
        return np.array(out, dtype=np.int64).reshape(-1, len(self.space))

    # ------------------------------------------------------------------ resume
    def absorb(self, batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bool:
        return self._tell_batches(batches)

    def state_dict(self) -> dict:
        adam = []
        for opt in self.optimizers:
            s = opt.state_dict()["state"].get(0)
            adam.append(None if s is None else {"step": float(s["step"]), "exp_avg": s["exp_avg"].tolist(),
                                                "exp_avg_sq": s["exp_avg_sq"].tolist()})
        return {"logits": [p.detach().tolist() for p in self.logits], "adam": adam, "trained": list(self.trained),
                "turn": self.turn, "rng": rng_state(self._rng), "relaxation": self.relaxation.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        import torch

        for p, values in zip(self.logits, state["logits"]):
            with torch.no_grad():
                p.copy_(torch.tensor(values, dtype=torch.float64))
        for opt, s in zip(self.optimizers, state["adam"]):
            if s is None:
                continue
            saved = opt.state_dict()
            saved["state"] = {0: {"step": torch.tensor(s["step"]),
                                  "exp_avg": torch.tensor(s["exp_avg"], dtype=torch.float64),
                                  "exp_avg_sq": torch.tensor(s["exp_avg_sq"], dtype=torch.float64)}}
            opt.load_state_dict(saved)
        self.trained = [int(t) for t in state["trained"]]
        self.turn = int(state["turn"])
        set_rng_state(self._rng, state["rng"])
        self.relaxation.load_state_dict(state["relaxation"])
