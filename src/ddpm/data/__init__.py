"""Datasets as Lightning data modules; every sample is ``(x, y)`` with ``x`` in [-1, 1] and
``y = -1`` when the data has no labels. Loaded lazily: importing ``ddpm.data.info`` (what the
config layer needs) does not import Lightning."""

from __future__ import annotations

import importlib

_WHERE = {
    "DataInfo": "ddpm.data.info",
    "DatasetNotFoundError": "ddpm.data.info",
    "DiffusionDataModule": "ddpm.data.base",
    "DigitsDataModule": "ddpm.data.digits",
    "HFDataModule": "ddpm.data.hf",
    "ImageFolderDataModule": "ddpm.data.image_folder",
    "SamplesDataModule": "ddpm.data.samples",
    "Toy2DDataModule": "ddpm.data.toy2d",
    "TorchvisionDataModule": "ddpm.data.torchvision_sets",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'ddpm.data' has no attribute {name!r}")
