"""REPA's frozen target encoders: ``encoder(x) -> (N, C, h, w)`` patch features of images in
[-1, 1]. ``digits``: our digit classifier's last convolutional map (trained once on the training
split with its own seed, cached; it runs on a CPU, so the mechanism is tested end to end), and
any timm model (DINOv2 as in the paper: ``vit_base_patch14_dinov2.lvd142m``) from a weights file
the user provides: nothing is downloaded."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ddpm.checks import ConfigError
from ddpm.nets.digit_classifier import DigitClassifier, train_classifier
from ddpm.repa.loss import REPAConfig

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_SEED = 1  # not the FID classifier's seed 0: the target is not the metric's own features


class Encoder(ABC):
    dim: int  # the feature width
    module: nn.Module

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor:
        """Patch features ``(N, dim, h, w)`` of images ``x`` in [-1, 1] (no gradient)."""


class DigitsEncoder(Encoder):
    module: DigitClassifier

    def __init__(self, x: Tensor, y: Tensor, num_classes: int, cache_dir: str | Path) -> None:
        digest = hashlib.sha1(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()[:12]
        path = Path(cache_dir).expanduser() / f"repa-digits-seed{DIGITS_SEED}-{digest}.pt"
        self.module = DigitClassifier(num_classes, x.shape[1])
        if path.is_file():
            self.module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            self.module = train_classifier(x, y, num_classes, seed=DIGITS_SEED)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save(self.module.state_dict(), tmp)
            tmp.replace(path)
        self.module = self.module.eval().requires_grad_(False)
        self.dim = 128

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        return self.module.to(x.device).patch_features(x.float())


class TimmEncoder(Encoder):
    """A timm vision transformer's patch tokens (prefix tokens dropped) for images resized to
    ``image_size``, replicated to three channels and normalised with ImageNet statistics."""

    module: VisionTransformer

    def __init__(self, name: str, weights: str | None, image_size: int = 224) -> None:
        try:
            import timm
        except ImportError:
            raise ConfigError(
                f"model.repa.encoder={name} needs timm: pip install 'ddpm[repa]'"
            ) from None
        REPAConfig(encoder=name, weights=weights).check_weights()
        try:
            model = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
            self.module = cast("VisionTransformer", model)  # a vision transformer, as documented
        except RuntimeError as e:
            raise ConfigError(f"model.repa.encoder={name} is not a timm model: {e}") from None
        try:
            weights_file = Path(cast(str, weights)).expanduser()  # check_weights: it is given
            self.module.load_state_dict(load_state(weights_file), strict=True)
        except (RuntimeError, ValueError, OSError) as e:
            raise ConfigError(
                f"model.repa.weights={weights} are not weights of {name}: "
                f"{str(e).splitlines()[0][:200]}"
            ) from None
        self.module = self.module.eval().requires_grad_(False)
        self.dim = int(self.module.num_features)
        self.image_size = image_size

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        m = self.module.to(x.device)
        x = (x.float() + 1) / 2
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(self.image_size,) * 2, mode="bicubic", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=x.device)[:, None, None]
        tokens = m.forward_features((x - mean) / std)[:, m.num_prefix_tokens :]
        side = int(round(tokens.shape[1] ** 0.5))
        return tokens.transpose(1, 2).reshape(len(x), -1, side, side)


def load_state(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state) if isinstance(state, dict) else state


def build_encoder(
    name: str, weights: str | None, image_size: int | None, data: Callable[[], tuple[Tensor, Tensor]],
    num_classes: int | None, cache_dir: str | Path,
) -> Encoder:  # fmt: skip
    """The encoder ``model.repa.encoder`` names; ``data()`` gives the training images and
    labels (the digits encoder trains on them once). Built without touching the global random
    state (a network's construction draws from it), so the run's data order is unchanged."""
    with torch.random.fork_rng():
        if name == "digits":
            if not num_classes:
                raise ConfigError(
                    "model.repa.encoder=digits trains a classifier: the data need class labels"
                )
            x, y = data()
            return DigitsEncoder(x, y, num_classes, cache_dir)
        return TimmEncoder(name, weights, image_size or 224)
