"""Progressive distillation (Salimans & Ho 2022, "Progressive distillation for fast sampling of
diffusion models", Algorithm 2), in noise levels on the ``x / alpha`` scale.

A student of ``N`` DDIM steps learns to do in one step what its teacher does in two: from level
``s`` the teacher takes DDIM steps to ``s'`` and ``s''`` (the next student level), and the target
is the ``x_0`` estimate that makes the student's single DDIM step land on the teacher's
``x_{s''}``. DDIM on this scale is ``x_{s'} = x0 + (s' / s)(x_s - x0)`` (Euler in the level), so

    x0_target = (x_{s''} - (s'' / s) x_s) / (1 - s'' / s),

which is the paper's ``x~ = (z'' - (sigma''/sigma) z) / (alpha'' - (sigma''/sigma) alpha)`` in
these coordinates (and ``x_{s''}`` itself when ``s'' = 0``). The loss is the squared error on
``x_0`` with the truncated SNR weighting ``max(SNR, 1)``, ``SNR = 1 / level^2`` (their sec. 4).
Each round halves the steps and the student becomes the next teacher.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ddpm.paths.base import Path, broadcast
from ddpm.paths.spacing import spaced_levels

Denoise = Callable[[Tensor, Tensor], Tensor]  # x0 estimate of (x on the x/alpha scale, levels)


def student_levels(path: Path, steps: int) -> Tensor:
    """The ``steps + 1`` descending levels a student of ``steps`` DDIM steps visits: the
    fractions ``i / steps`` of the path's time range (``trailing`` spacing), then 0, so the
    levels of ``steps`` are every other level of ``2 * steps`` (``sampler=ddim
    sampler.spacing=trailing sampler.steps=N`` samples it)."""
    return torch.cat([spaced_levels(path, steps, "trailing"), torch.zeros(1, dtype=torch.float64)])


def ddim_step(x: Tensor, x0: Tensor, s: Tensor, s_next: Tensor) -> Tensor:
    """Deterministic DDIM from level ``s`` to ``s_next`` (per row) on the ``x / alpha`` scale."""
    return x0 + broadcast(s_next / s, x) * (x - x0)


def two_step_target(teacher: Denoise, x: Tensor, s: Tensor, mid: Tensor, s_next: Tensor) -> Tensor:
    """The ``x_0`` target of a student step from ``s`` to ``s_next``: the teacher's two DDIM steps
    through ``mid``, solved for the single step's ``x_0``."""
    x_mid = ddim_step(x, teacher(x, s), s, mid)
    x_next = ddim_step(x_mid, teacher(x_mid, mid), mid, s_next)
    ratio = broadcast(s_next / s, x)
    return (x_next - ratio * x) / (1 - ratio)


def truncated_snr_weight(level: Tensor) -> Tensor:
    """``max(SNR, 1)`` with ``SNR = alpha^2 / sigma^2 = 1 / level^2`` (Salimans & Ho sec. 4)."""
    return (1.0 / level.double() ** 2).clamp(min=1.0)
