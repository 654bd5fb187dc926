"""The probability-flow ODE (Song et al. 2021) solved with an adaptive Dormand-Prince 5(4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.odeint import dopri5
from ddpm.samplers.common import Denoiser, batch_k
from ddpm.schedule import Schedule, k_at_log_snr


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
