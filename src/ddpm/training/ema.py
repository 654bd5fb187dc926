"""Exponential moving average of the network weights (Polyak averaging), kept inside the module.

We keep the EMA network as a frozen copy on the LightningModule rather than using Lightning's
``EMAWeightAveraging``: that callback keeps the average beside the module during training
(swapped in for validation, copied into the module when training ends), copies the whole module
and has no warm-up. A frozen copy is
saved and restored with the module's ``state_dict`` (``ema.*`` keys), needs no gradients under
DDP, and is what sampling and evaluation use by default.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """The decay used at update number ``step``: ``min(decay, (1 + n) / (10 + n))`` with warm-up
    (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``, used by Ho et al.), so early
    averages are not dominated by the random initialisation."""
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers (BatchNorm statistics)
    are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for buf, b in zip(ema.buffers(), model.buffers()):
        buf.copy_(b)
