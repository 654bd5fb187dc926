"""A checkpoint turned back into a model: its run config read once (:class:`ModelRecipe`), the
network with its EMA weights by default, and the model family's object that samples and scores
it (:mod:`ddpm.models`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ddpm.checkpoint import CheckpointError, checkpoint_config, load_checkpoint
from ddpm.config import ModelRecipe
from ddpm.models import GenerativeModel


@dataclass
class LoadedModel:
    """A checkpoint's model (``model``: generate, likelihood), its recipe and where it came from."""

    model: GenerativeModel
    recipe: ModelRecipe
    path: Path
    ema_sigma_rel: float | None = (
        None  # the width of post-hoc EMA weights (python -m ddpm.posthoc_ema)
    )

    @property
    def net(self) -> nn.Module:
        return self.model.net

    @property
    def is_image(self) -> bool:
        return self.recipe.data.is_image

    @property
    def shape(self) -> list[int]:
        return list(self.recipe.data.shape)

    @property
    def num_classes(self) -> int | None:
        return self.model.num_classes

    def datamodule(self):
        """The real data the model was trained on, or imitates when it was trained on samples
        (its test split is the FID/bits-per-dim reference)."""
        dataset = self.recipe.dataset
        if dataset is None:
            raise CheckpointError(f"{self.path} does not say which data it was trained on")
        return dataset.build().real_data


def load_model(path: str | Path, use_ema: bool = True, device="cpu") -> LoadedModel:
    """Checkpoint -> its model family's object (EMA weights by default) + recipe, safely loaded."""
    ckpt = load_checkpoint(path)
    recipe = ModelRecipe.from_run_config(checkpoint_config(ckpt, path), str(path))
    net = recipe.load_network(ckpt, use_ema, str(path)).to(device)
    model = recipe.build_model(net, str(path), ckpt.get("analytic_gamma"))
    sigma_rel = (ckpt.get("posthoc_ema") or {}).get("sigma_rel") if use_ema else None
    return LoadedModel(model, recipe, Path(path), sigma_rel)
