"""Power-function EMA and its post-hoc reconstruction (Karras et al. 2024, "Analyzing and
improving the training dynamics of diffusion models", EDM2, sec. 3 and App. C.2-C.3).

A power-function EMA with exponent ``gamma`` updates ``theta_hat <- beta_t theta_hat + (1 -
beta_t) theta_t`` with ``beta_t = (1 - 1/t)^(gamma + 1)`` at step ``t = 1, 2, ...`` (eq. 5), so at
step ``t`` it averages the training trajectory with the profile ``p_t(tau) = (gamma + 1)
tau^gamma / t^(gamma + 1)`` on ``[0, t]`` (eq. 34). Its relative width ``sigma_rel`` (the standard
deviation of the profile over its length) is ``sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3)))``
(eq. 3), inverted by the largest real root of a cubic.

Snapshots of averages with a few ``(t_i, gamma_i)`` span a space of profiles; the average of any
other profile is approximated by the combination ``sum_i x_i theta_hat_i`` whose profile is
closest in L2: ``A x = b`` with ``A_ij = <p_i, p_j>`` and ``b_i = <p_i, p_target>`` (App. C.3),
the inner products in closed form (:func:`profile_inner`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ddpm.checks import ConfigError

SIGMA_REL_MAX = math.sqrt(1 / 12)  # gamma = 0, the uniform average of the whole run


def sigma_rel_from_gamma(gamma: float) -> float:
    """EDM2 eq. 3: the relative standard deviation of a power-function profile."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def check_sigma_rel(sigma_rel: float, name: str = "sigma_rel") -> None:
    """Refuse a width outside ``(0, sqrt(1/12))``: wider profiles would need ``gamma <= 0``,
    weighting the start of training at least as much as its end."""
    if not 0 < sigma_rel < SIGMA_REL_MAX:
        raise ConfigError(
            f"{name}={sigma_rel} is outside (0, {SIGMA_REL_MAX:.4f}), the widths of "
            f"power-function averages (EDM2 uses 0.01 to 0.25)"
        )


def gamma_from_sigma_rel(sigma_rel: float) -> float:
    """The exponent ``gamma > 0`` whose profile has relative width ``sigma_rel``: the largest
    real root of ``gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + (12 - s^-2) = 0`` (eq. 3 squared
    and multiplied out), for ``0 < sigma_rel < sqrt(1/12)``."""
    check_sigma_rel(sigma_rel)
    k = 1.0 / sigma_rel**2
    roots = np.roots([1.0, 7.0, 16.0 - k, 12.0 - k])
    return float(max(r.real for r in roots if abs(r.imag) < 1e-9))


def power_ema_beta(step: int, gamma: float) -> float:
    """EDM2 eq. 5: the decay at optimizer step ``step`` (1-based); 0 at the first step."""
    return (1.0 - 1.0 / step) ** (gamma + 1.0)


def profile_inner(t_a: float, g_a: float, t_b: float, g_b: float) -> float:
    """``<p_a, p_b> = int_0^min(t_a, t_b) p_a(tau) p_b(tau) dtau`` for power-function profiles
    ``p(tau) = (g + 1) tau^g / t^(g + 1)`` (EDM2 App. C.3, closed form)."""
    m = min(t_a, t_b)
    g = g_a + g_b + 1.0
    # (g_a + 1)(g_b + 1) m^g / (g t_a^(g_a + 1) t_b^(g_b + 1)), in logs for large steps
    log = (
        math.log(g_a + 1) + math.log(g_b + 1) + g * math.log(m) - math.log(g)
        - (g_a + 1) * math.log(t_a) - (g_b + 1) * math.log(t_b)
    )  # fmt: skip
    return math.exp(log)


def gram(
    sources: Sequence[tuple[float, float]], target: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, float]:
    """``A_ij = <p_i, p_j>``, ``b_i = <p_i, p_target>`` and ``<p_target, p_target>``."""
    A = np.array([[profile_inner(*a, *b) for b in sources] for a in sources])
    b = np.array([profile_inner(*a, *target) for a in sources])
    return A, b, profile_inner(*target, *target)


def solve_weights(
    sources: Sequence[tuple[float, float]], target: tuple[float, float]
) -> np.ndarray:
    """The coefficients ``x`` of the snapshots ``sources`` (each ``(t, gamma)``) whose combined
    profile is closest in L2 to ``target``'s (EDM2 App. C.3): ``A x = b`` solved by least
    squares (the Gram matrix is near-singular when snapshots are close)."""
    return fit(sources, target)[0]


def fit_error(sources: Sequence[tuple[float, float]], target: tuple[float, float], x) -> float:
    """``||sum_i x_i p_i - p_target|| / ||p_target||``: how well the snapshots express the
    target profile (0: exactly)."""
    return _relative_error(*gram(sources, target), np.asarray(x))


def fit(
    sources: Sequence[tuple[float, float]], target: tuple[float, float]
) -> tuple[np.ndarray, float]:
    """:func:`solve_weights` and its :func:`fit_error` from one Gram matrix."""
    A, b, tt = gram(sources, target)
    x = np.linalg.lstsq(A, b, rcond=None)[0]
    return x, _relative_error(A, b, tt, x)


def _relative_error(A: np.ndarray, b: np.ndarray, tt: float, x: np.ndarray) -> float:
    return math.sqrt(max(x @ A @ x - 2 * x @ b + tt, 0.0) / tt)
