"""The LightningModule of the VAE baseline (the seed's Example 1): the same optimiser, EMA and
guards as :class:`ddpm.training.DiffusionModule`, trained by maximising Prop. 1's bound."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ddpm.likelihood import nats_to_bits_per_dim
from ddpm.nets.vae import VAE
from ddpm.training.base import AveragedModule
from ddpm.vae import DECODERS, draw_vae_samples, elbo


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
        net: VAE,
        decoder: str = "discretized",
        optimizer: Callable | None = None,
        lr: float = 1e-3,
        warmup_steps: int = 0,
        lr_decay: str = "none",
        max_steps: int = -1,
        ema_decay: float = 0.999,
        ema_warmup: bool = True,
        ema_every: int = 1,
        decoder_noise: bool = False,
        seed: int = 0,
        run_config: dict | None = None,
    ) -> None:
        if not isinstance(net, VAE):
            raise TypeError(
                f"model=vae needs a VAE network (network=conv_vae or mlp_vae), got {type(net).__name__}"
            )
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        super().__init__(net, optimizer, ema_decay=ema_decay)
        self.save_hyperparameters(ignore=["net", "optimizer"])

    @torch.no_grad()
    def generate(
        self, n: int, seed: int = 0, spec=None, use_ema: bool = True, labels=None
    ) -> Tensor:
        """``n`` samples from the prior, sample ``i`` seeded by ``(seed, i)``; ``spec`` and
        ``labels`` are accepted for the sample-grid callback and ignored."""
        net = self.ema if use_ema else self.net
        shape = self.hparams.run_config["data_shape"]
        return draw_vae_samples(
            net, shape, range(n), seed, n, self.device, self.hparams.decoder_noise,
            clip=self.hparams.decoder == "discretized",
        )  # fmt: skip

    def _bits_per_dim(self, net, x: Tensor, generator) -> dict[str, Tensor]:
        terms = elbo(net, x, self.hparams.decoder, generator)
        return {k: nats_to_bits_per_dim(v.mean(), x[0].numel()) for k, v in terms.items()}

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, _ = batch
        g = torch.Generator(device=self.device)
        g.manual_seed(hash((self.hparams.seed, self.global_rank, self.global_step)) % (2**63))
        bits = self._bits_per_dim(self.net, x, g)
        loss = -bits["elbo"]
        self.check_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/kl_bpd", bits["kl"])
        self.log("train/reconstruction_bpd", -bits["reconstruction"])
        return loss

    def eval_loss(self, batch, batch_idx: int) -> Tensor:
        """``-ELBO`` in bits/dim of the EMA weights, noise fixed by the batch index."""
        g = torch.Generator(device=self.device).manual_seed(10_000 + batch_idx)
        return -self._bits_per_dim(self.ema, batch[0], g)["elbo"]
