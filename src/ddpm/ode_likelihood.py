"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, sec. 4.3 and app. D.2),
the continuous-time counterpart of the VLB: instantaneous change of variables along the ODE from
the data to the prior, the divergence by Hutchinson's estimator (or exactly for small ``d``),
images dequantized with uniform noise so the result is a bound on the discrete NLL in bits/dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ddpm.odeint import dopri5
from ddpm.parameterization import predict_x0_eps_continuous
from ddpm.schedule import Schedule, alpha_bar_at, k_at_log_snr


def _eps_at(model_fn, schedule: Schedule, prediction: str, x: Tensor, rho: float) -> Tensor:
    """The noise estimate at ``sigmabar = e^rho`` (real-valued code time)."""
    k = k_at_log_snr(schedule, torch.tensor([-rho], dtype=torch.float64)).item()
    kk = torch.full((x.shape[0],), k, dtype=torch.float64, device=x.device)
    out = model_fn(x, kk)
    abar = alpha_bar_at(schedule, kk.cpu())
    return predict_x0_eps_continuous(abar, prediction, out, x)[1]


def ode_log_likelihood(
    schedule: Schedule,
    model_fn: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    prediction: str = "eps",
    exact_trace: bool = False,
    generator: torch.Generator | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """``log p(x0)`` (nats, per example) under the model's probability-flow ODE.

    In ``xbar = x / alpha`` and ``rho = log sigmabar`` the ODE is ``d xbar / d rho = sigmabar
    eps(x)``, whose divergence in ``xbar`` is ``sigmabar / sqrt(1 + sigmabar^2) tr(d eps / d x)``.
    Integrating from the data (``rho`` at ``k = 0``, ``xbar = x0``) to ``k = T-1``:
    ``log p(x0) = log N(xbar_T; 0, (1 + sigmabar_T^2) I) + int div d rho``. The trace is
    Hutchinson's ``v^T J v`` with one Rademacher ``v`` per example, fixed along the path
    (``exact_trace`` sums ``d`` vector-Jacobian products instead).
    """
    n = x0.shape[0]
    shape = x0.shape[1:]
    d = math.prod(shape)
    lam = schedule.log_snr
    rho0, rho1 = -lam[0].item(), -lam[-1].item()
    v = None
    if not exact_trace:
        v = (torch.randint(0, 2, x0.shape, generator=generator).to(x0) * 2 - 1).to(x0.device)

    def f(rho: float, y: Tensor) -> Tensor:
        sb = math.exp(rho)
        xbar = y[:, :d].reshape(n, *shape)
        with torch.enable_grad():
            x = (xbar / math.sqrt(1 + sb * sb)).detach().requires_grad_(True)
            eps = _eps_at(model_fn, schedule, prediction, x, rho)
            if exact_trace:
                tr = torch.zeros(n, dtype=x.dtype, device=x.device)
                flat = eps.reshape(n, -1)
                for i in range(d):
                    g = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i < d - 1)[0]
                    tr = tr + g.reshape(n, -1)[:, i]
            else:
                g = torch.autograd.grad((eps * v).sum(), x)[0]
                tr = (g * v).reshape(n, -1).sum(1)
        div = sb / math.sqrt(1 + sb * sb) * tr
        return torch.cat([(sb * eps.detach()).reshape(n, -1), div.detach()[:, None]], dim=1)

    y0 = torch.cat([x0.reshape(n, -1), torch.zeros(n, 1, dtype=x0.dtype, device=x0.device)], dim=1)
    y1 = dopri5(f, y0, rho0, rho1, rtol, atol)
    xbar_T, delta = y1[:, :d], y1[:, d]
    var_T = 1 + math.exp(2 * rho1)
    log_prior = -0.5 * (d * math.log(2 * math.pi * var_T) + (xbar_T**2).sum(1) / var_T)
    return log_prior + delta


def ode_bits_per_dim(
    schedule: Schedule,
    model_fn,
    x0: Tensor,
    prediction: str = "eps",
    discrete: bool = True,
    generator: torch.Generator | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """Bits/dim per example. For 8-bit images (``discrete``) the data is dequantized with uniform
    noise over its bin of width ``2/255``; ``-log P(bin) <= -log p(x + u) - d log(2/255)``
    (Song et al. app. D.2), so the result bounds the discrete NLL."""
    d = math.prod(x0.shape[1:])
    if discrete:
        u = (torch.rand(x0.shape, generator=generator).to(x0) - 0.5) * (2 / 255)
        x0 = x0 + u.to(x0.device)
    logp = ode_log_likelihood(
        schedule, model_fn, x0, prediction, generator=generator, rtol=rtol, atol=atol
    )
    nll = -logp - (d * math.log(2 / 255) if discrete else 0.0)
    return nll / (d * math.log(2))
