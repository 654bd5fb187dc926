"""The LightningModule: one network, its EMA copy, a schedule, a parameterization and a loss."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ddpm.diffusion import VARIANCES, q_sample
from ddpm.losses import check_loss_type, training_losses
from ddpm.parameterization import check_prediction
from ddpm.samplers.draw import SamplerSpec, draw_samples
from ddpm.schedule import Schedule
from ddpm.training.base import AveragedModule
from ddpm.training.timestep_sampler import ImportanceSampler, UniformSampler


class DiffusionModule(AveragedModule):
    """Trains ``net`` to denoise under ``schedule``.

    * ``prediction``: eps | x0 | v | mu (the seed's eq. 42); ``loss``: simple | vlb | hybrid |
      min_snr; ``variance``: fixed_small | fixed_large | learned_range (the network must then
      output twice the channels: ``network.learn_sigma=true``).
    * ``conditional``: labels are passed to the network and dropped with ``cond_drop_prob`` so the
      same network is also the unconditional model (classifier-free guidance).
    * ``timestep_sampling``: uniform, or importance (for the VLB loss).
    * ``optimizer``: a partial taking the parameters and ``lr`` (Hydra ``_partial_: true``); ``warmup_steps``
      of linear learning-rate warm-up; ``lr_decay``: none | cosine (to 0 at ``max_steps``).
    * ``ema_decay``/``ema_warmup``/``ema_every``: the EMA copy (``self.ema``), used for sampling.
    * ``run_config``: the run's whole resolved configuration as plain containers, saved in every
      checkpoint so ``sample.py``/``evaluate.py`` rebuild the model from the checkpoint alone.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: Schedule,
        prediction: str = "eps",
        loss: str = "simple",
        variance: str = "fixed_small",
        decoder: str = "discretized",
        optimizer: Callable | None = None,
        lr: float = 2e-4,
        warmup_steps: int = 0,
        lr_decay: str = "none",
        max_steps: int = -1,
        ema_decay: float = 0.9999,
        ema_warmup: bool = True,
        ema_every: int = 1,
        conditional: bool = False,
        cond_drop_prob: float = 0.1,
        timestep_sampling: str = "uniform",
        vlb_weight: float = 1e-3,
        min_snr_gamma: float = 5.0,
        seed: int = 0,
        compile: bool = False,
        channels_last: bool = False,
        run_config: dict | None = None,
    ) -> None:
        super().__init__(net, optimizer, compile, channels_last, ema_decay=ema_decay)
        check_prediction(prediction)
        check_loss_type(loss)
        if variance not in VARIANCES[:3]:
            raise ValueError(
                f"unknown model.variance {variance!r}; choose fixed_small, fixed_large or learned_range"
            )
        self.save_hyperparameters(ignore=["net", "schedule", "optimizer"])
        self.schedule = schedule
        T = schedule.num_timesteps
        self.timestep_sampler = (
            ImportanceSampler(T) if timestep_sampling == "importance" else UniformSampler(T)
        )

    # --- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        n: int,
        seed: int = 0,
        spec: SamplerSpec | None = None,
        use_ema: bool = True,
        labels: Tensor | None = None,
    ) -> Tensor:
        """``n`` samples, sample ``i`` seeded by ``(seed, i)`` (the path sample.py uses too)."""
        spec = spec or SamplerSpec()
        if self.hparams.variance == "learned_range":  # the network's own variance, always
            spec = dataclasses.replace(spec, variance="learned_range")
        was_training = self.net.training
        self.net.eval()
        try:
            x, _ = draw_samples(
                self.ema if use_ema else self.net,
                self.schedule,
                self.hparams.run_config["data_shape"],
                range(n),
                seed,
                spec,
                self.hparams.prediction,
                batch_size=n,
                labels=labels,
                device=self.device,
            )
            return x
        finally:
            self.net.train(was_training)

    # --- training -----------------------------------------------------------------------------------
    def _noise_generator(self) -> torch.Generator:
        """Training noise is a function of (seed, rank, step) only: ranks differ (PITFALLS.md), and a
        resumed run draws exactly what the uninterrupted run would have."""
        g = torch.Generator(device=self.device)
        g.manual_seed(hash((self.hparams.seed, self.global_rank, self.global_step)) % (2**63))
        return g

    def _losses(
        self, x0: Tensor, y: Tensor, generator: torch.Generator | None
    ) -> tuple[dict, Tensor, Tensor]:
        n = x0.shape[0]
        k, weights = self.timestep_sampler.sample(n, self.device, generator)
        noise = torch.randn(x0.shape, generator=generator, device=self.device, dtype=x0.dtype)
        x_t = q_sample(self.schedule, x0, k, noise)
        if self.hparams.channels_last and x_t.ndim == 4:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        labels = None
        if self.hparams.conditional:
            drop = (
                torch.rand(n, generator=generator, device=self.device) < self.hparams.cond_drop_prob
            )
            labels = torch.where(drop, torch.full_like(y, -1), y)
        out = self._forward_net(x_t, self.schedule.timestep_map.to(self.device)[k], labels)
        terms = training_losses(
            self.schedule,
            out,
            x0,
            k,
            noise,
            x_t,
            self.hparams.prediction,
            self.hparams.loss,
            self.hparams.variance,
            self.hparams.decoder,
            self.hparams.vlb_weight,
            self.hparams.min_snr_gamma,
        )
        return terms, k, weights

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x0, y = batch
        terms, k, weights = self._losses(x0, y, self._noise_generator())
        loss = (terms["loss"] * weights).mean()
        self.check_finite(loss)
        if "vlb" in terms:
            self.timestep_sampler.update(k, terms["vlb"])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/mse", terms["mse"].mean())
        if "vlb" in terms:
            self.log("train/vlb", terms["vlb"].mean())
        quartile = (k * 4) // self.schedule.num_timesteps
        for q in range(4):
            mask = quartile == q
            if mask.any():
                self.log(f"train/mse_q{q}", terms["mse"][mask].mean())
        return loss

    # --- validation / test: the EMA weights, fixed noise -------------------------------------------
    def eval_loss(self, batch, batch_idx: int) -> Tensor:
        """``L_simple`` of the EMA weights with noise fixed by the batch index."""
        x0, y = batch
        g = torch.Generator(device=self.device).manual_seed(10_000 + batch_idx)
        net, self._forward_net = self._forward_net, self.ema
        try:
            terms, _, _ = self._losses(x0, y, g)
        finally:
            self._forward_net = net
        return terms["mse"].mean()

    # --- checkpoint extras -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if isinstance(self.timestep_sampler, ImportanceSampler):
            checkpoint["timestep_sampler"] = self.timestep_sampler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if (
            isinstance(self.timestep_sampler, ImportanceSampler)
            and "timestep_sampler" in checkpoint
        ):
            self.timestep_sampler.load_state_dict(checkpoint["timestep_sampler"])
