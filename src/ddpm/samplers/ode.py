"""The probability-flow ODE (Song et al. 2021) solved with an adaptive Dormand-Prince 5(4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.samplers.common import Denoiser, batch_k
from ddpm.schedule import Schedule, k_at_log_snr

# Dormand & Prince (1980), RK5(4)7M: nodes, stages, 5th- and 4th-order weights.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def dopri5(f, y: Tensor, t0: float, t1: float, rtol: float, atol: float, h0: float | None = None):
    """Integrate ``dy/dt = f(t, y)`` from ``t0`` to ``t1`` with adaptive Dormand-Prince 5(4),
    one step size for the whole batch (error in the RMS norm of Hairer et al., II.4)."""
    t, h = t0, h0 or (t1 - t0) / 20
    direction = math.copysign(1.0, t1 - t0)
    k1 = f(t, y)
    while direction * (t1 - t) > 1e-12 * abs(t1 - t0):
        h = direction * min(abs(h), abs(t1 - t))
        ks = [k1]
        for i in range(1, 7):
            yi = y + h * sum(a * kj for a, kj in zip(_A[i], ks) if a != 0.0)
            ks.append(f(t + _C[i] * h, yi))
        y5 = y + h * sum(b * kj for b, kj in zip(_B5, ks) if b != 0.0)
        err = h * sum((b5 - b4) * kj for b5, b4, kj in zip(_B5, _B4, ks))
        scale = atol + rtol * torch.maximum(y.abs(), y5.abs())
        e = (err / scale).pow(2).mean().sqrt().item()
        if e <= 1.0:
            t, y, k1 = t + h, y5, ks[6]  # first-same-as-last
        h = h * min(5.0, max(0.2, 0.9 * (e if e > 0 else 1e-10) ** -0.2))
    return y


def probability_flow(
    den: Denoiser, schedule: Schedule, x: Tensor, rtol: float = 1e-5, atol: float = 1e-5
) -> Tensor:
    """Solve the probability-flow ODE from ``k = T-1`` down to ``k = 0``, then take the data
    prediction there (the same last step as DDIM and DPM-Solver++).

    For the VP process the ODE is ``d xbar / d sigmabar = eps(x, t)`` with ``xbar = x / alpha``,
    ``sigmabar = sigma / alpha = e^{-lambda}`` (Song et al. 2021, DDIM sec. 4.3); we integrate in
    ``rho = log sigmabar``: ``d xbar / d rho = sigmabar eps``. Between trained indices the network
    sees the real-valued ``k`` of :func:`ddpm.schedule.k_at_log_snr`.
    """
    lam = schedule.log_snr

    def f(rho: float, xbar: Tensor) -> Tensor:
        sb = math.exp(rho)
        k = k_at_log_snr(schedule, torch.tensor([-rho], dtype=torch.float64)).item()
        xt = xbar / math.sqrt(1 + sb * sb)
        _, eps, _ = den(xt, batch_k(k, xt, torch.float64))
        return sb * eps

    rho0, rho1 = -lam[-1].item(), -lam[0].item()
    xbar = x * math.sqrt(1 + math.exp(2 * rho0))
    xbar = dopri5(f, xbar, rho0, rho1, rtol, atol)
    x = xbar / math.sqrt(1 + math.exp(2 * rho1))
    x0, _, _ = den(x, batch_k(0, x))
    den.record(x0)
    return x0
