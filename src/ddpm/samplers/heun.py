"""Heun's 2nd-order method in sigma space with optional churn (Karras et al. 2022, Algorithms 1
and 2). The conventions and the churn are those of :mod:`ddpm.samplers.karras`."""

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


def heun(
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
    """Karras et al. Algorithm 1 (deterministic, ``s_churn = 0``) or 2 (stochastic): an Euler
    step from ``sigma_i`` to ``sigma_{i+1}`` corrected by the trapezoidal rule with the slope at
    ``sigma_{i+1}`` (a second network call at the next level); the last step, to
    ``sigma = 0``, is a plain Euler step (the slope there is undefined), so
    ``nfe = 2 * steps - 1``. Second order in the step size.

    Churn (``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise``) is as in
    :func:`ddpm.samplers.euler.euler`: the noise level is raised before each step in
    ``[s_tmin, s_tmax]``, with ``gamma = min(s_churn / N, sqrt(2) - 1)``.
    """
    options = dict(s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)
    check_arguments(heun, options)
    return karras_sample(denoiser, x_T, sigmas, generator, callback, second_order=True, **options)
