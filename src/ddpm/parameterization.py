"""What the network predicts, and how each prediction converts to every other.

Given ``x_t`` (at code index ``k``) the four targets are linear in one another:

* ``eps``: the noise (Ho et al. 2020, eq. 11-12),
* ``x0``: the clean data,
* ``v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0`` (Salimans & Ho 2022, sec. 4),
* ``mu``: the reverse-process mean itself, which the seed fits directly (eq. 42):
  ``mu = mu_tilde(x0, x_t) = c1 x0 + c2 x_t`` (eq. 33).

Everything is expressed through ``x0``: :func:`to_x0` and :func:`from_x0` invert each other.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from ddpm.schedule import Schedule, extract

Prediction = Literal["eps", "x0", "v", "mu"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}"
        )
    return prediction


def _coef(schedule: Schedule, name: str, k: Tensor, x: Tensor) -> Tensor:
    return extract(getattr(schedule, name), k, x.shape, x.dtype)


def x0_from_eps(schedule: Schedule, x_t: Tensor, k: Tensor, eps: Tensor) -> Tensor:
    """Invert eq. 31: ``x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)``."""
    return (
        _coef(schedule, "sqrt_recip_alphas_cumprod", k, x_t) * x_t
        - _coef(schedule, "sqrt_recipm1_alphas_cumprod", k, x_t) * eps
    )


def eps_from_x0(schedule: Schedule, x_t: Tensor, k: Tensor, x0: Tensor) -> Tensor:
    """Invert eq. 31 for the noise: ``eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar)``."""
    return (_coef(schedule, "sqrt_recip_alphas_cumprod", k, x_t) * x_t - x0) / _coef(
        schedule, "sqrt_recipm1_alphas_cumprod", k, x_t
    )


def x0_from_v(schedule: Schedule, x_t: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Salimans & Ho (2022) sec. 4: ``x0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v``."""
    return (
        _coef(schedule, "sqrt_alphas_cumprod", k, x_t) * x_t
        - _coef(schedule, "sqrt_one_minus_alphas_cumprod", k, x_t) * v
    )


def v_from_x0(schedule: Schedule, x_t: Tensor, k: Tensor, x0: Tensor) -> Tensor:
    """``v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0`` with ``eps`` from eq. 31."""
    eps = eps_from_x0(schedule, x_t, k, x0)
    return (
        _coef(schedule, "sqrt_alphas_cumprod", k, x_t) * eps
        - _coef(schedule, "sqrt_one_minus_alphas_cumprod", k, x_t) * x0
    )


def mu_from_x0(schedule: Schedule, x_t: Tensor, k: Tensor, x0: Tensor) -> Tensor:
    """The posterior mean ``mu_tilde_t(x0, x_t)`` of eq. 33, the seed's regression target (eq. 42)."""
    return (
        _coef(schedule, "posterior_mean_coef1", k, x_t) * x0
        + _coef(schedule, "posterior_mean_coef2", k, x_t) * x_t
    )


def x0_from_mu(schedule: Schedule, x_t: Tensor, k: Tensor, mu: Tensor) -> Tensor:
    """Invert eq. 33 for ``x0``; ``c1 > 0`` at every step (``c1 = 1`` at ``t = 1``)."""
    return (mu - _coef(schedule, "posterior_mean_coef2", k, x_t) * x_t) / _coef(
        schedule, "posterior_mean_coef1", k, x_t
    )


_TO_X0 = {
    "eps": x0_from_eps,
    "x0": lambda schedule, x_t, k, x0: x0,
    "v": x0_from_v,
    "mu": x0_from_mu,
}
_FROM_X0 = {
    "eps": eps_from_x0,
    "x0": lambda schedule, x_t, k, x0: x0,
    "v": v_from_x0,
    "mu": mu_from_x0,
}


def to_x0(schedule: Schedule, prediction: str, out: Tensor, x_t: Tensor, k: Tensor) -> Tensor:
    """The ``x0`` implied by a network output of the given prediction type."""
    return _TO_X0[check_prediction(prediction)](schedule, x_t, k, out)


def from_x0(schedule: Schedule, prediction: str, x0: Tensor, x_t: Tensor, k: Tensor) -> Tensor:
    """The prediction of the given type implied by ``x0`` (the training target when ``x0`` is
    the true clean data)."""
    return _FROM_X0[check_prediction(prediction)](schedule, x_t, k, x0)


def convert(schedule: Schedule, out: Tensor, x_t: Tensor, k: Tensor, src: str, dst: str) -> Tensor:
    """Convert a prediction of type ``src`` into type ``dst`` at ``(x_t, k)``."""
    if src == dst:
        return out
    return from_x0(schedule, dst, to_x0(schedule, src, out, x_t, k), x_t, k)


def predict_x0_eps(
    schedule: Schedule, prediction: str, out: Tensor, x_t: Tensor, k: Tensor, clip_x0: bool = False
) -> tuple[Tensor, Tensor]:
    """``(x0, eps)`` implied by the network output. With ``clip_x0`` the ``x0`` estimate is clamped
    to the data range [-1, 1] and ``eps`` recomputed from the clamped ``x0`` (Ho et al.'s code,
    DDIM's "dynamic" consistency), so the sampler's two estimates agree."""
    if prediction == "eps" and not clip_x0:
        return x0_from_eps(schedule, x_t, k, out), out
    x0 = to_x0(schedule, prediction, out, x_t, k)
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
    return x0, eps_from_x0(schedule, x_t, k, x0)


def x0_error_scale(schedule: Schedule, prediction: str, k: Tensor) -> Tensor:
    """``||target - pred||^2 / ||x0 - x0_hat||^2`` for each prediction type, at fixed ``x_t``.

    From the conversions above: ``SNR`` for eps, 1 for x0, ``SNR + 1`` for v, ``c1^2`` for mu.
    Loss weightings (min-SNR, the VLB) are stated on the x0 error and divided by this factor.
    """
    check_prediction(prediction)
    if prediction == "eps":
        return schedule.snr[k]
    if prediction == "v":
        return schedule.snr[k] + 1.0
    if prediction == "mu":
        return schedule.posterior_mean_coef1[k] ** 2
    return torch.ones_like(schedule.snr[k])
