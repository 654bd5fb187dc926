"""``model=consistency``: Easy Consistency Tuning (Geng et al. 2025, "Consistency models made
easy", ECT) of a trained EDM model (``model.init=CKPT``), or consistency training from scratch
(``model.init=null``), on the EDM path with the consistency parametrisation
(:mod:`ddpm.fewstep.consistency`).

Of ECT's and sCM's (Lu & Song 2025) choices this takes ECT's: discrete pairs ``(t, r)`` on the same
noise draw with a ``t - r`` that shrinks stage by stage, because it tunes an EDM checkpoint of ours
as it is (sCM needs the TrigFlow parametrisation and its network changes) and needs no
Jacobian-vector product through the network (a third of the cost per step on a CPU).
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from ddpm.checks import NON_NEGATIVE, ConfigError, PositiveFloat, PositiveInt, Range
from ddpm.fewstep.consistency import ConsistencyPath, ect_loss, ect_r, ect_stage
from ddpm.models import ConsistencyModel
from ddpm.paths import broadcast
from ddpm.random import step_generator
from ddpm.training.base import dropped_labels, with_labels
from ddpm.training.module import DiffusionModule


class ConsistencyModule(DiffusionModule):
    """A diffusion module whose network is a consistency function ``f(x, sigma)``.

    * ``init``: an EDM checkpoint of ours (same network, data and ``sigma_data``) whose EMA
      weights start the tuning; ``null`` trains from scratch.
    * ``stages`` (8), ``q`` (2), ``k`` (8), ``b`` (1): ECT's schedule of ``r`` (the run's
      ``max_steps`` split into ``stages``; :func:`~ddpm.fewstep.consistency.ect_r`); the levels
      ``t`` are the path's log-normal (ECT's ``P_mean = -1.1``, ``P_std = 2``: set them as
      ``path.P_mean`` and ``path.P_std``, as the presets do).
    * ``huber_c`` (0): the pseudo-Huber constant of the metric.
    """

    model_family = ConsistencyModel
    start_key = "init"

    def __init__(
        self,
        *args,
        init: str | None = None,
        stages: PositiveInt = 8,
        q: Annotated[float, Range(1, lo_open=True)] = 2.0,
        k: Annotated[float, NON_NEGATIVE] = 8.0,
        b: PositiveFloat = 1.0,
        huber_c: Annotated[float, NON_NEGATIVE] = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.path = ConsistencyPath.of(self.path)

    @classmethod
    def check_config(cls, options: dict, network_cls=None) -> None:
        super().check_config(options, network_cls)
        if options.get("prediction", "auto") not in ("auto", "F"):
            raise ConfigError(
                f"model.prediction={options['prediction']}: a consistency model outputs EDM's F "
                f"(model.prediction=auto)"
            )

    @property
    def stage(self) -> int:
        return ect_stage(self.global_step, self.hparams.max_steps, self.hparams.stages)

    def consistency_fn(self, net, x: Tensor, sigma: Tensor, labels: Tensor | None) -> Tensor:
        """``f(x, sigma)`` of ``net`` (labels ``-1``: the null class)."""
        x_in, c_noise = self.path.network_input(x, sigma)
        out = with_labels(net, labels)(x_in, c_noise)
        return self.path.x0(out, x, sigma, self.prediction)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x0, y = batch[:2]
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        n, path, h = x0.shape[0], self.path, self.hparams
        t = path.sample_times(n, g, self.device).clamp(2 * path.t_min, path.t_max)
        r = ect_r(t, self.stage, path.t_min, h.q, h.k, h.b)
        noise = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
        labels = dropped_labels(y, h.cond_drop_prob, g) if h.conditional else None
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # both passes draw the same dropout masks
            f_t = self.consistency_fn(self.net, x0 + broadcast(t, x0) * noise, t, labels)
        with torch.no_grad():
            f_r = self.consistency_fn(self.net, x0 + broadcast(r, x0) * noise, r, labels)
        per_example = ect_loss(f_t, f_r, t, r, h.huber_c)
        loss = per_example.mean()
        self.check_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log_step()
        if self.logs_this_step():
            self.log("train/stage", float(self.stage))
            self.log("train/mse", (f_t.detach() - f_r).pow(2).flatten(1).mean(1).mean())
            self.log("train/t_minus_r", (t - r).mean())
        return loss
