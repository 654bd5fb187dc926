"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, sec. 4.3 and app. D.2),
the continuous-time counterpart of the VLB, defined for every path: instantaneous change of
variables along the ODE (:mod:`ddpm.probability_flow`) from the data to the prior, the divergence
by Hutchinson's estimator (or exactly for small ``d``), images dequantized with uniform noise so
the result is a bound on the discrete NLL in bits/dim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.odeint import ODEError, dopri5
from ddpm.probability_flow import drift


def ode_log_likelihood(
    denoiser,
    x0: Tensor,
    exact_trace: bool = False,
    generator: torch.Generator | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """``log p(x0)`` (nats, per example) under the probability-flow ODE of ``denoiser``'s path.

    On the ``x / alpha`` scale and in ``rho = log sigma`` the ODE is ``dx / drho = x - D(x;
    sigma)``, whose divergence is ``d - tr(dD/dx)``. Integrating from the data (``x = x0`` at the
    path's ``sigma_min``) to ``sigma_max``: ``log p(x0) = log N(x_T; 0, s^2 I) + int div drho``,
    ``s`` the prior's scale (:meth:`ddpm.paths.Path.prior_scale`). The trace is Hutchinson's
    ``v^T J v`` with one Rademacher ``v`` per example, fixed along the path (``exact_trace``
    sums ``d`` vector-Jacobian products instead).
    """
    path = denoiser.path
    n, shape = x0.shape[0], x0.shape[1:]
    d = math.prod(shape)
    rho0, rho1 = math.log(path.sigma_min), math.log(path.sigma_max)
    v = None
    if not exact_trace:
        v = (torch.randint(0, 2, x0.shape, generator=generator).to(x0) * 2 - 1).to(x0.device)

    def f(rho: float, y: Tensor) -> Tensor:
        with torch.enable_grad():
            x = y[:, :d].reshape(n, *shape).detach().requires_grad_(True)
            dx = drift(denoiser, x, rho)
            if exact_trace:
                tr = torch.zeros(n, dtype=x.dtype, device=x.device)
                flat = dx.reshape(n, -1)
                for i in range(d):
                    g = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i < d - 1)[0]
                    tr = tr + g.reshape(n, -1)[:, i]
            else:
                assert v is not None  # drawn above when not exact_trace
                g = torch.autograd.grad((dx * v).sum(), x)[0]
                tr = (g * v).reshape(n, -1).sum(1)
        return torch.cat([dx.detach().reshape(n, -1), tr.detach()[:, None]], dim=1)

    y0 = torch.cat([x0.reshape(n, -1), torch.zeros(n, 1, dtype=x0.dtype, device=x0.device)], dim=1)
    try:
        y1 = dopri5(f, y0, rho0, rho1, rtol, atol)
    except ODEError as e:
        raise ODEError(
            f"bpd=ode stopped at noise level sigma={math.exp(e.t):.4g}: {e} (a network output "
            f"that is not finite, or an ODE too stiff for rtol={rtol}, atol={atol})",
            e.t,
        ) from None
    x_T, delta = y1[:, :d], y1[:, d]
    var_T = path.prior_scale(path.sigma_max) ** 2
    log_prior = -0.5 * (d * math.log(2 * math.pi * var_T) + (x_T**2).sum(1) / var_T)
    return log_prior + delta


def ode_bits_per_dim(
    denoiser,
    x0: Tensor,
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
    logp = ode_log_likelihood(denoiser, x0, generator=generator, rtol=rtol, atol=atol)
    nll = -logp - (d * math.log(2 / 255) if discrete else 0.0)
    return nll / (d * math.log(2))
