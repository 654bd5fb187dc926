"""Named variance schedules: how ``beta_1 .. beta_T`` are chosen (float64). :mod:`ddpm.schedule`
turns them into a :class:`~ddpm.schedule.Schedule`."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor

from ddpm.checks import Range

MAX_BETA = 0.999  # Nichol & Dhariwal (2021), sec. 3.2: avoids singularities near t = T.


def linear_betas(
    num_timesteps: int,
    beta_start: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 1e-4,
    beta_end: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.02,
    rescale: bool = True,
) -> Tensor:
    """Ho et al. (2020) sec. 4: betas linear from 1e-4 to 0.02 for T = 1000. For other T the
    endpoints are scaled by ``1000 / T`` (Nichol & Dhariwal 2021) so ``alpha_bar_T`` stays close
    to zero (``rescale=False`` keeps them, as the seed's homework does), then clipped at
    ``MAX_BETA``."""
    scale = 1000.0 / num_timesteps if rescale else 1.0
    betas = torch.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=torch.float64)
    return betas.clamp(max=MAX_BETA)


def quadratic_betas(
    num_timesteps: int,
    beta_start: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 1e-4,
    beta_end: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.02,
    rescale: bool = True,
) -> Tensor:
    """Betas whose square roots are linear (Ho et al.'s code, "quad"), scaled like linear."""
    scale = 1000.0 / num_timesteps if rescale else 1.0
    roots = torch.linspace(
        math.sqrt(scale * beta_start),
        math.sqrt(scale * beta_end),
        num_timesteps,
        dtype=torch.float64,
    )
    return (roots**2).clamp(max=MAX_BETA)


def betas_from_alpha_bar_fn(num_timesteps: int, alpha_bar, max_beta: float = MAX_BETA) -> Tensor:
    """Discretise a continuous ``alpha_bar(tau)``, ``tau in [0, 1]``:
    ``beta_t = min(1 - alpha_bar(t/T) / alpha_bar((t-1)/T), max_beta)`` (Nichol & Dhariwal eq. 17)."""
    tau = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    abar = alpha_bar(tau)
    return (1.0 - abar[1:] / abar[:-1]).clamp(min=1e-12, max=max_beta)


def cosine_betas(num_timesteps: int, s: float = 0.008) -> Tensor:
    """Nichol & Dhariwal (2021) eq. 17: ``alpha_bar(t) = f(t)/f(0)``,
    ``f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)``, offset ``s = 0.008``, betas clipped at 0.999."""

    def f(tau: Tensor) -> Tensor:
        return torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2

    return betas_from_alpha_bar_fn(num_timesteps, lambda tau: f(tau) / f(torch.zeros(1)))


def sigmoid_betas(
    num_timesteps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0
) -> Tensor:
    """Sigmoid schedule of Jabri, Fleet & Chen (2023), "Scalable adaptive computation", eq. in
    sec. 4: ``alpha_bar(t) = (s(end/tau) - s((t(end-start)+start)/tau)) / (s(end/tau) - s(start/tau))``
    with ``s`` the logistic sigmoid."""
    lo, hi = torch.sigmoid(torch.tensor(start / tau)), torch.sigmoid(torch.tensor(end / tau))

    def alpha_bar(t: Tensor) -> Tensor:
        return (hi - torch.sigmoid((t * (end - start) + start) / tau)) / (hi - lo)

    return betas_from_alpha_bar_fn(num_timesteps, alpha_bar)


BUILDERS = dict(
    linear=linear_betas, cosine=cosine_betas, sigmoid=sigmoid_betas, quadratic=quadratic_betas
)
