"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision, from ``data_dir``.

Offline, a missing dataset fails before training with the exact files to put in ``data_dir``;
online, ``download=true`` fetches them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ddpm.data.base import DataInfo, DatasetNotFoundError, DiffusionDataModule, random_hflip

_SETS = {
    # name: (torchvision class, shape, files torchvision looks for under data_dir)
    "mnist": ("MNIST", (1, 28, 28), "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"),
    "fashion_mnist": (
        "FashionMNIST",
        (1, 28, 28),
        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
    ),
    "cifar10": (
        "CIFAR10",
        (3, 32, 32),
        "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
    ),
}


def _pil_to_unit(img) -> torch.Tensor:
    from torchvision.transforms.functional import pil_to_tensor

    return pil_to_tensor(img).float() / 127.5 - 1.0


class TorchvisionDataModule(DiffusionDataModule):
    """``name``: mnist, fashion_mnist or cifar10. ``flip`` adds random horizontal flips (Ho et al.
    use them for CIFAR-10)."""

    name: str  # always set by __init__ (Lightning declares it optional)

    def __init__(
        self,
        name: Literal["mnist", "fashion_mnist", "cifar10"] = "cifar10",
        data_dir: str = "data",
        download: bool = False,
        flip: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if name not in _SETS:
            raise ValueError(
                f"unknown torchvision dataset {name!r}; choose one of {', '.join(_SETS)}"
            )
        self.name, self.data_dir, self.download, self.flip = name, data_dir, download, flip
        self.info = DataInfo(name, _SETS[name][1], 10, "image")

    def check_available(self) -> None:
        """Raise :class:`DatasetNotFoundError` naming the files when the data is not on disk."""
        self._make(train=False)

    def _make(self, train: bool):
        import torchvision

        cls_name, _, files = _SETS[self.name]
        cls = getattr(torchvision.datasets, cls_name)

        def transform(img):
            x = _pil_to_unit(img)
            return random_hflip(x) if (self.flip and train) else x

        where = Path(self.data_dir).resolve()
        try:
            return cls(str(self.data_dir), train=train, download=self.download, transform=transform)
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            if self.download:
                raise DatasetNotFoundError(
                    f"dataset {self.name!r} could not be downloaded into data_dir={where} "
                    f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); offline, put {files} "
                    f"there yourself (torchvision's layout)"
                ) from None
            if "not found" not in str(e).lower() and "download" not in str(e).lower():
                raise
            raise DatasetNotFoundError(
                f"dataset {self.name!r} is not in data_dir={where}: put {files} there "
                f"(torchvision's layout), or run with dataset.download=true when online"
            ) from None

    def build(self):
        return self._make(train=True), self._make(train=False)
