"""DDIM (Song, Meng & Ermon 2021)."""

from __future__ import annotations

import math
from typing import Annotated

from torch import Tensor

from ddpm.checks import UNIT
from ddpm.random import Generator, randn
from ddpm.samplers.denoiser import Denoiser, batch_k
from ddpm.samplers.spec import StepCallback
from ddpm.targets import check_arguments


def ddim(
    denoiser: Denoiser,
    x_T: Tensor,
    ks: Tensor,
    *,
    generator: Generator = None,
    callback: StepCallback | None = None,
    eta: Annotated[float, UNIT] = 0.0,
) -> Tensor:
    """DDIM, eq. 12 of Song et al.:
    ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z`` with
    ``sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev)`` (eq. 16).

    ``eta = 0`` is the deterministic sampler (an Euler step of the probability-flow ODE in
    ``sigma/alpha``), ``eta = 1`` the respaced DDPM with ``beta_tilde`` variances. The step after
    the last entry of the list (``k = 0``) goes to ``alpha_bar = 1``, i.e. returns ``x0_hat``.

    With the denoiser's ``analytic`` variance the mean keeps DDIM's ``sigma`` but the noise added
    has Analytic-DPM's optimal variance for that family (Bao et al. 2022, Theorem 1 with
    ``lambda = sigma``).
    """
    check_arguments(ddim, {"eta": eta})
    abar = denoiser.schedule.alphas_cumprod
    x = x_T
    for i in range(len(ks)):
        k = int(ks[i])
        out = denoiser(x, batch_k(k, x))
        if i == len(ks) - 1:
            x = out.x0
        else:
            k_prev = int(ks[i + 1])
            a, ap = abar[k].item(), abar[k_prev].item()
            sigma = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
            x = math.sqrt(ap) * out.x0 + math.sqrt(max(1 - ap - sigma**2, 0.0)) * out.eps
            noise_std = sigma
            if denoiser.variance == "analytic":
                log_var = denoiser.reverse_log_variance(out, k, k_prev, lambda2=sigma**2)
                noise_std = math.exp(0.5 * log_var)
            if noise_std > 0:
                x = x + noise_std * randn(x.shape, generator, x.device, x.dtype)
        if callback is not None:
            callback(i, k, x, out.x0)
    return x
