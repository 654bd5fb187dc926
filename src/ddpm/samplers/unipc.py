"""UniPC, the unified predictor-corrector (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector
Framework for Fast Sampling of Diffusion Models"), multistep, in data-prediction form.

Both halves approximate the exact solution of the probability-flow ODE from ``lambda_s`` to
``lambda_t = lambda_s + h`` (Lu et al. 2022b eq. 9), expanded in the derivatives of the data
prediction ``x0(lambda)``:

    x_t = (sigma_t/sigma_s) x_s + alpha_t sum_{n>=0} h^{n+1} phi_{n+1}(-h) x0^{(n)}(lambda_s),

``phi_1(z) = (e^z - 1)/z``, ``phi_{n+1}(z) = (phi_n(z) - 1/n!)/z``. UniPC replaces the terms
``n >= 1`` by ``alpha_t B(h) sum_m a_m D_m / r_m`` with ``D_m = x0_m - x0_s`` the differences to
other points at ``lambda_s + r_m h``, and ``a`` from the order conditions
``R_p(h) a = g(h) / B(h)``, ``R_p[n, m] = r_m^n`` (n = 0..p-1), ``g_n = h n! phi_{n+1}(-h)``
(Zhao et al. sec. 3, the "B(h)" form, their Theorem 3.1 and Corollary 3.2), so that the first
``p`` terms are matched:

* UniP-p (predictor) uses the ``p - 1`` previous points (``r_m < 0``): order ``p``;
* UniC-p (corrector) adds the new point ``x0(x~_t)`` at ``r = 1``, already computed for the next
  step, so it costs no network call: order ``p + 1``.

With a single difference the paper takes ``a_1 = 1/2`` (its leading term), and then ``B(h)``
matters: ``bh1`` is ``B(h) = h``, ``bh2`` is ``B(h) = 1 - e^{-h}`` (``e^h - 1`` in the paper's
noise-prediction form); with more differences ``B`` cancels from the solved system.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.dpm_solver import Order, multistep_order
from ddpm.samplers.spec import StepCallback
from ddpm.targets import check_arguments

Variant = Literal["bh1", "bh2"]
THIRD_ORDER_FROM = 12  # order "auto": UniPC-3 from this many steps, UniPC-2 below


def phi(n: int, z: float) -> float:
    """``phi_n(z) = sum_j z^j / (j + n)!`` (``phi_0 = e^z``): by the series for small ``|z|``,
    where the recursion ``(phi_{n-1} - 1/(n-1)!)/z`` would cancel, else by the recursion."""
    if abs(z) < 0.5:
        term, total = 1.0 / math.factorial(n), 0.0
        for j in range(40):
            total += term
            term *= z / (j + n + 1)
        return total
    out = math.exp(z)
    for j in range(n):
        out = (out - 1.0 / math.factorial(j)) / z
    return out


def b_of_h(h: float, variant: Variant) -> float:
    """``B(h)``: ``h`` (bh1) or ``1 - e^{-h}`` (bh2), both ``h + O(h^2)``."""
    return h if variant == "bh1" else -math.expm1(-h)


def unipc_weights(rs: list[float], h: float, variant: Variant) -> list[float]:
    """The products ``B(h) a_m`` for the differences at ``r_m``: ``a = R_p^{-1} g / B(h)``, or
    ``a_1 = 1/2`` for a single difference (Zhao et al. sec. 3)."""
    if len(rs) == 1:
        return [0.5 * b_of_h(h, variant)]
    p = len(rs)
    r = torch.tensor(rs, dtype=torch.float64)
    R = torch.stack([r**n for n in range(p)])
    g = [h * math.factorial(n) * phi(n + 1, -h) for n in range(1, p + 1)]
    return torch.linalg.solve(R, torch.tensor(g, dtype=torch.float64)).tolist()


def exponential_step(
    x_s: Tensor,
    m_s: Tensor,
    points: list[tuple[float, Tensor]],
    lam_s: float,
    lam_t: float,
    sigma_ratio: float,
    variant: Variant,
) -> Tensor:
    """``(sigma_t/sigma_s) x_s + (1 - e^{-h}) x0_s + B(h) sum_m a_m D_m / r_m`` on the ``x /
    alpha`` scale (``alpha_t = 1``), with ``points`` the other ``(lambda_m, x0_m)`` (none: DDIM,
    i.e. DPM-Solver++(1))."""
    h = lam_t - lam_s
    x = sigma_ratio * x_s - math.expm1(-h) * m_s
    if points:
        rs = [(lam_m - lam_s) / h for lam_m, _ in points]
        weights = unipc_weights(rs, h, variant)
        for w, r, (_, m) in zip(weights, rs, points):
            x = x + (w / r) * (m - m_s)
    return x


def unipc(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator=None,
    callback: StepCallback | None = None,
    order: Order = "auto",
    variant: Variant = "bh2",
    lower_order_final: bool = False,
    final_corrector: bool = True,
) -> Tensor:
    """UniPC-``order`` on the ``x / alpha`` scale (``alpha = 1``, ``sigma`` the level): at each
    level one network call at the predicted state ``x~``, then UniC corrects the state with it
    and UniP-``order`` predicts the next (orders 1-3: the predictor's order; with the corrector
    the method is of order ``order + 1``, Zhao et al. Theorem 3.1; ``"auto"``: 3 from
    :data:`THIRD_ORDER_FROM` steps, 2 below, see :func:`ddpm.samplers.dpm_solver.multistep_order`).
    One network call per step: ``nfe = steps``. The first steps use the order the history
    allows; with ``lower_order_final`` the order also drops as the list runs out (as in
    :func:`ddpm.samplers.dpm_solver.dpm_solver`).

    The step to level 0 in data-prediction form returns ``x0(x~_0)`` and would waste the last
    correction; with ``final_corrector`` it is taken in noise-prediction form from the corrected
    state ``x_0`` with the noise estimate at ``x~_0``, ``x_0 - sigma_0 eps(x~_0) = x0(x~_0) +
    (x_0 - x~_0)``, still one first-order step and no extra network call. Deterministic:
    ``generator`` is unused.
    """
    options = dict(order=order, variant=variant, lower_order_final=lower_order_final)
    check_arguments(unipc, options | {"final_corrector": final_corrector})
    n = len(sigmas) - 1
    max_order = multistep_order(order, n, THIRD_ORDER_FROM)

    def ode_step(x_s: Tensor, s_from: float, m_s: Tensor, points, s_to: float) -> Tensor:
        lam_s, lam_t = -math.log(s_from), -math.log(s_to)
        return exponential_step(x_s, m_s, points, lam_s, lam_t, s_to / s_from, variant)

    x = x_T
    history: list[tuple[float, float, Tensor]] = []  # (sigma, lambda, x0), newest first
    x_from, used = x_T, 1  # the corrected state the last prediction started from, and its order
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        lam = -math.log(s)
        x0 = denoiser(x, s).x0
        if history and (s_next > 0 or final_corrector):  # UniC-`used`: the new point at r = 1
            s_s, _, m_s = history[0]
            points = [(lam_m, m) for _, lam_m, m in history[1:used]] + [(lam, x0)]
            x_c = ode_step(x_from, s_s, m_s, points, s)
            if s_next == 0:  # the final jump in noise-prediction form, from the corrected state
                x0 = x0 + (x_c - x)
            x = x_c
        history.insert(0, (s, lam, x0))
        del history[max_order:]
        if s_next == 0:
            x = x0
        else:
            used = min(max_order, len(history))
            if lower_order_final:
                used = min(used, n - 1 - i)
            x_from = x
            points = [(lam_m, m) for _, lam_m, m in history[1:used]]
            x = ode_step(x, s, x0, points, s_next)
        if callback is not None:
            callback(i, s_next, x, x0)
    return x
