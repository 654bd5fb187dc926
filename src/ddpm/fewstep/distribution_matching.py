"""Distribution matching distillation (Yin et al. 2024, "One-step diffusion with distribution
matching distillation", DMD): a generator's outputs ``x`` are moved by the gradient of the KL
divergence from its output distribution to the data's, taken at noised outputs ``x_sigma = x +
sigma eps``, where both distributions have a score (eq. 7):

    grad_x KL ~ s_fake(x_sigma) - s_real(x_sigma) = (D_fake(x_sigma) - D_real(x_sigma)) / sigma^2

with ``D_real`` a denoiser trained on the data (the teacher) and ``D_fake`` one trained on the
generator's own outputs. The ``sigma^2`` cancels in the paper's weighting (eq. 8), which divides
by the mean absolute distance ``|x - D_real(x_sigma)|`` over each example's dimensions, so the
step is of the same size at every level:

    g = (D_fake(x_sigma) - D_real(x_sigma)) / mean |x - D_real(x_sigma)|

The loss ``0.5 ||x - stopgrad(x - g)||^2`` has gradient ``g`` on ``x`` (the paper's way of
handing a gradient to autograd). Where the generator's distribution is the data's,
``D_fake = D_real`` and ``g = 0``.
"""

from __future__ import annotations

from torch import Tensor

from ddpm.paths import broadcast


def dmd_gradient(x: Tensor, d_fake: Tensor, d_real: Tensor) -> Tensor:
    """``(d_fake - d_real) / mean |x - d_real|`` per example (eq. 7 with eq. 8's weighting):
    the direction that raises the KL divergence, so descending it moves ``x`` towards the data's
    distribution. ``d_fake``, ``d_real``: the two denoisers at ``x + sigma eps``."""
    norm = (x - d_real).abs().flatten(1).mean(1).clamp_min(1e-6)
    return (d_fake - d_real) / broadcast(norm, x)


def dmd_loss(x: Tensor, gradient: Tensor) -> Tensor:
    """Per example ``0.5 ||x - stopgrad(x - gradient)||^2``, whose gradient on ``x`` is
    ``gradient``."""
    return 0.5 * (x - (x - gradient).detach()).pow(2).flatten(1).sum(1)
