"""Ancestral sampling, Algorithm 1 of the seed (Ho et al. 2020, Algorithm 2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.parameterization import from_x0
from ddpm.random import Generator, randn
from ddpm.samplers.denoiser import Denoiser, batch_k
from ddpm.samplers.spec import StepCallback
from ddpm.schedule import respace


def ddpm(
    denoiser: Denoiser,
    x_T: Tensor,
    ks: Tensor,
    *,
    generator: Generator = None,
    callback: StepCallback | None = None,
    clamp_x: bool = False,
) -> Tensor:
    """Algorithm 1: ``x_{t-1} = mu_theta(x_t, t) + sigma_t z`` for ``t = T .. 1``, no noise on the
    last step.

    With a step list shorter than T this samples the *respaced* Markov chain over the kept steps
    (Nichol & Dhariwal 2021, sec. 4): same ``alpha_bar`` at each kept step, new betas, so the
    chain is a true DDPM of fewer steps rather than a strided shortcut. ``mu_theta`` is the
    posterior mean (eq. 33) of that chain at the denoiser's ``x0`` estimate; ``sigma_t^2`` is the
    denoiser's reverse variance (fixed small or large, learned, or Analytic-DPM's).

    ``clamp_x`` clamps ``x`` to the data range [-1, 1] after every step, as the seed's homework
    sampler does (off by default: it is not part of Algorithm 1).
    """
    chain = respace(denoiser.schedule, ks)
    x = x_T
    for j in range(len(chain) - 1, -1, -1):
        k = int(chain.timestep_map[j])
        out = denoiser(x, batch_k(k, x))
        mean = from_x0(chain, "mu", out.x0, x, batch_k(j, x))
        if j == 0:
            x = mean  # alpha_bar_prev = 1: the mean is x0 itself
        else:
            log_var = denoiser.reverse_log_variance(out, k, int(chain.timestep_map[j - 1]))
            std = (
                torch.exp(0.5 * log_var) if isinstance(log_var, Tensor) else math.exp(0.5 * log_var)
            )
            x = mean + std * randn(x.shape, generator, x.device, x.dtype)
        if clamp_x:
            x = x.clamp(-1.0, 1.0)
        if callback is not None:
            callback(len(chain) - 1 - j, k, x, out.x0)
    return x
