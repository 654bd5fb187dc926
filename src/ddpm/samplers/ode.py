"""The probability-flow ODE (Song et al. 2021) solved with an adaptive Dormand-Prince 5(4)."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor

from ddpm.checks import POSITIVE
from ddpm.odeint import dopri5
from ddpm.samplers.denoiser import Denoiser, batch_k
from ddpm.samplers.spec import StepCallback
from ddpm.schedule import k_at_log_snr
from ddpm.targets import check_arguments


def probability_flow(
    denoiser: Denoiser,
    x_T: Tensor,
    ks: Tensor,
    *,
    generator=None,
    callback: StepCallback | None = None,
    rtol: Annotated[float, POSITIVE] = 1e-5,
    atol: Annotated[float, POSITIVE] = 1e-5,
) -> Tensor:
    """Solve the probability-flow ODE from ``k = ks[0]`` down to ``k = ks[-1]`` (the ends of the
    step list; the solver picks its own steps in between), then take the data prediction there
    (the same last step as DDIM and DPM-Solver++). Deterministic: ``generator`` is unused.

    For the VP process the ODE is ``d xbar / d sigmabar = eps(x, t)`` with ``xbar = x / alpha``,
    ``sigmabar = sigma / alpha = e^{-lambda}`` (Song et al. 2021, DDIM sec. 4.3); we integrate in
    ``rho = log sigmabar``: ``d xbar / d rho = sigmabar eps``. Between trained indices the network
    sees the real-valued ``k`` of :func:`ddpm.schedule.k_at_log_snr`.
    """
    check_arguments(probability_flow, {"rtol": rtol, "atol": atol})
    schedule = denoiser.schedule
    lam = schedule.log_snr

    def f(rho: float, xbar: Tensor) -> Tensor:
        sb = math.exp(rho)
        k = k_at_log_snr(schedule, torch.tensor([-rho], dtype=torch.float64)).item()
        xt = xbar / math.sqrt(1 + sb * sb)
        return sb * denoiser(xt, batch_k(k, xt, torch.float64)).eps

    k_start, k_end = int(ks[0]), int(ks[-1])
    rho0, rho1 = -lam[k_start].item(), -lam[k_end].item()
    xbar = x_T * math.sqrt(1 + math.exp(2 * rho0))
    xbar = dopri5(f, xbar, rho0, rho1, rtol, atol)
    x = xbar / math.sqrt(1 + math.exp(2 * rho1))
    x0 = denoiser(x, batch_k(k_end, x)).x0
    if callback is not None:
        callback(len(ks) - 1, k_end, x0, x0)  # adaptive: only the end is reported
    return x0
