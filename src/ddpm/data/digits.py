"""sklearn's 8x8 handwritten digits: 1797 images, 10 classes, shipped with sklearn (no download)."""

from __future__ import annotations

import torch

from ddpm.checks import PositiveInt
from ddpm.data.base import DataInfo, DiffusionDataModule, TensorPairs, to_unit_range


def load_digits_uint8() -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 ``(N, 1, 8, 8)`` on the 256-level grid (sklearn's 0..16 scaled and rounded),
    and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).float().div(16).mul(255).round().to(torch.uint8)
    return x[:, None], torch.from_numpy(d.target).long()


class DigitsDataModule(DiffusionDataModule):
    """The default dataset. A fixed, seeded split holds out ``test_size`` images."""

    def __init__(self, test_size: PositiveInt = 297, split_seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_size, self.split_seed = test_size, split_seed
        self.info = DataInfo("digits", (1, 8, 8), 10, "image")

    def build(self):
        x, y = load_digits_uint8()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
        test, train = perm[: self.test_size], perm[self.test_size :]
        x = to_unit_range(x)
        return TensorPairs(x[train], y[train]), TensorPairs(x[test], y[test])
