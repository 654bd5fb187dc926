"""Ancestral sampling, Algorithm 1 of the seed (Ho et al. 2020, Algorithm 2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.analytic_variance import analytic_log_variance, require_gamma
from ddpm.diffusion import learned_range_log_variance
from ddpm.parameterization import from_x0
from ddpm.samplers.common import Denoiser, batch_k
from ddpm.samplers.steps import Generator, randn
from ddpm.schedule import Schedule, respace


def ddpm(
    den: Denoiser,
    schedule: Schedule,
    x: Tensor,
    ks: Tensor,
    variance: str = "fixed_small",
    generator: Generator = None,
    analytic_gamma: Tensor | None = None,
) -> Tensor:
    """Algorithm 1: ``x_{t-1} = mu_theta(x_t, t) + sigma_t z`` for ``t = T .. 1``, no noise on the
    last step.

    With a step list shorter than T this samples the *respaced* Markov chain over the kept steps
    (Nichol & Dhariwal 2021, sec. 4): same ``alpha_bar`` at each kept step, new betas, so the
    chain is a true DDPM of fewer steps rather than a strided shortcut. ``mu_theta`` is the
    posterior mean (eq. 33) of that chain at the model's ``x0`` estimate; ``sigma_t^2`` is
    ``beta_tilde`` (``fixed_small``), ``beta`` (``fixed_large``), the network's interpolation
    (``learned_range``) or Analytic-DPM's optimum from ``analytic_gamma`` (one Gamma per step of
    the training schedule; :mod:`ddpm.analytic_variance`).
    """
    r = respace(schedule, ks)
    if variance == "analytic":
        analytic_log_var = analytic_log_variance(r, require_gamma(analytic_gamma)[r.timestep_map])
    for j in range(len(r) - 1, -1, -1):
        jj = batch_k(j, x)
        x0, _, v = den(x, batch_k(int(r.timestep_map[j]), x))
        mean = from_x0(r, "mu", x0, x, jj)
        if j == 0:
            x = mean  # alpha_bar_prev = 1: the mean is x0 itself
        else:
            if variance == "fixed_small":
                log_var = r.posterior_log_variance_clipped[j].item()
            elif variance == "fixed_large":
                log_var = r.fixed_large_log_variance[j].item()
            elif variance == "learned_range":
                log_var = learned_range_log_variance(r, v, jj)
            elif variance == "analytic":
                log_var = float(analytic_log_var[j])
            else:
                raise ValueError(
                    f"unknown variance {variance!r}; choose fixed_small, fixed_large, learned_range or analytic"
                )
            std = (
                torch.exp(0.5 * log_var) if isinstance(log_var, Tensor) else math.exp(0.5 * log_var)
            )
            x = mean + std * randn(x.shape, generator, x.device, x.dtype)
        den.record(x)
    return x
