"""An adaptive Dormand-Prince 5(4) solver for batched ODEs (Dormand & Prince 1980; Hairer,
Norsett & Wanner, Solving ODEs I, sec. II.4-5). Used by the probability-flow sampler and the ODE
likelihood."""

from __future__ import annotations

import math

import torch
from torch import Tensor

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


class ODEError(ValueError):
    """The solver cannot go on at time ``t``: a non-finite derivative, or a step size below the
    resolution of ``t`` (the error control can never be met there)."""

    def __init__(self, message: str, t: float) -> None:
        super().__init__(message)
        self.t = t


def dopri5(f, y: Tensor, t0: float, t1: float, rtol: float, atol: float, h0: float | None = None):
    """Integrate ``dy/dt = f(t, y)`` from ``t0`` to ``t1`` with adaptive Dormand-Prince 5(4),
    one step size for the whole batch (error in the RMS norm of Hairer et al., II.4). Raises
    :class:`ODEError` on a non-finite derivative or a step-size underflow instead of looping."""
    t, h = t0, h0 or (t1 - t0) / 20
    direction = math.copysign(1.0, t1 - t0)
    k1 = f(t, y)
    while direction * (t1 - t) > 1e-12 * abs(t1 - t0):
        if abs(h) <= 1e-12 * max(abs(t), abs(t1 - t0)):
            raise ODEError(f"the step size underflowed (h={h:.2g})", t)
        h = direction * min(abs(h), abs(t1 - t))
        ks = [k1]
        for i in range(1, 7):
            yi = y + h * sum(a * kj for a, kj in zip(_A[i], ks) if a != 0.0)
            ks.append(f(t + _C[i] * h, yi))
        y5 = y + h * sum(b * kj for b, kj in zip(_B5, ks) if b != 0.0)
        err = h * sum((b5 - b4) * kj for b5, b4, kj in zip(_B5, _B4, ks))
        scale = atol + rtol * torch.maximum(y.abs(), y5.abs())
        e = (err / scale).pow(2).mean().sqrt().item()
        if not math.isfinite(e):  # a stage's derivative (or the state) is not finite
            raise ODEError("the derivative is not finite", t)
        if e <= 1.0:
            t, y, k1 = t + h, y5, ks[6]  # first-same-as-last
        h = h * min(5.0, max(0.2, 0.9 * (e if e > 0 else 1e-10) ** -0.2))
    return y
