"""The data module every dataset shares: train/test splits in [-1, 1], optional labels."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ddpm.checks import NonNegativeInt, PositiveInt
from ddpm.data.info import DataInfo, DatasetNotFoundError

__all__ = ["DataInfo", "DatasetNotFoundError", "DiffusionDataModule"]


class CheckedDataset(Dataset):
    """Returns ``(x, y)`` with ``y = -1`` when there are no labels (and any further fields an
    item has, e.g. the image of a latent), and refuses non-finite inputs, naming the index of the
    offending item."""

    def __init__(self, base: Dataset, name: str) -> None:
        self.base, self.name = base, name

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple:
        item = self.base[i]
        x, y, *extra = item if isinstance(item, (tuple, list)) else (item, -1)
        x = torch.as_tensor(x, dtype=torch.float32)
        if not torch.isfinite(x).all():
            raise ValueError(f"item {i} of dataset {self.name!r} contains NaN or Inf values")
        return (x, int(y), *extra)


class TensorPairs(Dataset):
    """``(x[i], y[i])`` from two tensors, with an optional per-item transform."""

    def __init__(self, x: Tensor, y: Tensor | None = None, transform=None) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, (int(self.y[i]) if self.y is not None else -1)


def random_hflip(x: Tensor) -> Tensor:
    return x.flip(-1) if torch.rand(()) < 0.5 else x


class DiffusionDataModule(L.LightningDataModule):
    """Subclasses implement :meth:`build` returning ``(train, test)`` datasets of ``(x, y)``
    pairs in [-1, 1] (``y = -1`` without labels), and may set :attr:`info`; otherwise it is read
    off the data (the shape of the first item; classes from its labels). The data states its own
    shape and classes once: networks are sized from :attr:`info`, never from a restated config."""

    def __init__(self, batch_size: PositiveInt = 128, num_workers: NonNegativeInt = 0) -> None:
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers
        self._info: DataInfo | None = None
        self._train: CheckedDataset | None = None
        self._test: CheckedDataset | None = None

    @property
    def info(self) -> DataInfo:
        if self._info is None:
            x, _ = self.train_set[0]
            labels = [int(self.train_set[i][1]) for i in range(min(len(self.train_set), 5000))]
            num_classes = max(labels) + 1 if labels and min(labels) >= 0 else None
            kind = "image" if x.ndim == 3 else "points"
            self._info = DataInfo(type(self).__name__, tuple(x.shape), num_classes, kind)
        return self._info

    @info.setter
    def info(self, value: DataInfo) -> None:
        self._info = value

    @property
    def declared_info(self) -> DataInfo | None:
        """:attr:`info` when it is known without reading the data (``None`` otherwise)."""
        return self._info

    @property
    def real_data(self) -> DiffusionDataModule:
        """The real data this data stands for, which evaluation compares against and EDM's
        ``sigma_data: auto`` is measured on: itself, except for a batch of generated samples
        (:class:`~ddpm.data.samples.SamplesDataModule`)."""
        return self

    def check_available(self) -> object:
        """Raise before training when the data is not on disk (overridden where it can be)."""

    def build(self) -> tuple[Dataset, Dataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:
            train, test = self.build()
            name = self._info.name if self._info is not None else type(self).__name__
            self._train = CheckedDataset(train, name)
            self._test = CheckedDataset(test, name)

    @property
    def train_set(self) -> CheckedDataset:
        self.setup()
        return self._train  # type: ignore[return-value]

    @property
    def test_set(self) -> CheckedDataset:
        self.setup()
        return self._test  # type: ignore[return-value]

    def _loader(self, ds: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        # a small set split over ranks must still fill one batch per rank
        world = self.trainer.world_size if self.trainer is not None else 1
        return DataLoader(
            ds,
            batch_size=max(1, min(self.batch_size, len(ds) // world)),  # type: ignore[arg-type]
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False, drop_last=False)


def dataset_tensors(ds: Dataset, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """The first ``limit`` items (all by default) of a dataset of ``(x, y)`` as two stacked
    tensors."""
    n = len(ds) if limit is None else min(limit, len(ds))  # type: ignore[arg-type]
    items = [ds[i] for i in range(n)]
    return torch.stack([it[0] for it in items]), torch.tensor([it[1] for it in items])


def to_unit_range(x: Tensor) -> Tensor:
    """uint8 pixels (0..255) to [-1, 1]: 256 levels, as the discretized decoder assumes."""
    return x.float() / 127.5 - 1.0
