"""A MeanFlow model (``model=meanflow``) as a model family: a flow-path network of two times
``u(z, r, t)``, sampled by ``sampler=meanflow`` in one or a few average-velocity steps, or by any
ODE/SDE sampler through its instantaneous velocity ``u(z, t, t)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ddpm.models.diffusion import DiffusionModel
from ddpm.samplers.meanflow import MeanFlowDenoiser


class InstantVelocity(nn.Module):
    """A two-time network called with one time: ``c_noise`` of shape ``(N,)`` becomes ``(c, 0)``,
    ``r = t`` (the instantaneous velocity); ``(N, 2)`` passes through."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, c_noise: Tensor, *labels) -> Tensor:
        if c_noise.ndim == 1:
            c_noise = torch.stack([c_noise, torch.zeros_like(c_noise)], 1)
        return self.net(x, c_noise, *labels)


@dataclass
class MeanFlowModel(DiffusionModel):
    """A flow model whose network also takes the step's start ``r`` (``c_noise`` ``(N, 2)``:
    ``(c(t), c(t) - c(r))``)."""

    family = "MeanFlow model"
    kind: ClassVar[str] = "meanflow"
    denoiser_cls: ClassVar[type] = MeanFlowDenoiser

    def sampling_net(self) -> nn.Module:
        return InstantVelocity(self.net)
