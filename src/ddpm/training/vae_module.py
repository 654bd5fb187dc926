"""The LightningModule of the VAE baseline (the seed's Example 1): the same optimiser, EMA and
guards as :class:`ddpm.training.DiffusionModule`, trained by maximising Prop. 1's bound."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, cast

import torch
from torch import Tensor, nn

from ddpm.checks import ConfigError, PositiveFloat, PositiveInt, Range
from ddpm.config import ModelRecipe
from ddpm.config.ema import ema_sigma_rels
from ddpm.likelihood import nats_to_bits_per_dim
from ddpm.models import SamplingOptions, VAEModel
from ddpm.nets.vae import VAE
from ddpm.random import step_generator
from ddpm.training.base import AveragedModule
from ddpm.training.module import EMADecay, LRDecay
from ddpm.vae import elbo


class VAEModule(AveragedModule):
    """Trains a :class:`ddpm.nets.VAE` on ``-ELBO`` (eq. 7), reported in bits/dim.

    * ``decoder``: discretized (images, 256 levels, as DDPM's ``L_0``) | gaussian (points); set by
      train.py from the dataset.
    * ``decoder_noise``: samples are ``x ~ p(x|z)`` instead of the decoder mean ``mu(z)``.
    * optimiser, learning-rate schedule and EMA as in :class:`ddpm.training.base.AveragedModule`.
    * ``run_config``: the run's resolved configuration, saved in every checkpoint.
    """

    def __init__(
        self,
        net: VAE | None = None,
        decoder: Literal["discretized", "gaussian"] = "discretized",
        optimizer: Callable | None = None,
        lr: PositiveFloat = 1e-3,
        warmup_steps: Annotated[int, Range(0)] = 0,
        lr_decay: LRDecay = "none",
        max_steps: int = -1,
        ema_decay: EMADecay = 0.999,
        ema_warmup: bool = True,
        ema_every: PositiveInt = 1,
        decoder_noise: bool = False,
        seed: int = 0,
        run_config: dict | None = None,
    ) -> None:
        if net is None:  # load_from_checkpoint(path): rebuilt from the run config
            recipe = ModelRecipe.from_run_config(run_config or {}, "run_config")
            net = cast(VAE, recipe.build_network())  # checked just below
        if problem := self.check_network(type(net)):
            raise TypeError(problem)
        if optimizer is None:
            optimizer = self.stored_plugin(run_config, "optimizer")
        super().__init__(net, optimizer, ema_decay=ema_decay,
                         ema_sigma_rels=ema_sigma_rels(run_config))  # fmt: skip
        self.save_hyperparameters(ignore=["net", "optimizer"])

    @classmethod
    def check_network(cls, network_cls) -> str | None:
        if isinstance(network_cls, type) and issubclass(network_cls, VAE):
            return None
        name = getattr(network_cls, "__name__", str(network_cls))
        return (
            f"model=vae needs a VAE network, not {name}: choose network=conv_vae (images) or "
            f"network=mlp_vae (points)"
        )

    @classmethod
    def check_config(cls, options: dict, network_cls=None) -> None:
        if network_cls is not None and (problem := cls.check_network(network_cls)):
            raise ConfigError(problem)

    model_family = VAEModel

    def model(self, use_ema: bool = True) -> VAEModel:
        """The EMA (or raw) VAE as a model that samples and scores itself."""
        net = self.ema if use_ema else self.net
        return VAEModel(net, self.data, self.hparams.decoder_noise)

    @torch.no_grad()
    def generate(
        self, n: int, seed: int = 0, sampler=None, use_ema: bool = True, labels=None,
        options: SamplingOptions | None = None,
    ) -> Tensor:  # fmt: skip
        """``n`` samples from the prior, sample ``i`` seeded by ``(seed, i)``; a VAE has no
        sampler or labels."""
        model = self.model(use_ema)
        options = options or SamplingOptions()
        return model.generate(sampler, options, range(n), seed, n, None, self.device)[0]

    def _bits_per_dim(self, net: nn.Module, x: Tensor, generator) -> dict[str, Tensor]:
        terms = elbo(net, x, self.hparams.decoder, generator)
        return {k: nats_to_bits_per_dim(v.mean(), x[0].numel()) for k, v in terms.items()}

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, _ = batch
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        bits = self._bits_per_dim(self.net, x, g)
        loss = -bits["elbo"]
        self.check_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log_step()  # every step: checkpoint names read it
        if self.logs_this_step():
            self.log("train/kl_bpd", bits["kl"])
            self.log("train/reconstruction_bpd", -bits["reconstruction"])
        return loss

    def eval_loss(self, net: nn.Module, batch, batch_idx: int) -> Tensor:
        """``-ELBO`` in bits/dim of ``net``, noise fixed by the batch index."""
        g = torch.Generator(device=self.device).manual_seed(10_000 + batch_idx)
        return -self._bits_per_dim(net, batch[0], g)["elbo"]
