"""The forward (noising) process, its closed form, the posterior, and the reverse model.

Equation numbers are the seed's (``ddpm-tutorial.zh.md``); ``k`` is the code index, ``t = k + 1``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from ddpm.parameterization import from_x0, predict_x0_eps
from ddpm.schedule import Schedule, extract

FixedVariance = Literal["fixed_small", "fixed_large"]
TrainedVariance = Literal[FixedVariance, "learned_range"]  # what a network is trained with
Variance = Literal[TrainedVariance, "analytic"]  # what sampling and the VLB may use
VARIANCES: tuple[str, ...] = get_args(Variance)


def q_step(schedule: Schedule, x_prev: Tensor, k: Tensor, noise: Tensor) -> Tensor:
    """One forward step, eq. 14: ``x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps``."""
    beta = extract(schedule.betas, k, x_prev.shape, x_prev.dtype)
    return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise


def q_mean_variance(schedule: Schedule, x0: Tensor, k: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Prop. 3, eq. 31: ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``.
    Returns ``(mean, variance, log_variance)``."""
    mean = extract(schedule.sqrt_alphas_cumprod, k, x0.shape, x0.dtype) * x0
    var = extract(1.0 - schedule.alphas_cumprod, k, x0.shape, x0.dtype)
    log_var = extract(schedule.log_one_minus_alphas_cumprod, k, x0.shape, x0.dtype)
    return mean, var, log_var


def q_sample(schedule: Schedule, x0: Tensor, k: Tensor, noise: Tensor | None = None) -> Tensor:
    """Sample ``x_t ~ q(x_t | x_0)`` in one shot (Prop. 3, eq. 31):
    ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``."""
    if noise is None:
        noise = torch.randn_like(x0)
    return (
        extract(schedule.sqrt_alphas_cumprod, k, x0.shape, x0.dtype) * x0
        + extract(schedule.sqrt_one_minus_alphas_cumprod, k, x0.shape, x0.dtype) * noise
    )


def q_posterior(
    schedule: Schedule, x0: Tensor, x_t: Tensor, k: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Prop. 4, eq. 32-34: ``q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I)`` with
    ``mu_tilde_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
    + sqrt(1 - beta_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t`` (eq. 33) and
    ``beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t`` (eq. 34).

    Returns ``(mean, variance, log_variance)``; the log-variance is clipped at ``t = 1`` where
    ``beta_tilde_1 = 0`` (see :attr:`Schedule.posterior_log_variance_clipped`).
    """
    mean = (
        extract(schedule.posterior_mean_coef1, k, x_t.shape, x_t.dtype) * x0
        + extract(schedule.posterior_mean_coef2, k, x_t.shape, x_t.dtype) * x_t
    )
    var = extract(schedule.posterior_variance, k, x_t.shape, x_t.dtype)
    log_var = extract(schedule.posterior_log_variance_clipped, k, x_t.shape, x_t.dtype)
    return mean, var, log_var


def fixed_log_variance(schedule: Schedule, variance: str, k: Tensor, x_t: Tensor) -> Tensor:
    """``log sigma_t^2`` of the reverse model (eq. 12) for the two fixed choices of Ho et al.
    (sec. 3.2): ``fixed_small`` is ``beta_tilde_t`` (eq. 34), ``fixed_large`` is ``beta_t``."""
    if variance == "fixed_small":
        return extract(schedule.posterior_log_variance_clipped, k, x_t.shape, x_t.dtype)
    if variance == "fixed_large":
        return extract(schedule.fixed_large_log_variance, k, x_t.shape, x_t.dtype)
    raise ValueError(f"unknown fixed variance {variance!r}; choose fixed_small or fixed_large")


def learned_range_log_variance(schedule: Schedule, v: Tensor, k: Tensor) -> Tensor:
    """Nichol & Dhariwal (2021) eq. 15: ``log Sigma = v log beta_t + (1 - v) log beta_tilde_t``,
    with the network output ``v`` in [-1, 1] mapped to [0, 1]."""
    frac = (v + 1.0) / 2.0
    max_log = extract(schedule.betas.log(), k, v.shape, v.dtype)
    min_log = extract(schedule.posterior_log_variance_clipped, k, v.shape, v.dtype)
    return frac * max_log + (1.0 - frac) * min_log


def split_output(out: Tensor, variance: str) -> tuple[Tensor, Tensor | None]:
    """A learned-variance network outputs ``[prediction, v]`` along the channel axis."""
    if variance == "learned_range":
        pred, v = out.chunk(2, dim=1)
        return pred, v
    return out, None


def p_mean_variance(
    schedule: Schedule,
    out: Tensor,
    x_t: Tensor,
    k: Tensor,
    prediction: str = "eps",
    variance: str = "fixed_small",
    clip_x0: bool = False,
    analytic_log_variance: Tensor | None = None,
) -> dict[str, Tensor]:
    """The reverse model ``p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I)`` (eq. 12).

    The mean is the posterior mean (eq. 33) evaluated at the model's ``x0`` estimate, which is
    how every parameterization reduces to the seed's ``mu`` (eq. 42). ``variance`` picks
    ``sigma_t^2``: ``fixed_small``/``fixed_large`` (Ho et al.), ``learned_range`` (Nichol &
    Dhariwal), ``analytic`` (Bao et al. 2022; pass the per-step ``analytic_log_variance`` table).
    Returns a dict with ``mean``, ``log_variance``, ``pred_x0`` and ``pred_eps``.
    """
    pred, v = split_output(out, variance)
    if variance == "learned_range":
        assert v is not None  # split_output returns v for learned_range
        log_var = learned_range_log_variance(schedule, v, k)
    elif variance == "analytic":
        if analytic_log_variance is None:
            raise ValueError("variance='analytic' needs the analytic_log_variance table")
        log_var = extract(analytic_log_variance, k, x_t.shape, x_t.dtype)
    else:
        log_var = fixed_log_variance(schedule, variance, k, x_t)
    x0, eps = predict_x0_eps(schedule, prediction, pred, x_t, k, clip_x0)
    mean = pred if prediction == "mu" and not clip_x0 else from_x0(schedule, "mu", x0, x_t, k)
    return {"mean": mean, "log_variance": log_var, "pred_x0": x0, "pred_eps": eps}
