"""An adversarial term for few-step models: a discriminator ``D(x, y)`` learns to tell the data
from the model's one-step outputs ``f(x_t, t)``, and the model is pushed towards outputs ``D``
takes for data (Goodfellow et al. 2014; for consistency models Kim et al. 2024, "Consistency
trajectory models", CTM).

A consistency model learns its teacher's probability-flow map, so at one or two calls it is at
best that ODE's sample quality; a distribution-level term is what lets it go beyond it (CTM's
one-step CIFAR-10 FID of 1.98 is with it).

* the non-saturating logistic losses: ``softplus(-D(fake))`` for the model and
  ``softplus(-D(real)) + softplus(D(fake))`` for the discriminator (Goodfellow et al. sec. 3);
* the R1 penalty ``||grad_x D(x_real)||^2`` (Mescheder et al. 2018, eq. 9), weighted ``gamma /
  2``, which keeps the discriminator's gradients on the data bounded;
* the adaptive weight ``||grad L_main|| / ||grad L_adv||`` (Esser et al. 2021, VQGAN eq. 7, the
  weight CTM uses), taken here on the model's output rather than on its last layer's weights,
  so it needs no knowledge of the network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _per_example(values: Tensor) -> Tensor:
    """``values`` summed over all but the first dimension (logits of shape ``(N,)`` or more)."""
    return values.reshape(values.shape[0], -1).sum(1)


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Per example ``softplus(-D(fake))``: minus the log of ``D``'s probability that the model's
    output is data (the non-saturating loss)."""
    return _per_example(F.softplus(-fake_logits.float()))


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Per example ``softplus(-D(real)) + softplus(D(fake))``: the logistic loss of telling the
    data (label 1) from the model's outputs (label 0)."""
    real = _per_example(F.softplus(-real_logits.float()))
    return real + _per_example(F.softplus(fake_logits.float()))


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """Per example ``||grad_x D(x)||^2`` at the data (``real`` must require grad; the graph is
    kept, so the penalty trains ``D``)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return _per_example(grad.pow(2))


def adaptive_weight(main_grad: Tensor, adv_grad: Tensor, max_weight: float = 1e4) -> Tensor:
    """``||main_grad|| / ||adv_grad||`` (detached, at most ``max_weight``): the adversarial term's
    gradient scaled to the main loss's."""
    ratio = main_grad.norm() / adv_grad.norm().clamp_min(1e-12)
    return ratio.clamp(max=max_weight).detach()
