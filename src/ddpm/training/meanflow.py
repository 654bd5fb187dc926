"""``model=meanflow``: MeanFlow (Geng et al. 2025, "Mean flows for one-step generative modeling")
trained from scratch on the flow path: the network ``u(z_t, r, t)`` regresses the MeanFlow
identity's target, computed with one Jacobian-vector product (:mod:`ddpm.fewstep.meanflow`).

The network takes its two times through the convention every network of ours follows: the
model asks for ``time_inputs=2`` (the wiring passes it to the network's constructor) and calls it
with ``c_noise`` of shape ``(N, 2)`` = ``(c_noise(t), c_noise(t) - c_noise(r))`` (the paper's
``(t, t - r)`` conditioning), each column embedded with its own sinusoidal features
(:func:`ddpm.nets.embeddings.time_columns`).
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from ddpm.checks import NON_NEGATIVE, ConfigError, PositiveFloat, Probability
from ddpm.fewstep.meanflow import adaptive_loss, meanflow_target, sample_r_t, two_times
from ddpm.models import MeanFlowModel
from ddpm.models.meanflow import InstantVelocity
from ddpm.paths import broadcast
from ddpm.random import step_generator
from ddpm.training.base import dropped_labels, with_labels
from ddpm.training.module import DiffusionModule


class MeanFlowModule(DiffusionModule):
    """A flow-path diffusion module whose network predicts the average velocity.

    * ``ratio`` (0.25): the share of pairs with ``r != t``; ``P_mean`` (-0.4), ``P_std`` (1.0):
      the logit-normal of both times;
    * ``adaptive_p`` (1.0), ``adaptive_c`` (1e-3): the adaptive loss weight ``1 / (||d||^2 +
      c)^p``.
    """

    model_family = MeanFlowModel
    time_inputs = 2  # the network is built with two time inputs (r and t)

    def __init__(
        self,
        *args,
        ratio: Probability = 0.25,
        P_mean: float = -0.4,
        P_std: PositiveFloat = 1.0,
        adaptive_p: Annotated[float, NON_NEGATIVE] = 1.0,
        adaptive_c: PositiveFloat = 1e-3,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.path.name != "flow" or self.prediction != "velocity":
            raise ConfigError(
                f"model=meanflow trains an average velocity on path=flow with "
                f"model.prediction=velocity; this run has path={self.path.name} "
                f"model.prediction={self.prediction}"
            )

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x0, y = batch[:2]
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        h, n = self.hparams, x0.shape[0]
        r, t = sample_r_t(n, g, self.device, h.ratio, h.P_mean, h.P_std)
        noise = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
        noise = self.path.couple(x0, noise, y if h.conditional else None)
        z = broadcast(1 - t, x0) * x0 + broadcast(t, x0) * noise
        v = noise - x0
        labels = dropped_labels(y, h.cond_drop_prob, g) if h.conditional else None

        net = with_labels(self.net, labels)
        u, target = meanflow_target(lambda z, r, t: net(z, two_times(self.path, t, r)), z, r, t, v)
        loss = adaptive_loss(u, target, h.adaptive_p, h.adaptive_c).mean()
        self.check_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log_step()
        if self.logs_this_step():
            self.log("train/mse", (u.detach() - target).pow(2).flatten(1).mean(1).mean())
        return loss

    def _losses(self, net, x0: Tensor, y: Tensor, generator):
        """Validation: the flow-matching loss of the instantaneous velocity ``u(z, t, t)``."""
        return super()._losses(InstantVelocity(net), x0, y, generator)
