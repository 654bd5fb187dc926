"""The VAE baseline (the seed's Example 1) as a model family: sampled from its prior in one
decoder call, scored by its ELBO and importance-weighted bound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from ddpm.checks import ConfigError
from ddpm.data.info import DataInfo
from ddpm.likelihood import nats_to_bits_per_dim
from ddpm.models.base import GenerativeModel, Likelihood, SamplingOptions
from ddpm.models.stats import standard_error
from ddpm.random import sample_generators
from ddpm.vae import bound_from_log_weights, draw_vae_samples, kl_to_prior, log_importance_weights

if TYPE_CHECKING:
    from ddpm.nets.vae import VAE


@dataclass
class VAEModel(GenerativeModel):
    """A trained :class:`ddpm.nets.VAE` and the data it models."""

    family = "VAE (model=vae)"
    net: nn.Module
    data: DataInfo
    decoder_noise: bool = False
    where: str = "the checkpoint"

    @classmethod
    def from_recipe(cls, recipe, net: nn.Module, where: str, analytic_gamma=None):
        """From a checkpoint's :class:`ddpm.config.ModelRecipe` and its network."""
        model = (recipe.config or {}).get("model", {})
        return cls(net, recipe.data, bool(model.get("decoder_noise", False)), where)

    def check_sampling(self, sampler, options: SamplingOptions, trajectory: bool = False) -> None:
        what = [
            name
            for name, on in (
                ("trajectory=true", trajectory),
                (f"guidance_scale={options.guidance_scale}", options.guidance_scale != 1.0),
                (f"denoiser.variance={options.variance}", options.variance is not None),
                ("guidance.model", options.guidance_model is not None),
                ("guidance.interval", options.guidance_interval is not None),
            )
            if on
        ]
        if what:
            raise ConfigError(
                f"{', '.join(what)}: {self.where} is a VAE (model=vae), sampled from its prior in "
                f"one decoder call; it has no reverse chain, guidance or reverse variance"
            )

    def generate(
        self, sampler, options, indices, seed, batch_size, labels=None, device="cpu",
        trajectory_frames: int = 0, progress: Callable | None = None,
    ) -> tuple[Tensor, dict]:  # fmt: skip
        x = draw_vae_samples(
            self.net, self.data.shape, indices, seed, batch_size, device, self.decoder_noise,
            self.data.is_image, progress,
        )  # fmt: skip
        return x, {"nfe": 1, "method": "vae_prior"}

    def likelihood(self, method: str | bool, seed: int, iw_samples: int = 256, **_) -> Likelihood:
        """``bpd`` from the ELBO (Prop. 1, eq. 7, the counterpart of the diffusion VLB; the mean
        of the log-weights) and ``bpd_iw`` from the importance-weighted bound (their
        log-mean-exp, Burda et al. 2016, never looser), both from the same ``iw_samples`` draws of
        ``z ~ q(z|x)`` per example; ``bpd_kl`` is the ELBO's KL term in closed form."""
        if method not in (True, "vlb", "elbo"):
            raise ConfigError(
                f"bpd={method} needs a diffusion checkpoint; a VAE is scored by bpd=true"
            )
        decoder = "discretized" if self.data.is_image else "gaussian"

        @torch.no_grad()
        def batch(xb: Tensor, start: int) -> Tensor:
            g = sample_generators(seed, range(start, start + len(xb)))  # any world size
            w = log_importance_weights(self.net, xb, iw_samples, decoder, g)
            iw = bound_from_log_weights(w)
            nats = torch.stack([-w.mean(0), -iw, kl_to_prior(*cast("VAE", self.net).encode(xb))], 1)
            return nats_to_bits_per_dim(nats, xb[0].numel())

        def summary(v: Tensor) -> dict:
            return {
                "bpd_method": "elbo",
                "bpd": float(v[:, 0].mean()),
                "bpd_stderr": standard_error(v[:, 0]),
                "bpd_iw": float(v[:, 1].mean()),
                "bpd_iw_stderr": standard_error(v[:, 1]),
                "bpd_iw_samples": iw_samples,
                "bpd_kl": float(v[:, 2].mean()),
                "bpd_num_examples": len(v),
            }

        return Likelihood(("elbo", "iw", "kl"), batch, summary)
