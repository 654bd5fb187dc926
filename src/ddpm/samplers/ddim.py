"""DDIM (Song, Meng & Ermon 2021), in noise levels."""

from __future__ import annotations

import math
from typing import Annotated

from torch import Tensor

from ddpm.checks import UNIT
from ddpm.random import Generator, randn
from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.spec import StepCallback
from ddpm.targets import check_arguments


def ddim(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: Generator = None,
    callback: StepCallback | None = None,
    eta: Annotated[float, UNIT] = 0.0,
) -> Tensor:
    """DDIM, eq. 12 of Song et al. on the ``x / alpha`` scale, from level ``s`` to ``s'``:
    ``x' = x0_hat + sqrt(s'^2 - c^2) eps_hat + c z`` with ``c = eta s' sqrt(s^2 - s'^2) / s``
    (their eq. 16, ``sigma_t`` divided by ``alpha'``).

    ``eta = 0`` is the deterministic sampler (an Euler step of the probability-flow ODE in the
    level), ``eta = 1`` the respaced DDPM with ``beta_tilde`` variances. The step to level 0
    returns ``x0_hat``.

    With the denoiser's ``analytic`` variance (the discrete chain) the mean keeps DDIM's ``c`` but
    the noise added has Analytic-DPM's optimal variance for that family (Bao et al. 2022,
    Theorem 1 with ``lambda = c``).
    """
    check_arguments(ddim, {"eta": eta})
    x = x_T
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        out = denoiser(x, s)
        if s_next == 0:
            x = out.x0
        else:
            c = eta * s_next * math.sqrt(s * s - s_next * s_next) / s
            x = out.x0 + math.sqrt(max(s_next * s_next - c * c, 0.0)) * out.eps
            noise_std = c
            if denoiser.variance == "analytic":
                noise_std = math.sqrt(denoiser.reverse_variance(out, s, s_next, lambda2=c * c))
            if noise_std > 0:
                x = x + noise_std * randn(x.shape, generator, x.device, x.dtype)
        if callback is not None:
            callback(i, s_next, x, out.x0)
    return x
