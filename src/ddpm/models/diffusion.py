"""A diffusion model of any path as a model family: a network, its path and prediction type,
sampled through the sampler seam and scored by the discrete chain's VLB or, on every path, the
probability-flow ODE likelihood."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from ddpm.analytic_variance import analytic_log_variance
from ddpm.checks import ConfigError
from ddpm.data.info import DataInfo
from ddpm.losses import Decoder, full_vlb
from ddpm.models.base import GenerativeModel, Likelihood, SamplingOptions
from ddpm.models.stats import standard_error
from ddpm.ode_likelihood import ode_bits_per_dim
from ddpm.paths import DDPMPath, Path
from ddpm.random import sample_generators
from ddpm.samplers import Denoiser, SamplerSpec, draw_samples, network_denoiser
from ddpm.samplers.denoiser import ReverseVariance
from ddpm.samplers.draw import unconditional


@dataclass
class DiffusionModel(GenerativeModel):
    """``net`` trained on ``path`` to output ``prediction``; ``learned``: it also outputs a
    variance (``model.variance=learned_range``); ``conditional``: ``net(x, c_noise, y)`` with
    ``y = -1`` the null label (classifier-free guidance); ``latent``: the autoencoder
    (:class:`ddpm.latents.Autoencoder`) of a latent model, whose samples of ``latent_shape`` are
    decoded to the images ``data`` describes."""

    family = "diffusion model"
    kind: ClassVar[str] = "diffusion"  # which samplers serve it (SamplerSpec.check_serves)
    denoiser_cls: ClassVar[type[Denoiser]] = Denoiser
    net: nn.Module
    path: Path
    data: DataInfo
    prediction: str = "auto"
    learned: bool = False
    conditional: bool = False
    analytic_gamma: Tensor | None = None
    where: str = "the checkpoint"
    latent: Any = None
    latent_shape: tuple[int, ...] | None = None

    @classmethod
    def from_recipe(cls, recipe, net: nn.Module, where: str, analytic_gamma=None):
        """From a checkpoint's :class:`ddpm.config.ModelRecipe` and its network."""
        path = recipe.build_path()
        prediction = path.resolve_prediction(recipe.prediction)
        return cls(net, path, recipe.data, prediction, recipe.learned, recipe.conditional,
                   analytic_gamma, where, recipe.build_latent(where), recipe.latent_shape)  # fmt: skip

    @property
    def latent_space(self) -> tuple | None:
        """The autoencoder's weights and factors (``None`` for a model of the data)."""
        if self.latent is None:
            return None
        return (self.latent.fingerprint(), *self.latent.factors())

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape the network samples: the latent's for a latent model, else the data's."""
        return tuple(self.latent_shape or self.data.shape)

    @property
    def num_classes(self) -> int | None:
        return self.data.num_classes if self.conditional else None

    def diffusion(self, what: str) -> DiffusionModel:
        return self

    def sampling_net(self) -> nn.Module:
        """The network as the denoiser calls it, ``net(x, c_noise[, y])``."""
        return self.net

    def variance(self, requested: str | None) -> str:
        """The reverse variance to sample with: the model's own by default (``learned_range``
        for a learned-variance network, else ``fixed_small``), or the one asked for."""
        if requested is None:
            return "learned_range" if self.learned else "fixed_small"
        self.path.check_variance(requested)
        if requested == "learned_range" and not self.learned:
            raise ConfigError(
                f"denoiser.variance=learned_range needs a learned-variance checkpoint; "
                f"{self.where} was trained with model.variance=fixed_small"
            )
        if requested == "analytic" and self.analytic_gamma is None:
            raise ConfigError(
                f"denoiser.variance=analytic needs Gamma estimates in {self.where}: run "
                f"python -m ddpm.estimate_gamma {self.where}"
            )
        return requested

    def denoiser_factory(self, options: SamplingOptions | None = None):
        """``labels -> Denoiser`` for the samplers (guided when ``guidance_scale != 1``)."""
        options = options or SamplingOptions()
        guide = options.guidance_model
        return network_denoiser(
            self.sampling_net(),
            self.path,
            self.prediction,
            conditional=self.conditional,
            learned=self.learned,
            clip_x0=options.clip_x0 and self.latent is None,  # latents have no fixed range
            variance=cast(ReverseVariance, self.variance(options.variance)),  # Denoiser checks it
            guidance_scale=options.guidance_scale,
            analytic_gamma=self.analytic_gamma,
            channels_last=options.channels_last,
            quantize=options.quantize,
            guide_net=None if guide is None else guide.sampling_net(),
            guide_conditional=guide is not None and guide.conditional,
            guidance_interval=options.guidance_interval,
            denoiser_cls=self.denoiser_cls,
        )

    def check_sampling(self, sampler, options: SamplingOptions, trajectory: bool = False) -> None:
        sampler.check_serves(self.kind, self.where)
        sampler.check_steps(self.path, options.quantize)
        self.variance(options.variance)
        guide = options.guidance_model
        if guide is not None:
            self.check_guide(guide)
        elif options.guidance_scale != 1.0 and self.num_classes is None:
            raise ConfigError(
                f"guidance_scale={options.guidance_scale} needs class labels to guide towards; "
                f"{self.where} is unconditional (or guide away from a weaker checkpoint: "
                f"guidance.model=CKPT)"
            )

    def check_guide(self, guide) -> None:
        """Autoguidance mixes the two networks' outputs: the weaker model must share the path,
        the prediction, the data shape and the output layout (a learned variance or not)."""
        mine = (self.path, self.prediction, self.shape, self.learned, self.latent_space)
        if getattr(guide, "family", None) != self.family:
            raise ConfigError(
                f"guidance.model={guide.where} is a {guide.family}; autoguidance needs a "
                f"diffusion checkpoint of the same path as {self.where}"
            )
        if guide.conditional and guide.num_classes != self.num_classes:
            raise ConfigError(
                f"guidance.model={guide.where} is conditional on {guide.num_classes} classes and "
                f"{self.where} samples {self.num_classes or 'no'} labels; autoguidance gives the "
                f"weaker model the same labels"
            )
        theirs = (guide.path, guide.prediction, guide.shape, guide.learned, guide.latent_space)
        a: object
        b: object
        for what, a, b in zip(
            ("path", "prediction", "data shape", "variance output", "latent space"), mine, theirs
        ):
            if a != b:
                if what == "path":
                    pa, pb = cast(Path, a), cast(Path, b)
                    a, b = (p.name if pa.name != pb.name else vars(p) for p in (pa, pb))
                raise ConfigError(
                    f"guidance.model={guide.where} differs from {self.where} in its {what} "
                    f"({b} vs {a}); autoguidance needs a checkpoint of the same path, prediction "
                    f"and data (an earlier snapshot, a smaller network)"
                )

    def generate(
        self,
        sampler: SamplerSpec,
        options: SamplingOptions,
        indices,
        seed: int,
        batch_size: int,
        labels: Tensor | None = None,
        device="cpu",
        trajectory_frames: int = 0,
        progress: Callable | None = None,
    ) -> tuple[Tensor, dict]:
        x, info = draw_samples(
            self.denoiser_factory(options), sampler, self.shape, indices, seed, batch_size,
            labels, device, trajectory_frames, progress,
        )  # fmt: skip
        info["method"] = sampler.name
        if self.latent is not None:
            info["latents"] = x
            x = self.latent.decode(x.to(device)).cpu()
            if info.get("trajectory"):
                info["trajectory"] = [
                    self.latent.decode(f.to(device)).cpu() for f in info["trajectory"]
                ]
        return x, info

    def steps(self, sampler: SamplerSpec) -> int | None:
        return None if sampler.adaptive else sampler.steps or self.path.max_steps

    def net_fn(self, keep_variance: bool = False):
        """``(x_in, c_noise) -> network output``, unconditional (the null label for a conditional
        net). A learned-variance network outputs ``[prediction, v]``: the variance half is kept
        only with ``keep_variance``."""
        net_fn, learned = unconditional(self.net, self.conditional), self.learned

        def fn(x, c):
            out = net_fn(x, c)
            return out.chunk(2, dim=1)[0] if learned and not keep_variance else out

        return fn

    def likelihood(
        self,
        method: str | bool,
        seed: int,
        variance: str | None = None,
        timesteps_per_call: int = 10,
        **_,
    ) -> Likelihood:
        """``vlb`` (``True``): the full VLB of Prop. 2 in bits/dim (Ho et al. Table 2 protocol),
        with the model's reverse variance or ``variance``, on the discrete chain; ``ode``: the
        exact likelihood of the probability-flow ODE, on every path (Hutchinson trace, dequantized
        images; :mod:`ddpm.ode_likelihood`)."""
        method = "vlb" if method is True else method
        if self.latent is not None:
            raise ConfigError(
                f"bpd={method}: {self.where} models latents, and a likelihood of latents is not "
                f"one of the images (the decoder has no density here); score it with FID"
            )
        if method == "vlb":
            return self._vlb(seed, self.variance(variance), timesteps_per_call)
        if method != "ode":
            raise ConfigError(
                f"bpd={method} is not a likelihood of a diffusion model; use vlb or ode"
            )
        denoiser = network_denoiser(self.sampling_net(), self.path, self.prediction, conditional=self.conditional,
                                    learned=self.learned, clip_x0=False)(None)  # fmt: skip

        def batch(xb: Tensor, start: int) -> Tensor:
            g = torch.Generator().manual_seed(seed * 7919 + start)
            return ode_bits_per_dim(denoiser, xb, self.data.is_image, g)[:, None]

        def summary(v: Tensor) -> dict:
            return {
                "bpd_method": "ode",
                "bpd": float(v[:, 0].mean()),
                "bpd_stderr": standard_error(v[:, 0]),
                "bpd_num_examples": len(v),
            }

        return Likelihood(("ode",), batch, summary)

    def _vlb(self, seed: int, variance: str, timesteps_per_call: int) -> Likelihood:
        if not self.path.discrete:
            raise ConfigError(
                f"bpd=true is the discrete chain's VLB (Prop. 2); {self.where} is on "
                f"path={self.path.name}: use bpd=ode, the probability-flow likelihood"
            )
        schedule = cast(DDPMPath, self.path).schedule  # the only discrete path
        table = None
        if variance == "analytic":
            assert self.analytic_gamma is not None  # self.variance refuses analytic without it
            table = analytic_log_variance(schedule, self.analytic_gamma)
        net = self.net_fn(keep_variance=variance == "learned_range")
        decoder: Decoder = "discretized" if self.data.is_image else "gaussian"

        def batch(xb: Tensor, start: int) -> Tensor:
            g = sample_generators(seed, range(start, start + len(xb)))  # any world size
            res = full_vlb(
                schedule, net, xb, self.prediction, variance, decoder, table,
                timesteps_per_call=timesteps_per_call, generator=g,
            )  # fmt: skip
            return torch.stack([res["total"], res["prior"], res["decoder"]], 1)

        def summary(v: Tensor) -> dict:
            return {
                "bpd_method": "vlb",
                "bpd": float(v[:, 0].mean()),
                "bpd_stderr": standard_error(v[:, 0]),
                "bpd_num_examples": len(v),
                "bpd_variance": variance,
                "bpd_prior": float(v[:, 1].mean()),
                "bpd_decoder": float(v[:, 2].mean()),
            }

        return Likelihood(("total", "prior", "decoder"), batch, summary)
