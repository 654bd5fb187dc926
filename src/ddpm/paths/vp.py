"""Continuous-time variance preserving diffusion (Song et al. 2021, "Score-based generative
modeling through stochastic differential equations", eq. 11 and app. B): the seed's chain with
``T -> infinity``, ``alpha_bar(t)`` for real ``t`` in (0, 1].

* ``linear``: ``beta(t) = beta_min + t (beta_max - beta_min)``, ``log alpha_bar(t) =
  -(beta_max - beta_min) t^2 / 2 - beta_min t`` (0.1 and 20: the discrete linear 1e-4..0.02
  schedule with T = 1000, in the limit);
* ``cosine``: ``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos^2((t + s) / (1 + s) pi / 2)``
  (Nichol & Dhariwal 2021, eq. 17, s = 0.008). It reaches ``alpha_bar = 0`` at ``t = 1``, so its
  ``t_max`` is where the noise level equals the linear schedule's at ``t = 1`` (152).

The network receives ``c_noise = 999 t`` (EDM's VP preconditioning, ``(M - 1) t`` with M = 1000:
the scale of the discrete chain's indices). Training times are uniform in ``[t_eps, t_max]``
(``t_eps = 1e-5``), sampling runs from ``t_max`` to ``t_min = 1e-3`` (Song et al.'s epsilons).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import Tensor

from ddpm.checks import PositiveFloat
from ddpm.paths.base import Path

VPSchedule = Literal["linear", "cosine"]
M = 1000  # c_noise = (M - 1) t


class VPPath(Path):
    """``x_t = sqrt(alpha_bar(t)) x_0 + sqrt(1 - alpha_bar(t)) eps`` (``conf/path/vp.yaml``)."""

    name: ClassVar[str] = "vp"
    predictions: ClassVar[tuple[str, ...]] = ("eps", "x0", "v", "velocity")
    training_only: ClassVar[tuple[str, ...]] = ("t_eps",)

    def __init__(
        self,
        schedule: VPSchedule = "linear",
        beta_min: PositiveFloat = 0.1,
        beta_max: PositiveFloat = 20.0,
        s: PositiveFloat = 0.008,
        t_eps: PositiveFloat = 1e-5,
        t_min: PositiveFloat = 1e-3,
    ) -> None:
        self.schedule, self.beta_min, self.beta_max, self.s = schedule, beta_min, beta_max, s
        self.t_eps, self.t_min, self.t_max = t_eps, t_min, 1.0
        if schedule == "cosine":
            linear_end = math.sqrt(math.expm1((beta_max - beta_min) / 2 + beta_min))
            self.t_max = float(self.time_at(torch.tensor([linear_end], dtype=torch.float64)))
        self.check_range()

    def _theta(self, t: Tensor) -> Tensor:
        return (t + self.s) / (1 + self.s) * (math.pi / 2)

    def log_alpha_bar(self, t: Tensor) -> Tensor:
        if self.schedule == "linear":
            return -0.5 * (self.beta_max - self.beta_min) * t**2 - self.beta_min * t
        theta0 = self._theta(torch.zeros((), dtype=t.dtype))
        return 2 * (torch.cos(self._theta(t)).log() - torch.cos(theta0).log())

    def d_log_alpha_bar(self, t: Tensor) -> Tensor:
        """``-beta(t)``: the derivative of ``log alpha_bar``."""
        if self.schedule == "linear":
            return -(self.beta_min + (self.beta_max - self.beta_min) * t)
        return -2 * torch.tan(self._theta(t)) * (math.pi / 2) / (1 + self.s)

    def alpha(self, t: Tensor) -> Tensor:
        return (0.5 * self.log_alpha_bar(t)).exp()

    def sigma(self, t: Tensor) -> Tensor:
        return (-torch.expm1(self.log_alpha_bar(t))).sqrt()

    def d_alpha(self, t: Tensor) -> Tensor:
        return 0.5 * self.alpha(t) * self.d_log_alpha_bar(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        abar = self.log_alpha_bar(t).exp()
        return -abar * self.d_log_alpha_bar(t) / (2 * self.sigma(t))

    def noise_level(self, t: Tensor) -> Tensor:
        return torch.expm1(-self.log_alpha_bar(t)).sqrt()

    def time_at(self, level: Tensor) -> Tensor:
        """``log alpha_bar = -log(1 + level^2)`` solved for ``t`` in closed form."""
        level = torch.as_tensor(level, dtype=torch.float64)
        if self.schedule == "linear":
            d, b = self.beta_max - self.beta_min, self.beta_min
            return ((b * b + 2 * d * torch.log1p(level**2)).sqrt() - b) / d
        theta0 = self._theta(torch.zeros((), dtype=torch.float64))
        theta = torch.arccos(torch.cos(theta0) / (1 + level**2).sqrt())
        return theta * 2 * (1 + self.s) / math.pi - self.s

    def sample_times(self, n: int, generator, device) -> Tensor:
        u = torch.rand(n, generator=generator, device=device)
        return self.t_eps + (self.t_max - self.t_eps) * u

    def c_noise(self, t: Tensor) -> Tensor:
        return (M - 1) * t.float()

    def time_from_c_noise(self, c: Tensor) -> Tensor:
        return c.double() / (M - 1)
