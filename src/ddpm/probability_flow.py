"""The probability-flow ODE of any path, in noise levels (Song et al. 2021, eq. 13; Karras et al.
2022, eq. 1 with ``sigma(t) = t``): on the ``x / alpha`` scale, with ``rho = log sigma``,

    dx / drho = sigma dx / dsigma = x - D(x; sigma) = sigma eps(x; sigma),

the one drift the ODE sampler integrates and the ODE likelihood differentiates (every path is
the same ODE in these coordinates; only its denoiser differs)."""

from __future__ import annotations

import math

from torch import Tensor


def drift(denoiser, x: Tensor, rho: float) -> Tensor:
    """``dx / d(log sigma)`` at ``sigma = e^rho``: ``x - D(x; sigma)``."""
    return x - denoiser(x, math.exp(rho)).x0
