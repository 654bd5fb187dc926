"""Datasets as Lightning data modules; every sample is ``(x, y)`` with ``x`` in [-1, 1] and
``y = -1`` when the data has no labels."""

from ddpm.data.base import DataInfo, DatasetNotFoundError, DiffusionDataModule
from ddpm.data.digits import DigitsDataModule
from ddpm.data.hf import HFDataModule
from ddpm.data.image_folder import ImageFolderDataModule
from ddpm.data.torchvision_sets import TorchvisionDataModule
from ddpm.data.toy2d import Toy2DDataModule

__all__ = [
    "DataInfo",
    "DatasetNotFoundError",
    "DiffusionDataModule",
    "DigitsDataModule",
    "HFDataModule",
    "ImageFolderDataModule",
    "Toy2DDataModule",
    "TorchvisionDataModule",
]
