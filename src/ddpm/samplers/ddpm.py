"""Ancestral sampling, Algorithm 1 of the seed (Ho et al. 2020, Algorithm 2), in noise levels."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.random import Generator, randn
from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.spec import StepCallback


def ddpm(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: Generator = None,
    callback: StepCallback | None = None,
    clamp_x: bool = False,
) -> Tensor:
    """Algorithm 1: ``x_{t-1} = mu_theta(x_t, t) + sigma_t z`` for ``t = T .. 1``, no noise on the
    last step.

    Over a step list shorter than the chain this samples the *respaced* Markov chain over the
    visited levels (Nichol & Dhariwal 2021, sec. 4): the same alpha_bar at each of them, new
    betas, a true DDPM of fewer steps. ``mu_theta`` is the posterior mean of eq. 33 at the
    denoiser's ``x0``, on the ``x / alpha`` scale ``x0 + (s'^2 / s^2) (x - x0)`` from level ``s``
    to ``s'``; the variance is the denoiser's (``fixed_small``, the posterior's, on every path:
    this is the exact sampler of the reverse SDE between the visited levels; fixed large, learned
    or Analytic-DPM's on the discrete chain).

    ``clamp_x`` clamps ``x`` to the data range [-1, 1] (on the path's own scale) after every
    step, as the seed's homework sampler does (off by default: it is not part of Algorithm 1).
    """
    x = x_T
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        out = denoiser(x, s)
        if s_next == 0:
            x = out.x0  # alpha_bar_prev = 1: the mean is x0 itself
        else:
            mean = out.x0 + (s_next / s) ** 2 * (x - out.x0)
            var = denoiser.reverse_variance(out, s, s_next)
            std = var.sqrt() if isinstance(var, Tensor) else math.sqrt(var)
            x = mean + std * randn(x.shape, generator, x.device, x.dtype)
        if clamp_x:
            scale = denoiser.scale(s_next)
            x = torch.clamp(x * scale, -1.0, 1.0) / scale
        if callback is not None:
            callback(i, s_next, x, out.x0)
    return x
