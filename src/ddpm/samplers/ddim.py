"""DDIM (Song, Meng & Ermon 2021)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.analytic_variance import optimal_reverse_variance
from ddpm.samplers.common import Denoiser, batch_k
from ddpm.samplers.steps import Generator, randn
from ddpm.schedule import Schedule


def ddim(
    den: Denoiser,
    schedule: Schedule,
    x: Tensor,
    ks: Tensor,
    eta: float = 0.0,
    generator: Generator = None,
    analytic_gamma: Tensor | None = None,
) -> Tensor:
    """DDIM, eq. 12 of Song et al.:
    ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z`` with
    ``sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev)`` (eq. 16).

    ``eta = 0`` is the deterministic sampler (an Euler step of the probability-flow ODE in
    ``sigma/alpha``), ``eta = 1`` the respaced DDPM with ``beta_tilde`` variances. The step after
    the last entry of the list (``k = 0``) goes to ``alpha_bar = 1``, i.e. returns ``x0_hat``.

    With ``analytic_gamma`` the mean keeps DDIM's ``sigma`` but the noise added has Analytic-DPM's
    optimal variance for that family (Bao et al. 2022, Theorem 1 with ``lambda = sigma``).
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    abar = schedule.alphas_cumprod
    for i in range(len(ks)):
        k = int(ks[i])
        x0, eps, _ = den(x, batch_k(k, x))
        if i == len(ks) - 1:
            x = x0
        else:
            a, ap = abar[k].item(), abar[int(ks[i + 1])].item()
            sigma = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
            x = math.sqrt(ap) * x0 + math.sqrt(max(1 - ap - sigma**2, 0.0)) * eps
            noise_std = sigma
            if analytic_gamma is not None:
                var = optimal_reverse_variance(
                    abar[k],
                    abar[int(ks[i + 1])],
                    analytic_gamma[k].double(),
                    torch.tensor(sigma**2, dtype=torch.float64),
                )
                noise_std = math.sqrt(var.item())
            if noise_std > 0:
                x = x + noise_std * randn(x.shape, generator, x.device, x.dtype)
        den.record(x)
    return x
