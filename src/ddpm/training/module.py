"""The LightningModule: one network, its EMA copy, a schedule, a parameterization and a loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from ddpm.checks import NON_NEGATIVE, ConfigError, PositiveFloat, PositiveInt, Probability, Range
from ddpm.diffusion import TrainedVariance, q_sample
from ddpm.losses import LossType, training_losses
from ddpm.nets.vae import VAE
from ddpm.parameterization import Prediction
from ddpm.random import step_generator
from ddpm.samplers import SamplerSpec, builtin_sampler, draw_samples, network_denoiser
from ddpm.schedule import Schedule
from ddpm.training.base import AveragedModule, build_from_run_config
from ddpm.training.timestep_sampler import ImportanceSampler, TimestepSampling, UniformSampler

LRDecay = Literal["none", "cosine"]
EMADecay = Annotated[float, Range(0, 1, hi_open=True)]


class DiffusionModule(AveragedModule):
    """Trains ``net`` to denoise under ``schedule``.

    * ``prediction``: eps | x0 | v | mu (the seed's eq. 42); ``loss``: simple | vlb | hybrid |
      min_snr; ``variance``: fixed_small | fixed_large | learned_range (the network then outputs
      twice the channels).
    * ``conditional``: labels are passed to the network, ``net(x, k, y)``, and dropped with
      ``cond_drop_prob`` so the same network is also the unconditional model (classifier-free
      guidance); an unconditional network is called ``net(x, k)``.
    * ``timestep_sampling``: uniform, or importance (for the VLB loss).
    * ``optimizer``: a partial taking the parameters and ``lr``; ``warmup_steps`` of linear
      learning-rate warm-up; ``lr_decay``: none | cosine (to 0 at ``max_steps``).
    * ``ema_decay``/``ema_warmup``/``ema_every``: the EMA copy (``self.ema``), used for sampling.
    * ``run_config``: the run's whole resolved configuration as plain containers, saved in every
      checkpoint: ``DiffusionModule.load_from_checkpoint(path)`` rebuilds ``net`` and
      ``schedule`` from it, and sample.py/evaluate.py rebuild the model from the checkpoint alone.
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        schedule: Schedule | None = None,
        prediction: Prediction = "eps",
        loss: LossType = "simple",
        variance: TrainedVariance = "fixed_small",
        decoder: Literal["discretized", "gaussian"] = "discretized",
        optimizer: Callable | None = None,
        lr: PositiveFloat = 2e-4,
        warmup_steps: Annotated[int, Range(0)] = 0,
        lr_decay: LRDecay = "none",
        max_steps: int = -1,
        ema_decay: EMADecay = 0.9999,
        ema_warmup: bool = True,
        ema_every: PositiveInt = 1,
        conditional: bool = False,
        cond_drop_prob: Probability = 0.1,
        timestep_sampling: TimestepSampling = "uniform",
        vlb_weight: Annotated[float, NON_NEGATIVE] = 1e-3,
        min_snr_gamma: PositiveFloat = 5.0,
        seed: int = 0,
        compile: bool = False,
        channels_last: bool = False,
        run_config: dict | None = None,
    ) -> None:
        self.check_config({"loss": loss, "variance": variance})
        net = net if net is not None else build_from_run_config(run_config, "network")
        schedule = (
            schedule if schedule is not None else build_from_run_config(run_config, "schedule")
        )
        if optimizer is None and run_config and "optimizer" in run_config.get("model", {}):
            optimizer = build_from_run_config(run_config["model"], "optimizer")
        super().__init__(net, optimizer, compile, channels_last, ema_decay=ema_decay)
        self.save_hyperparameters(ignore=["net", "schedule", "optimizer"])
        self.schedule = schedule
        T = schedule.num_timesteps
        self.timestep_sampler = (
            ImportanceSampler(T) if timestep_sampling == "importance" else UniformSampler(T)
        )

    @classmethod
    def check_network(cls, network_cls) -> str | None:
        if isinstance(network_cls, type) and issubclass(network_cls, VAE):
            return (
                f"network={network_cls.__name__} is a VAE; train it with model=vae (or "
                f"experiment=digits_vae), or pick a denoiser: network=unet, simple_unet or mlp"
            )
        return None

    @classmethod
    def check_config(cls, options: dict[str, Any], network_cls=None) -> None:
        """The checks that span several options (each option alone is checked by its type)."""
        if network_cls is not None and (problem := cls.check_network(network_cls)):
            raise ConfigError(problem)
        if options.get("loss") == "hybrid" and options.get("variance") != "learned_range":
            raise ConfigError(
                "model.loss=hybrid trains the learned variance; set model.variance=learned_range"
            )
        if options.get("variance") == "learned_range" and options.get("loss") not in (
            "hybrid",
            "vlb",
        ):
            raise ConfigError(
                f"model.variance=learned_range is trained only by the VLB term; with "
                f"model.loss={options.get('loss')} it would stay untrained: use model.loss=hybrid"
            )

    # --- sampling -------------------------------------------------------------------------------
    def denoiser_factory(
        self, use_ema: bool = True, clip_x0: bool = True, variance=None, channels_last=False
    ):
        """``labels -> Denoiser`` over the EMA (or raw) network: what every sampler is given."""
        return network_denoiser(
            self.ema if use_ema else self.net,
            self.schedule,
            self.hparams.prediction,
            conditional=self.hparams.conditional,
            learned=self.hparams.variance == "learned_range",
            clip_x0=clip_x0,
            variance=variance,
            channels_last=channels_last,
        )

    @torch.no_grad()
    def generate(
        self,
        n: int,
        seed: int = 0,
        sampler: SamplerSpec | None = None,
        use_ema: bool = True,
        labels: Tensor | None = None,
        clip_x0: bool = True,
        variance=None,
        channels_last: bool = False,
    ) -> Tensor:
        """``n`` samples, sample ``i`` seeded by ``(seed, i)`` (the path sample.py uses too)."""
        sampler = sampler or builtin_sampler("ddim")
        was_training = self.net.training
        self.net.eval()
        try:
            x, _ = draw_samples(
                self.denoiser_factory(use_ema, clip_x0, variance, channels_last),
                sampler,
                self.hparams.run_config["data_shape"],
                range(n),
                seed,
                batch_size=n,
                labels=labels,
                device=self.device,
            )
            return x
        finally:
            self.net.train(was_training)

    # --- training -----------------------------------------------------------------------------------
    def _losses(
        self, net: nn.Module, x0: Tensor, y: Tensor, generator: torch.Generator | None
    ) -> tuple[dict, Tensor, Tensor]:
        n = x0.shape[0]
        k, weights = self.timestep_sampler.sample(n, self.device, generator)
        noise = torch.randn(x0.shape, generator=generator, device=self.device, dtype=x0.dtype)
        x_t = q_sample(self.schedule, x0, k, noise)
        if self.hparams.channels_last and x_t.ndim == 4:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        k_net = self.schedule.timestep_map.to(self.device)[k]
        if self.hparams.conditional:
            drop = (
                torch.rand(n, generator=generator, device=self.device) < self.hparams.cond_drop_prob
            )
            out = net(x_t, k_net, torch.where(drop, torch.full_like(y, -1), y))
        else:
            out = net(x_t, k_net)
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
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        terms, k, weights = self._losses(self.net, x0, y, g)
        loss = (terms["loss"] * weights).mean()
        self.check_finite(loss)
        if "vlb" in terms:
            self.timestep_sampler.update(k, terms["vlb"])
        self.log("train/loss", loss, prog_bar=True)  # every step: the progress line shows it
        self.log_step()  # every step: checkpoint names read it
        if self.logs_this_step():
            self.log_diagnostics(terms, k)
        return loss

    def log_diagnostics(self, terms: dict, k: Tensor) -> None:
        """The VLB, the MSE and the MSE per quarter of the timesteps."""
        if "vlb" in terms:
            self.log("train/vlb", terms["vlb"].mean())
        self.log("train/mse", terms["mse"].mean())
        quartile = (k * 4) // self.schedule.num_timesteps
        for q in range(4):
            mask = quartile == q
            if mask.any():
                self.log(f"train/mse_q{q}", terms["mse"][mask].mean())

    def eval_loss(self, net: nn.Module, batch, batch_idx: int) -> Tensor:
        """``L_simple`` of ``net`` with noise fixed by the batch index."""
        x0, y = batch
        g = torch.Generator(device=self.device).manual_seed(10_000 + batch_idx)
        return self._losses(net, x0, y, g)[0]["mse"].mean()

    # --- checkpoint extras -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if isinstance(self.timestep_sampler, ImportanceSampler):
            checkpoint["timestep_sampler"] = self.timestep_sampler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("timestep_sampler")
        if isinstance(self.timestep_sampler, ImportanceSampler) and state is not None:
            self.timestep_sampler.load_state_dict(state)
