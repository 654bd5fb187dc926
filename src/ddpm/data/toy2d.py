"""2-D toy distributions: moons, swiss roll, a ring of Gaussians. Continuous, scaled into [-1, 1]
(the samplers clip their x0 estimate to that range)."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ddpm.checks import PositiveInt
from ddpm.data.base import DataInfo, DiffusionDataModule, TensorPairs

Toy = Literal["moons", "swissroll", "gaussians"]
TOYS: tuple[str, ...] = get_args(Toy)


def toy_points(name: str, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` points and a component label (moon, ring position; 0 for the swiss roll)."""
    g = torch.Generator().manual_seed(seed)
    if name == "moons":
        from sklearn.datasets import make_moons

        x, y = make_moons(n, noise=0.05, random_state=seed)
        x = (torch.from_numpy(x).float() - torch.tensor([0.5, 0.25])) / torch.tensor([1.7, 0.9])
        return x, torch.from_numpy(y).long()
    if name == "swissroll":
        from sklearn.datasets import make_swiss_roll

        x, _ = make_swiss_roll(n, noise=0.3, random_state=seed)
        x = (torch.from_numpy(x[:, [0, 2]]).float() - 1.5) / torch.tensor([13.0, 14.5])
        return x, torch.zeros(n, dtype=torch.long)
    if name == "gaussians":
        j = torch.randint(0, 8, (n,), generator=g)
        angle = j.float() * (2 * math.pi / 8)
        centers = torch.stack([angle.cos(), angle.sin()], dim=1) * 0.75
        return centers + 0.05 * torch.randn(n, 2, generator=g), j
    raise ValueError(f"unknown toy dataset {name!r}; choose one of {', '.join(TOYS)}")


class FreshPoints(Dataset):
    """``fresh=true``: every item is a random draw from a pool 16 times the epoch size, using the
    (per-rank, per-worker seeded) global RNG, so epochs do not repeat the same points."""

    def __init__(self, name: str, size: int, seed: int) -> None:
        self.x, self.y = toy_points(name, size * 16, seed)
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        j = int(torch.randint(len(self.x), ()))
        return self.x[j], int(self.y[j])


class Toy2DDataModule(DiffusionDataModule):
    """``name``: moons, swissroll or gaussians; ``size`` training points (fixed set, or a larger
    pool cycled through with ``fresh``)."""

    def __init__(
        self,
        name: Toy = "moons",
        size: PositiveInt = 10_000,
        test_size: PositiveInt = 2_000,
        seed: int = 0,
        fresh: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if name not in TOYS:
            raise ValueError(f"unknown toy dataset {name!r}; choose one of {', '.join(TOYS)}")
        self.name, self.size, self.test_size, self.seed, self.fresh = (
            name,
            size,
            test_size,
            seed,
            fresh,
        )
        num_classes = 8 if name == "gaussians" else 2 if name == "moons" else None
        self.info = DataInfo(f"toy2d-{name}", (2,), num_classes, "points")

    def build(self):
        test = TensorPairs(*toy_points(self.name, self.test_size, self.seed + 1))
        if self.fresh:
            return FreshPoints(self.name, self.size, self.seed), test
        return TensorPairs(*toy_points(self.name, self.size, self.seed)), test
