"""MeanFlow (Geng et al. 2025, "Mean flows for one-step generative modeling"): a network
``u(z_t, r, t)`` of the **average velocity** between times ``r <= t`` of the flow path
``z_t = (1 - t) x + t eps``,

    u(z_t, r, t) = 1 / (t - r) \\int_r^t v(z_tau, tau) d tau       (their eq. 3),

so one step ``z_r = z_t - (t - r) u(z_t, r, t)`` is exact (eq. 12). Differentiating ``(t - r) u``
in ``t`` gives the MeanFlow identity (eq. 6)

    u(z_t, r, t) = v(z_t, t) - (t - r) d/dt u(z_t, r, t),
    d/dt u = v \\partial_z u + \\partial_t u                        (eq. 8),

whose right side is the training target with a stopped gradient (eq. 10): the total derivative is
one Jacobian-vector product of the network with the tangent ``(v, 0, 1)`` in ``(z, r, t)``
(``torch.func.jvp``), and ``v`` is the conditional velocity ``eps - x``, whose conditional mean is
the marginal velocity. At ``r = t`` the target is ``v``: plain flow matching.

Times: ``t`` and ``r`` are drawn from a logit-normal (``sigmoid(P_mean + P_std z)``, the paper's
-0.4 and 1.0), ordered so ``r <= t``, and a fraction ``1 - ratio`` of the pairs get ``r = t``
(their Table 1a: 25% with ``r != t``). The loss is adaptively weighted (sec. 4.3): ``w ||d||^2``
with ``w = 1 / (||d||^2 + c)^p`` stopped (``p = 1``, ``c = 1e-3``); ``||d||^2`` is the mean over
dimensions here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

AverageVelocity = Callable[[Tensor, Tensor, Tensor], Tensor]  # u(z, r, t)


def two_times(path, t: Tensor, r: Tensor) -> Tensor:
    """The network's ``c_noise`` for the pair ``(r, t)``: ``(c_noise(t), c_noise(t) -
    c_noise(r))``, shape ``(N, 2)`` (the paper's ``(t, t - r)`` conditioning; ``r = t`` gives a
    zero second column)."""
    c_t, c_r = path.c_noise(t), path.c_noise(r)
    return torch.stack([c_t, c_t - c_r], 1)


def sample_r_t(
    n: int,
    generator: torch.Generator | None,
    device,
    ratio: float = 0.25,
    P_mean: float = -0.4,
    P_std: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """``(r, t)``: two logit-normal times ordered ``r <= t``; each pair keeps ``r != t`` with
    probability ``ratio``, else ``r = t``."""
    a = torch.sigmoid(P_mean + P_std * torch.randn(n, generator=generator, device=device))
    b = torch.sigmoid(P_mean + P_std * torch.randn(n, generator=generator, device=device))
    keep = torch.rand(n, generator=generator, device=device) < ratio
    t = torch.maximum(a, b)
    r = torch.where(keep, torch.minimum(a, b), t)
    return r, t


def meanflow_target(
    u_fn: AverageVelocity, z: Tensor, r: Tensor, t: Tensor, v: Tensor
) -> tuple[Tensor, Tensor]:
    """``(u, target)``: the network's average velocity at ``(z, r, t)`` (with its graph) and the
    MeanFlow identity's right side ``v - (t - r)(v d_z u + d_t u)``, detached. Attention runs on
    its math kernel inside the JVP (the fused CPU and flash kernels have no forward-mode
    derivative)."""
    with sdpa_kernel(SDPBackend.MATH):
        # torch types jvp's result as 2 or 3 values; without has_aux it is (output, jvp_out)
        u, dudt = cast(
            "tuple[Tensor, Tensor]",
            torch.func.jvp(u_fn, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t))),
        )
    gap = (t - r).reshape(-1, *[1] * (z.ndim - 1)).to(v)
    return u, (v - gap * dudt).detach()


def adaptive_loss(u: Tensor, target: Tensor, p: float = 1.0, c: float = 1e-3) -> Tensor:
    """Per example ``||d||^2 / sg(||d||^2 + c)^p`` with ``d = u - target`` (mean over
    dimensions): MeanFlow's adaptively weighted squared error (``p = 0``: the plain one)."""
    d2 = (u - target).flatten(1).pow(2).mean(1)
    return d2 / (d2.detach() + c) ** p
