"""EDM (Karras et al. 2022, "Elucidating the design space of diffusion-based generative models"):
``x = x_0 + sigma eps``, time = noise level, and a preconditioned network (their Table 1):

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))

* ``precond: edm`` (default): ``c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)``,
  ``c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)``, ``c_in = 1 / sqrt(sigma^2 +
  sigma_data^2)``, ``c_noise = ln(sigma) / 4``;
* ``precond: vp``: ``c_skip = 1``, ``c_out = -sigma``, ``c_in = 1 / sqrt(sigma^2 + 1)``,
  ``c_noise = 999 t(sigma)`` (the VP schedule's time, beta_d = 19.9, beta_min = 0.1);
* ``precond: ve``: ``c_skip = 1``, ``c_out = sigma``, ``c_in = 1``, ``c_noise = ln(sigma / 2)``.

Training levels ``ln sigma ~ N(P_mean, P_std^2)`` (-1.2, 1.2) and the loss weight
``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (``1 / sigma^2`` for the vp and
ve columns): ``lambda c_out^2 = 1``, so the loss is the plain squared error of ``F`` against its
effective target ``(x_0 - c_skip x) / c_out`` (their eq. 8 and sec. 5). Sampling runs from
``sigma_max = 80`` to ``sigma_min = 0.002``, the prior ``N(0, sigma_max^2 I)``, and the path's
time is discretized uniformly in ``sigma^(1/7)`` (their eq. 5: ``spacing=uniform`` is their
schedule).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import Tensor

from ddpm.checks import PositiveFloat
from ddpm.likelihood import mean_flat
from ddpm.paths.base import Path, broadcast

Precond = Literal["edm", "vp", "ve"]
VP_BETA_D, VP_BETA_MIN, VP_M = 19.9, 0.1, 1000
RHO = 7.0  # the exponent of Karras et al.'s time discretization (eq. 5)


class EDMPath(Path):
    """Karras et al.'s formulation (``conf/path/edm.yaml``). ``sigma_data`` is 0.5 by default, or
    ``auto``: the standard deviation of the training data, measured when training starts and
    stored in the checkpoint."""

    name: ClassVar[str] = "edm"
    predictions: ClassVar[tuple[str, ...]] = ("F",)  # the preconditioned network itself
    training_only: ClassVar[tuple[str, ...]] = ("P_mean", "P_std")

    def __init__(
        self,
        precond: Precond = "edm",
        sigma_data: PositiveFloat | Literal["auto"] = 0.5,
        P_mean: float = -1.2,
        P_std: PositiveFloat = 1.2,
        sigma_min: PositiveFloat = 0.002,
        sigma_max: PositiveFloat = 80.0,
    ) -> None:
        self.precond, self.sigma_data, self.P_mean, self.P_std = precond, sigma_data, P_mean, P_std
        self.t_min, self.t_max = sigma_min, sigma_max  # time is the level
        self.check_range("sigma_min", "sigma_max")

    def resolve(self, data: Callable[[], Tensor]) -> dict:
        """``sigma_data: auto`` measured on a sample of the training data (``data()`` loads it
        only then)."""
        if self.sigma_data != "auto":
            return {}
        self.sigma_data = float(data().double().std())
        return {"sigma_data": self.sigma_data}

    @property
    def sd(self) -> float:
        if self.sigma_data == "auto":
            raise ValueError("path.sigma_data=auto is measured when training starts")
        return float(self.sigma_data)

    # --- the process: alpha = 1, sigma(t) = t --------------------------------------------------
    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def noise_level(self, t: Tensor) -> Tensor:
        return t

    def time_at(self, level: Tensor) -> Tensor:
        return torch.as_tensor(level, dtype=torch.float64)

    def time_grid(self, u: Tensor) -> Tensor:
        """Karras et al.'s discretization (eq. 5): uniform in ``sigma^(1/rho)``, rho = 7, so the
        time-based spacings are stated in it (``uniform`` is their schedule, ``spacing=karras``)."""
        lo, hi = self.t_min ** (1 / RHO), self.t_max ** (1 / RHO)
        return (lo + u * (hi - lo)) ** RHO

    def prior_scale(self, level: float) -> float:
        return level

    def time_fraction(self, t: Tensor) -> Tensor:
        lo, hi = math.log(self.t_min), math.log(self.t_max)
        return ((t.log() - lo) / (hi - lo)).clamp(0, 1)

    def display_levels(self, frames: int) -> list[float]:
        """The data, then levels geometric from ``sigma_min`` to ``sigma_max``."""
        lo, hi = math.log(self.t_min), math.log(self.t_max)
        return [0.0, *torch.linspace(lo, hi, frames - 1, dtype=torch.float64).exp().tolist()]

    def describe(self, level: float) -> str:
        return f"\u03c3={level:.2g}"

    # --- training ----------------------------------------------------------------------------------
    def sample_times(self, n: int, generator, device) -> Tensor:
        """``ln sigma ~ N(P_mean, P_std^2)`` (Table 1, training)."""
        z = torch.randn(n, generator=generator, device=device)
        return (self.P_mean + self.P_std * z).exp()

    def loss_weight(self, t: Tensor) -> Tensor:
        """``lambda(sigma)`` on ``||D - x_0||^2`` (Table 1)."""
        if self.precond == "edm":
            return (t**2 + self.sd**2) / (t * self.sd) ** 2
        return 1.0 / t**2

    def losses(self, out, x0, x_t, t, noise, prediction, **_discrete_options) -> dict:
        """``lambda(sigma) ||D - x_0||^2 = lambda c_out^2 ||F - F_target||^2``, computed on ``F``
        (``lambda c_out^2 = 1`` in every column of Table 1)."""
        target = self.target(x0, noise, x_t, t, prediction)
        mse = mean_flat((out - target) ** 2)
        scale = (self.loss_weight(t) * self.c_out(t) ** 2).to(mse)
        return {"loss": mse * scale, "mse": mse}

    # --- the preconditioning (Table 1) --------------------------------------------------------------
    def c_skip(self, t: Tensor) -> Tensor:
        if self.precond == "edm":
            return self.sd**2 / (t**2 + self.sd**2)
        return torch.ones_like(t)

    def c_out(self, t: Tensor) -> Tensor:
        if self.precond == "edm":
            return t * self.sd / (t**2 + self.sd**2).sqrt()
        return -t if self.precond == "vp" else t

    def c_in(self, t: Tensor) -> Tensor:
        if self.precond == "edm":
            return 1.0 / (t**2 + self.sd**2).sqrt()
        return 1.0 / (t**2 + 1).sqrt() if self.precond == "vp" else torch.ones_like(t)

    def c_noise(self, t: Tensor) -> Tensor:
        t = t.double()
        if self.precond == "edm":
            return (t.log() / 4).float()
        if self.precond == "ve":
            return (0.5 * t).log().float()
        vp_t = (
            (VP_BETA_MIN**2 + 2 * VP_BETA_D * torch.log1p(t**2)).sqrt() - VP_BETA_MIN
        ) / VP_BETA_D
        return ((VP_M - 1) * vp_t).float()

    def time_from_c_noise(self, c: Tensor) -> Tensor:
        c = c.double()
        if self.precond == "edm":
            return (4 * c).exp()
        if self.precond == "ve":
            return 2 * c.exp()
        vp_t = c / (VP_M - 1)
        return torch.expm1(0.5 * VP_BETA_D * vp_t**2 + VP_BETA_MIN * vp_t).sqrt()

    def x0(self, out: Tensor, x_t: Tensor, t: Tensor, prediction: str) -> Tensor:
        """``D = c_skip x + c_out F``."""
        return broadcast(self.c_skip(t), x_t) * x_t + broadcast(self.c_out(t), x_t) * out

    def target(self, x0: Tensor, eps: Tensor, x_t: Tensor, t: Tensor, prediction: str) -> Tensor:
        """``F_target = (x_0 - c_skip x) / c_out``."""
        return (x0 - broadcast(self.c_skip(t), x_t) * x_t) / broadcast(self.c_out(t), x_t)
