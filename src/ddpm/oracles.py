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

from ddpm.paths import DDPMPath, Path, broadcast
from ddpm.schedule import Schedule


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

    def denoise(self, xbar: Tensor, level: Tensor) -> Tensor:
        """``E[x_0 | x_0 + level eps = xbar]``, the exact denoiser ``D(xbar; level)`` of every path
        on the ``x / alpha`` scale: the VP posterior mean at ``alpha_bar = 1 / (1 + level^2)``."""
        level = torch.as_tensor(level, dtype=torch.float64).reshape(-1).to(xbar.device)
        abar = 1.0 / (1.0 + level**2)
        x_vp = xbar.double() * abar.sqrt()[:, None]
        return self.posterior_mean(x_vp, abar)

    def network(self, path: Path, prediction: str = "auto"):
        """The exact optimal network of ``path`` for ``prediction``: ``net(x_in, c_noise)``
        recovers ``t`` from ``c_noise`` and ``x_t`` from the path's input scaling, and returns the
        target of the posterior mean (every target is affine in ``(x_0, eps)``, so the target of
        ``E[x_0 | x_t]`` is the conditional mean of the target: the minimiser of the loss)."""
        prediction = path.resolve_prediction(prediction)

        def fn(x_in: Tensor, c_noise: Tensor) -> Tensor:
            t = path.time_from_c_noise(c_noise.cpu()).double()
            n, shape = len(x_in), x_in.shape
            c_in = path.c_in(t)
            x_t = x_in.double() if c_in is None else x_in.double() / broadcast(c_in, x_in.double())
            level = path.noise_level(t).double()
            xbar = x_t / broadcast(path.alpha(t), x_t)
            x0 = self.denoise(xbar.reshape(n, -1), level).reshape(shape)
            eps = (xbar - x0) / broadcast(level, xbar)
            return path.target(x0, eps, x_t, t, prediction).to(x_in.dtype)

        return fn

    def model_fn(self, schedule: Schedule, prediction: str = "eps"):
        """The exact network of the discrete chain of ``schedule`` (``net(x_t, k)``, ``k`` the
        index, real-valued between trained ones)."""
        return self.network(DDPMPath(schedule), prediction)
