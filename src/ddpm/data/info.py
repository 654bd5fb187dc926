"""What the rest of the framework knows about a dataset, without loading it (and without
Lightning: the config layer reads it)."""

from __future__ import annotations

import math
from dataclasses import dataclass


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk; the message names the directory and what to put there."""


@dataclass(frozen=True)
class DataInfo:
    """What the rest of the framework needs to know about a dataset."""

    name: str
    shape: tuple[int, ...]  # (C, H, W) for images, (D,) for points
    num_classes: int | None
    kind: str  # "image" (quantised to 256 levels) or "points" (continuous)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)
