"""The training data of a latent diffusion model: a data module's images, encoded once by the
autoencoder (:mod:`ddpm.latents.cache`) and served as scaled latents ``(z, y)`` — or
``(z, y, x)`` with the image kept, for a loss that reads the pixels too (REPA). The data
module's random flips (``flip``) are switched off: an image's latent is computed once, as stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ddpm.data.base import DiffusionDataModule
from ddpm.data.info import DataInfo
from ddpm.latents.base import Autoencoder
from ddpm.latents.cache import cache_file, items_config, load_or_encode, source_stamps


class LatentPairs(Dataset):
    def __init__(self, z: Tensor, y: Tensor, scale: float, shift: float, pixels=None) -> None:
        self.z, self.y, self.scale, self.shift, self.pixels = z, y, scale, shift, pixels

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int):
        z = (self.z[i] - self.shift) * self.scale
        if self.pixels is None:
            return z, int(self.y[i])
        return z, int(self.y[i]), self.pixels[i][0]


class LatentDataModule(DiffusionDataModule):
    """``data`` seen through ``autoencoder``; ``dataset``: the data's config (the cache key);
    ``keep_pixels``: items are ``(z, y, x)``."""

    def __init__(
        self,
        data: DiffusionDataModule,
        autoencoder: Autoencoder,
        dataset: Mapping[str, Any],
        keep_pixels: bool = False,
    ) -> None:
        super().__init__(data.batch_size, data.num_workers)
        if getattr(data, "flip", False):  # each image is encoded once, as stored (before setup)
            cast(Any, data).flip = False  # a data module's own option (not every one has it)
        self.data, self.autoencoder, self.dataset = data, autoencoder, dict(dataset)
        self.keep_pixels = keep_pixels
        self._latents: dict[str, tuple[Tensor, Tensor]] = {}
        if data.declared_info is not None:
            self.info = self.latent_info(data.declared_info)

    def latent_info(self, pixel: DataInfo) -> DataInfo:
        shape = self.autoencoder.latent_shape(pixel)
        return DataInfo(pixel.name, tuple(shape), pixel.num_classes, "latent")

    @property
    def info(self) -> DataInfo:
        if self._info is None:
            self._info = self.latent_info(self.pixel_info)
        return self._info

    @info.setter
    def info(self, value: DataInfo) -> None:
        self._info = value

    @property
    def pixel_info(self) -> DataInfo:
        return self.data.declared_info or self.data.info

    def check_available(self) -> None:
        self.data.check_available()

    def latents(self, split: str) -> tuple[Tensor, Tensor]:
        """The split's unscaled latents and labels (encoded once, then read from the cache)."""
        if split not in self._latents:
            ds = self.data.train_set if split == "train" else self.data.test_set
            ae = self.autoencoder
            items = items_config(self.dataset)
            key = {
                "dataset": items,
                "sources": source_stamps(items),
                "split": split,
                "autoencoder": ae.fingerprint(),
            }
            path = cache_file(ae.cache_dir, self.dataset, split, ae.fingerprint())

            def encode(progress) -> tuple[Tensor, Tensor]:
                zs, ys, n = [], [], len(ds)
                device = "cuda" if torch.cuda.is_available() else "cpu"
                for start in range(0, n, ae.batch_size):
                    items = [ds[i] for i in range(start, min(n, start + ae.batch_size))]
                    x = torch.stack([it[0] for it in items]).to(device)
                    zs.append(ae.encode_mean(x).float().cpu())
                    ys.append(torch.tensor([int(it[1]) for it in items]))
                    progress(start + len(items))
                return torch.cat(zs), torch.cat(ys)

            what = f"{self.pixel_info.name} {split} with the {ae.name}"
            self._latents[split] = load_or_encode(path, key, len(ds), encode, what)
        return self._latents[split]

    def resolve(self) -> dict[str, float | str]:
        """What the run config stores of the autoencoder: its factors as numbers (``auto``
        measured on the training latents), its absolute location and its weights' digest."""
        ae = self.autoencoder
        factors = ae.resolve(lambda: self.latents("train")[0])
        return {**factors, **ae.location(), "fingerprint": ae.fingerprint()}

    def build(self):
        scale, shift = self.autoencoder.factors()
        sets = []
        for split in ("train", "test"):
            z, y = self.latents(split)
            pixels = None
            if self.keep_pixels:
                pixels = self.data.train_set if split == "train" else self.data.test_set
            sets.append(LatentPairs(z, y, scale, shift, pixels))
        return tuple(sets)
