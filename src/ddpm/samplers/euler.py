"""Euler in sigma space with optional churn (Karras et al. 2022, Algorithm 2 without its
second-order correction; Algorithm 1's Euler step when ``s_churn = 0``); the sigma-space
conventions and the churn are in :mod:`ddpm.samplers.karras`."""

from __future__ import annotations

import math
from typing import Annotated

from torch import Tensor

from ddpm.checks import NON_NEGATIVE
from ddpm.random import Generator
from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.karras import karras_sample
from ddpm.samplers.spec import StepCallback
from ddpm.targets import check_arguments


def euler(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: Generator = None,
    callback: StepCallback | None = None,
    s_churn: Annotated[float, NON_NEGATIVE] = 0.0,
    s_tmin: Annotated[float, NON_NEGATIVE] = 0.0,
    s_tmax: Annotated[float, NON_NEGATIVE] = math.inf,
    s_noise: Annotated[float, NON_NEGATIVE] = 1.0,
) -> Tensor:
    """Euler's method for the probability-flow ODE in ``sigma`` (Karras et al. 2022, Algorithm 1
    without lines 7-8), one network call per step (``nfe = steps``).

    Deterministic (``s_churn = 0``) it is exactly DDIM with ``eta = 0``: DDIM is Euler in
    ``sigma`` (Karras et al. sec. 3; Song et al. sec. 4.3). ``s_churn > 0`` is Algorithm 2's
    stochastic sampler with Euler steps: before each step with ``sigma`` in ``[s_tmin, s_tmax]``
    the noise is raised to ``sigma_hat ~ sigma (1 + gamma)``, ``gamma = min(s_churn / N,
    sqrt(2) - 1)``, by adding ``N(0, s_noise^2 (sigma_hat^2 - sigma^2))`` noise; ``sigma_hat`` is
    a trained level on a discrete chain (:mod:`ddpm.samplers.karras`). Noise comes only from
    ``generator``.
    """
    options = dict(s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)
    check_arguments(euler, options)
    return karras_sample(denoiser, x_T, sigmas, generator, callback, second_order=False, **options)
