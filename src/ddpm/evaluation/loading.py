"""A checkpoint turned back into a model: the network (EMA weights by default), its schedule, the
recipe it was trained with, and the denoiser samplers are given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ddpm.checkpoint import CheckpointError, checkpoint_config, load_checkpoint
from ddpm.checks import ConfigError
from ddpm.config import ModelRecipe
from ddpm.samplers import network_denoiser
from ddpm.schedule import Schedule


@dataclass
class LoadedModel:
    """A checkpoint turned back into objects."""

    net: nn.Module
    schedule: Schedule | None
    recipe: ModelRecipe
    path: Path
    analytic_gamma: Tensor | None = None

    @property
    def is_vae(self) -> bool:
        return self.recipe.is_vae

    @property
    def is_image(self) -> bool:
        return self.recipe.data.is_image

    @property
    def shape(self) -> list[int]:
        return list(self.recipe.data.shape)

    @property
    def num_classes(self) -> int | None:
        return self.recipe.num_classes

    def variance(self, requested: str | None) -> str:
        """The reverse variance to sample with: the model's own by default (``learned_range``
        for a learned-variance network, else ``fixed_small``), or the one asked for."""
        if requested is None:
            return "learned_range" if self.recipe.learned else "fixed_small"
        if requested == "learned_range" and not self.recipe.learned:
            raise ConfigError(
                f"denoiser.variance=learned_range needs a learned-variance checkpoint; {self.path} "
                f"was trained with model.variance={self.recipe.variance}"
            )
        if requested == "analytic" and self.analytic_gamma is None:
            raise ConfigError(
                f"denoiser.variance=analytic needs Gamma estimates in {self.path}: run "
                f"python -m ddpm.estimate_gamma {self.path}"
            )
        return requested

    def denoiser_factory(
        self,
        clip_x0: bool = True,
        variance: str | None = None,
        guidance_scale=1.0,
        channels_last: bool = False,
    ):
        """``labels -> Denoiser`` for the samplers (guided when ``guidance_scale != 1``; images in
        channels-last memory format with ``channels_last``)."""
        return network_denoiser(
            self.net,
            self.schedule,
            self.recipe.prediction,
            conditional=self.recipe.conditional,
            learned=self.recipe.learned,
            clip_x0=clip_x0,
            variance=self.variance(variance),
            guidance_scale=guidance_scale,
            analytic_gamma=self.analytic_gamma,
            channels_last=channels_last,
        )

    def model_fn(self, keep_variance: bool = False):
        """``(x, k) -> network output``, unconditional (the null label for a conditional net).
        A learned-variance network outputs ``[prediction, v]``: the variance half is kept only
        with ``keep_variance`` (for ``learned_range``), else the prediction alone is returned."""
        net, learned = self.net, self.recipe.learned

        def fn(x, k):
            out = (
                net(x, k, torch.full((len(x),), -1, device=x.device))
                if self.recipe.conditional
                else net(x, k)
            )
            return out.chunk(2, dim=1)[0] if learned and not keep_variance else out

        return fn

    def datamodule(self):
        """The data the model was trained on (its test split is the FID/bits-per-dim reference)."""
        dataset = self.recipe.dataset
        if dataset is None:
            raise CheckpointError(f"{self.path} does not say which data it was trained on")
        return dataset.build()


def load_network(ckpt: dict, recipe: ModelRecipe, use_ema: bool, path) -> nn.Module:
    """The checkpoint's network with its EMA (default) or raw weights, in eval mode."""
    net = recipe.build_network()
    prefix = "ema." if use_ema else "net."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    state = {k.replace("_orig_mod.", ""): v for k, v in state.items()}  # torch.compile wrappers
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"the weights in {path} do not match the network built from its config: "
            f"{str(e).splitlines()[0]}"
        ) from None
    return net.eval()


def load_model(path: str | Path, use_ema: bool = True, device="cpu") -> LoadedModel:
    """Checkpoint -> network (EMA weights by default) + schedule + recipe, safely loaded."""
    ckpt = load_checkpoint(path)
    recipe = ModelRecipe.from_run_config(checkpoint_config(ckpt, path), str(path))
    net = load_network(ckpt, recipe, use_ema, path).to(device)
    return LoadedModel(net, recipe.build_schedule(), recipe, Path(path), ckpt.get("analytic_gamma"))
