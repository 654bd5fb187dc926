"""What Euler and Heun share: Karras et al. (2022) sampling in noise levels, with churn.

Karras et al. write every diffusion as ``x = s(t) (y + sigma(t) n)``; the samplers integrate
``xbar = x / s`` in ``sigma``, where the probability-flow ODE is
``d xbar / d sigma = (xbar - D(xbar; sigma)) / sigma`` (their eq. 1 with ``sigma(t) = t`` and the
score of eq. 3). Our denoiser is on that scale already, for every path.

Churn raises the level to ``sigma_hat ~ sigma (1 + gamma)`` before a step; on a discrete chain
with ``denoiser.quantize`` (the default) ``sigma_hat`` is the smallest trained level at least that
(the network sees a trained level and the noise added is never less than asked). The last step
goes to ``sigma = 0``.
"""

from __future__ import annotations

import math

from torch import Tensor

from ddpm.random import Generator, randn
from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.spec import StepCallback

MAX_GAMMA = math.sqrt(2.0) - 1.0  # Karras et al. sec. 4: churn never more than doubles sigma^2


def churn_gamma(sigma: float, steps: int, s_churn: float, s_tmin: float, s_tmax: float) -> float:
    """Algorithm 2, line 4: ``gamma = min(S_churn / N, sqrt(2) - 1)`` inside
    ``[S_tmin, S_tmax]``, else 0."""
    return min(s_churn / steps, MAX_GAMMA) if s_tmin <= sigma <= s_tmax else 0.0


def euler_step(x: Tensor, x0: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """``x + (sigma' - sigma) d`` with ``d = (x - D) / sigma`` (Algorithm 1, lines 4-5), written
    as ``(sigma'/sigma) x + (1 - sigma'/sigma) D`` so that ``sigma' = 0`` returns ``D`` exactly.
    It is DDIM's deterministic step (Song et al. eq. 12, ``eta = 0``) and, on the flow path, the
    flow's own Euler step in ``t``."""
    ratio = sigma_next / sigma
    return ratio * x + (1.0 - ratio) * x0


def heun_step(
    x: Tensor, x0: Tensor, x_next: Tensor, x0_next: Tensor, sigma: float, sigma_next: float
) -> Tensor:
    """Algorithm 1, lines 7-8: the trapezoidal correction
    ``x + (sigma' - sigma) (d + d') / 2`` with ``d' = (x' - D(x'; sigma')) / sigma'``."""
    d = (x - x0) / sigma
    d_next = (x_next - x0_next) / sigma_next
    return x + (sigma_next - sigma) * 0.5 * (d + d_next)


def karras_sample(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    generator: Generator,
    callback: StepCallback | None,
    *,
    second_order: bool,
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> Tensor:
    """Karras et al. Algorithm 2 over ``sigmas`` (ending at 0): churn (lines 4-6), an Euler step
    (lines 7-8) and, with ``second_order``, Heun's correction at the next level (lines 9-11; none
    on the last step to ``sigma = 0``)."""
    n = len(sigmas) - 1
    x = x_T
    for i in range(n):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = churn_gamma(sigma, n, s_churn, s_tmin, s_tmax)
        sigma_hat = denoiser.quantize(sigma * (1.0 + gamma), up=True) if gamma > 0 else sigma
        if sigma_hat > sigma:  # line 6: x_hat = x + sqrt(sigma_hat^2 - sigma^2) eps
            std = s_noise * math.sqrt(sigma_hat**2 - sigma**2)
            x = x + std * randn(x.shape, generator, x.device, x.dtype)
        x0 = denoiser(x, sigma_hat).x0
        x_next = euler_step(x, x0, sigma_hat, sigma_next)
        if second_order and sigma_next > 0:
            x0_next = denoiser(x_next, sigma_next).x0
            x_next = heun_step(x, x0, x_next, x0_next, sigma_hat, sigma_next)
            x0 = x0_next
        x = x_next
        if callback is not None:
            callback(i, sigma_next, x, x0)
    return x
