"""What Euler and Heun share: Karras et al. (2022) sampling in sigma space, with churn.

Karras et al. write every diffusion as ``x = s(t) (y + sigma(t) n)``; for our discrete VP models
``s = sqrt(abar)`` and ``sigma = sqrt((1 - abar) / abar) = e^{-lambda}``, so the state they
integrate is ``x_ve = x / sqrt(abar) = x sqrt(1 + sigma^2)`` and the probability-flow ODE is
``dx_ve / dsigma = (x_ve - D(x_ve; sigma)) / sigma`` (their eq. 1 with ``sigma(t) = t`` and the
score of eq. 3), ``D`` the denoiser's ``x0`` estimate at ``x = x_ve / sqrt(1 + sigma^2)``.

The step list is code indices, so the network is evaluated exactly at trained indices ``k``
(``sigma = sigma(k)``), never at interpolated times: a network has only seen those, and the
integer list is what every other sampler of ours walks. Churn keeps that property: the raised
noise level ``sigma_hat`` is itself a trained index (:func:`churn_index`). The last step goes
to ``sigma = 0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.random import Generator, randn
from ddpm.samplers.denoiser import Denoiser, batch_k
from ddpm.samplers.spec import StepCallback

MAX_GAMMA = math.sqrt(2.0) - 1.0  # Karras et al. sec. 4: churn never more than doubles sigma^2


def ve_sigma(log_snr: Tensor, k: int) -> float:
    """``sigma(k) = sqrt((1 - abar_k) / abar_k) = e^{-lambda_k}`` (the VE noise level)."""
    return math.exp(-log_snr[k].item())


def churn_gamma(sigma: float, steps: int, s_churn: float, s_tmin: float, s_tmax: float) -> float:
    """Algorithm 2, line 4: ``gamma = min(S_churn / N, sqrt(2) - 1)`` inside
    ``[S_tmin, S_tmax]``, else 0."""
    return min(s_churn / steps, MAX_GAMMA) if s_tmin <= sigma <= s_tmax else 0.0


def churn_index(log_snr: Tensor, k: int, gamma: float) -> int:
    """The code index of ``sigma_hat``: the smallest trained index whose sigma is at least
    ``sigma(k) (1 + gamma)`` (so the network sees a trained time and the noise added is never
    less than asked), at most ``T - 1``; ``k`` itself when ``gamma = 0``."""
    if gamma <= 0.0:
        return k
    target = -log_snr[k].item() + math.log1p(gamma)  # log sigma_hat
    k_hat = int(torch.searchsorted(-log_snr, torch.tensor([target], dtype=log_snr.dtype)))
    return min(max(k_hat, k), len(log_snr) - 1)


def denoise_ve(denoiser: Denoiser, x_ve: Tensor, k: int, sigma: float) -> Tensor:
    """``D(x_ve; sigma(k))``: the denoiser's ``x0`` at ``x = x_ve / sqrt(1 + sigma^2)``."""
    x = x_ve / math.sqrt(1.0 + sigma * sigma)
    return denoiser(x, batch_k(k, x)).x0


def euler_step(x_ve: Tensor, x0: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """``x + (sigma' - sigma) d`` with ``d = (x - D) / sigma`` (Algorithm 1, lines 4-5), written
    as ``(sigma'/sigma) x + (1 - sigma'/sigma) D`` so that ``sigma' = 0`` returns ``D`` exactly.
    In VP terms this is DDIM's deterministic step (Song et al. eq. 12, ``eta = 0``)."""
    ratio = sigma_next / sigma
    return ratio * x_ve + (1.0 - ratio) * x0


def heun_step(
    x_ve: Tensor, x0: Tensor, x_next: Tensor, x0_next: Tensor, sigma: float, sigma_next: float
) -> Tensor:
    """Algorithm 1, lines 7-8: the trapezoidal correction
    ``x + (sigma' - sigma) (d + d') / 2`` with ``d' = (x' - D(x'; sigma')) / sigma'``."""
    d = (x_ve - x0) / sigma
    d_next = (x_next - x0_next) / sigma_next
    return x_ve + (sigma_next - sigma) * 0.5 * (d + d_next)


def karras_sample(
    denoiser: Denoiser,
    x_T: Tensor,
    ks: Tensor,
    generator: Generator,
    callback: StepCallback | None,
    *,
    second_order: bool,
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> Tensor:
    """Karras et al. Algorithm 2 over the code indices ``ks`` then to ``sigma = 0``: churn
    (lines 4-6), an Euler step (lines 7-8) and, with ``second_order``, Heun's correction at the
    next index (lines 9-11; none on the last step to ``sigma = 0``). The state is ``x_ve``;
    callbacks get the VP state ``x_ve / sqrt(1 + sigma^2)``."""
    log_snr = denoiser.schedule.log_snr
    n = len(ks)
    x = x_T * math.sqrt(1.0 + ve_sigma(log_snr, int(ks[0])) ** 2)
    for i in range(n):
        k = int(ks[i])
        sigma = ve_sigma(log_snr, k)
        k_hat = churn_index(log_snr, k, churn_gamma(sigma, n, s_churn, s_tmin, s_tmax))
        sigma_hat = ve_sigma(log_snr, k_hat)
        if k_hat != k:  # line 6: x_hat = x + sqrt(sigma_hat^2 - sigma^2) eps, eps ~ N(0, S_noise^2)
            std = s_noise * math.sqrt(sigma_hat**2 - sigma**2)
            x = x + std * randn(x.shape, generator, x.device, x.dtype)
        x0 = denoise_ve(denoiser, x, k_hat, sigma_hat)
        k_next = int(ks[i + 1]) if i < n - 1 else None
        sigma_next = 0.0 if k_next is None else ve_sigma(log_snr, k_next)
        x_next = euler_step(x, x0, sigma_hat, sigma_next)
        if second_order and k_next is not None:
            x0_next = denoise_ve(denoiser, x_next, k_next, sigma_next)
            x_next = heun_step(x, x0, x_next, x0_next, sigma_hat, sigma_next)
            x0 = x0_next
        x = x_next
        if callback is not None:
            callback(i, k, x / math.sqrt(1.0 + sigma_next**2), x0)
    return x
