"""The BoTorch backend of ``mobo`` (``backend: botorch``; ``pip install 'linas[bo]'``).

One SingleTaskGP per objective and constraint column (standardized outcomes,
hyperparameters by marginal likelihood on every validated network), a ModelListGP, and
the batch chosen by qLogNEHVI (Ament et al., NeurIPS 2023; Daulton et al., NeurIPS 2021)
over the discrete candidates with BoTorch's sequential greedy ``optimize_acqf_discrete``:
each pick is added to the acquisition's pending points (``X_pending``), whose outcomes it
integrates over, before the next. Constraint columns are BoTorch constraints (feasible
when ``<= 0``, linas's convention too).

torch and botorch are imported inside the methods: linas imports no torch at module
import (strategy discovery imports every module of this package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class BotorchModel:
    """GPs of the normalized objectives (minimization, as linas uses them) and constraints."""

    def __init__(self, X: np.ndarray, targets: np.ndarray, n_objectives: int, seed: int) -> None:
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import ModelListGP, SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.mlls import SumMarginalLogLikelihood

        torch.set_num_threads(1)  # deterministic reductions (and no faster on 2 shared cores)
        torch.manual_seed(seed)
        self.seed, self.m = seed, n_objectives
        self.X = torch.tensor(np.asarray(X, dtype=float), dtype=torch.double)
        Y = np.array(targets, dtype=float)
        Y[:, :n_objectives] *= -1  # BoTorch maximizes
        self.n_outputs = Y.shape[1]
        Y = torch.tensor(Y, dtype=torch.double)
        models = [SingleTaskGP(self.X, Y[:, j:j + 1], outcome_transform=Standardize(m=1))
                  for j in range(self.n_outputs)]
        self.model = ModelListGP(*models)
        fit_gpytorch_mll(SumMarginalLogLikelihood(self.model.likelihood, self.model))
        self.model.eval()

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Posterior means: objective columns (minimization), then constraint columns."""
        import torch

        with torch.no_grad():
            mean = self.model.posterior(torch.tensor(np.asarray(X, dtype=float), dtype=torch.double)).mean
        out = mean.numpy().copy()
        out[:, :self.m] *= -1
        return out

    def select(self, X_candidates: np.ndarray, q: int, reference_point: Sequence[float], mc_samples: int
               ) -> np.ndarray:
        """Indices of ``q`` candidates, greedily by qLogNEHVI with the earlier picks pending."""
        import torch
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
        from botorch.optim import optimize_acqf_discrete
        from botorch.sampling import SobolQMCNormalSampler

        extra = {}
        if self.n_outputs > self.m:
            extra = {"objective": IdentityMCMultiOutputObjective(outcomes=list(range(self.m))),
                     "constraints": [lambda Z, j=j: Z[..., j] for j in range(self.m, self.n_outputs)]}
        acquisition = qLogNoisyExpectedHypervolumeImprovement(
            model=self.model, ref_point=[-float(r) for r in reference_point], X_baseline=self.X,
            prune_baseline=True, sampler=SobolQMCNormalSampler(torch.Size([mc_samples]), seed=self.seed), **extra)
        candidates = np.asarray(X_candidates, dtype=float)
        choices = torch.tensor(candidates, dtype=torch.double)
        chosen, _ = optimize_acqf_discrete(acquisition, q=min(q, len(candidates)), choices=choices,
                                           max_batch_size=256, unique=True)
        index = {row.tobytes(): i for i, row in enumerate(candidates)}
        return np.array([index[row.tobytes()] for row in chosen.numpy().astype(float)], dtype=np.int64)
