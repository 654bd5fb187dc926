"""Turning a picture into a training image: the colour mode, the size, and how the aspect ratio
is made square."""

from __future__ import annotations

from typing import Literal

import torch

Resize = Literal["crop", "squash"]


def prepare_image(img, image_size: int, channels: int, resize: Resize = "crop") -> torch.Tensor:
    """A PIL image as a ``(channels, image_size, image_size)`` tensor on the 256-level grid in
    [-1, 1]. ``crop``: resize the short side, then take the centre square; ``squash``: resize both
    sides, changing the aspect ratio (the seed homework's transform)."""
    from torchvision.transforms import functional as TF

    img = img.convert("RGB" if channels == 3 else "L")
    if resize == "crop":
        img = TF.center_crop(TF.resize(img, image_size, antialias=True), image_size)
    else:
        img = TF.resize(img, [image_size, image_size], antialias=True)
    return TF.pil_to_tensor(img).float() / 127.5 - 1.0
