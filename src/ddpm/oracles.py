"""Oracles: data distributions whose optimal denoiser is known in closed form.

For data ``x_0 ~ sum_j w_j N(m_j, diag(s_j^2))`` the noised marginal is again a mixture,
``x_t | j ~ N(sqrt(abar) m_j, diag(abar s_j^2 + 1 - abar))`` (eq. 31), and Bayes' rule gives the
posterior mean ``E[x_0 | x_t]``, hence the exact minimiser of every loss in :mod:`ddpm.losses`.
Tests and benchmarks use it as a perfect "network" so sampler and likelihood errors can be
measured against the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.parameterization import from_x0
from ddpm.schedule import Schedule, alpha_bar_at


@dataclass(frozen=True)
class GaussianMixture:
    """``weights`` (J,), ``means`` (J, D), ``stds`` (J,) of isotropic components or (J, D) of
    axis-aligned ones (float64)."""

    weights: Tensor
    means: Tensor
    stds: Tensor

    @classmethod
    def gaussian(cls, mean: Tensor, std: float | Tensor) -> GaussianMixture:
        """``N(mean, std^2 I)``, or ``N(mean, diag(std^2))`` for a (D,) ``std``."""
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(1, -1)
        std = torch.as_tensor(std, dtype=torch.float64)
        std = std.reshape(1) if std.numel() == 1 else std.reshape(1, -1)
        return cls(torch.ones(1, dtype=torch.float64), mean, std)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def variances(self) -> Tensor:
        """``s_j^2`` per component and coordinate, (J, D)."""
        return (self.stds.reshape(len(self.weights), -1) ** 2).expand(-1, self.dim)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(x, component)`` for ``n`` draws."""
        j = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[j] + self.variances.sqrt()[j] * z, j

    def _component_log_probs(self, x: Tensor, abar: Tensor) -> Tensor:
        """``log w_j + log N(x; sqrt(abar) m_j, diag(abar s_j^2 + 1 - abar))``, shape (N, J)."""
        a = abar[:, None, None]
        var = a * self.variances[None] + (1 - a)  # (N, J, D)
        diff = x[:, None, :] - a.sqrt() * self.means[None]  # (N, J, D)
        quad = (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1)
        return self.weights.log()[None] - 0.5 * quad

    def log_prob(self, x: Tensor, abar: Tensor | None = None) -> Tensor:
        """Log-density of the data (``abar = 1``) or of the noised marginal ``q(x_t)``."""
        if abar is None:
            abar = torch.ones(x.shape[0], dtype=torch.float64)
        return torch.logsumexp(self._component_log_probs(x.double(), abar.double()), dim=1)

    def responsibilities(self, x: Tensor, abar: Tensor) -> Tensor:
        return torch.softmax(self._component_log_probs(x.double(), abar.double()), dim=1)

    def posterior_mean(self, x_t: Tensor, abar: Tensor) -> Tensor:
        """``E[x_0 | x_t]`` by Bayes' rule: per component
        ``m_j + sqrt(abar) s_j^2 / (abar s_j^2 + 1 - abar) (x_t - sqrt(abar) m_j)``."""
        x_t, abar = x_t.double(), abar.double()
        r = self.responsibilities(x_t, abar)  # (N, J)
        a, s2 = abar[:, None, None], self.variances[None]
        gain = a.sqrt() * s2 / (a * s2 + 1 - a)  # (N, J, D)
        cond = self.means[None] + gain * (x_t[:, None, :] - a.sqrt() * self.means[None])
        return (r[..., None] * cond).sum(1)

    def posterior_variance(self, abar: Tensor) -> Tensor:
        """``Var[x_0 | x_t]`` per coordinate for a single Gaussian (J = 1)."""
        if len(self.weights) != 1:
            raise ValueError("closed-form posterior variance is only for a single Gaussian")
        if self.stds.numel() != 1:
            raise ValueError("closed-form posterior variance is only for an isotropic Gaussian")
        s2 = self.stds.reshape(()) ** 2
        return s2 * (1 - abar) / (abar * s2 + 1 - abar)

    def model_fn(self, schedule: Schedule, prediction: str = "eps"):
        """The exact optimal network ``model_fn(x_t, k)`` for the schedule ``s``; ``k`` may be
        real-valued (ODE solvers), ``alpha_bar`` then follows :func:`alpha_bar_at`."""

        def fn(x_t: Tensor, k: Tensor) -> Tensor:
            abar = alpha_bar_at(schedule, k.to(torch.float64).cpu()).to(x_t.device)
            x0 = self.posterior_mean(x_t.reshape(len(x_t), -1), abar).reshape(x_t.shape)
            if prediction == "x0":
                return x0.to(x_t.dtype)
            if k.is_floating_point() and not torch.equal(k, k.round()):
                if prediction != "eps":
                    raise ValueError("real-valued k is only supported for eps/x0 predictions")
                a = abar.reshape(-1, *([1] * (x_t.ndim - 1)))
                return ((x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()).to(x_t.dtype)
            return from_x0(schedule, prediction, x0, x_t.double(), k.long().cpu()).to(x_t.dtype)

        return fn
