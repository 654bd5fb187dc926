"""An autoencoder as the map between the data and a latent diffusion model's space (Rombach et
al. 2022, sec. 3): ``encode`` takes images in [-1, 1] to the posterior mean of ``q(z|x)``, shifted
and scaled to ``(mean - shift_factor) * scaling_factor``; ``decode`` inverts the scaling and maps
back to images in [-1, 1]. Training data are encoded once (:mod:`ddpm.latents.cache`); samples
are decoded before images are written or scored, so every metric stays in pixel space.

The posterior mean, not a sample, is what is encoded and cached: it is a deterministic function
of the image, so the cache is the same on every device and run and its key needs no seed; for
Stable Diffusion's autoencoder the posterior's spread is far below the latent's scale, and for
our VAE (trained on the full ELBO, whose posterior is broad) the mean is the code its decoder
reconstructs best.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.data.info import DataInfo

DEFAULT_CACHE = "~/.cache/ddpm/latents"


class Autoencoder(ABC):
    """What ``latent=...`` names: the latent shape for the data (or a one-line refusal), the
    weights (loaded on first use), a fingerprint of them for the cache key, and the scaled
    ``encode``/``decode``. ``scaling_factor``/``shift_factor``: numbers, ``None`` (the
    autoencoder's own) or ``auto`` (measured on the encoded training set: one over the standard
    deviation, and the mean)."""

    name = "autoencoder"

    def __init__(
        self,
        scaling_factor: float | str | None = None,
        shift_factor: float | str | None = None,
        cache_dir: str = DEFAULT_CACHE,
        batch_size: int = 64,
        fingerprint: str | None = None,
    ) -> None:
        for key, value in (("scaling_factor", scaling_factor), ("shift_factor", shift_factor)):
            if isinstance(value, str) and value != "auto":
                raise ConfigError(
                    f"latent.{key}={value!r} is not valid; give a number, null or auto"
                )
        if isinstance(scaling_factor, (int, float)) and scaling_factor <= 0:
            raise ConfigError(f"latent.scaling_factor={scaling_factor} must be positive")
        self.scaling_factor, self.shift_factor = scaling_factor, shift_factor
        self.cache_dir = Path(os.path.expanduser(cache_dir))
        self.batch_size = batch_size
        self.expected_fingerprint = fingerprint  # what a trained model's run config recorded

    # --- what each autoencoder states ------------------------------------------------------------
    @abstractmethod
    def latent_shape(self, data: DataInfo) -> tuple[int, ...]:
        """The latent of one example of ``data``, or ConfigError when the data do not fit."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A digest of the weights and config (a changed autoencoder gets a new cache)."""

    @abstractmethod
    def encode_mean(self, x: Tensor) -> Tensor:
        """The unscaled posterior mean of ``q(z|x)``."""

    @abstractmethod
    def decode_mean(self, z: Tensor) -> Tensor:
        """The decoder's image for an unscaled latent."""

    @abstractmethod
    def location(self) -> dict[str, str]:
        """Where the weights are, as an absolute path (the run config stores it)."""

    def check_unchanged(self, where: str) -> None:
        """Refuse weights that differ from those a model was trained on."""
        if self.expected_fingerprint and self.fingerprint() != self.expected_fingerprint:
            ((key, value),) = self.location().items()
            raise ConfigError(
                f"{where} was trained on the latents of latent.{key}={value}, whose weights have "
                f"changed since (digest {self.fingerprint()}, trained with "
                f"{self.expected_fingerprint}); restore the autoencoder it was trained with"
            )

    def own_factors(self) -> tuple[float, float]:
        """The scaling and shift the autoencoder's own config states."""
        return 1.0, 0.0

    # --- shared ----------------------------------------------------------------------------------
    def resolve(self, latents_of_train) -> dict[str, float]:
        """The factors as numbers: ``auto`` measured on ``latents_of_train()`` (the unscaled
        training latents: the shift their mean, the scale one over their RMS about the shift),
        ``None`` the autoencoder's own. Returns them, for the run config to store."""
        own_scale, own_shift = self.own_factors()
        z = (
            latents_of_train().double()
            if "auto" in (self.scaling_factor, self.shift_factor)
            else None
        )
        if self.shift_factor == "auto":
            assert z is not None  # measured above: a factor is "auto"
            shift = float(z.mean())
        else:
            shift = own_shift if self.shift_factor is None else float(self.shift_factor)
        if self.scaling_factor == "auto":
            assert z is not None  # measured above: a factor is "auto"
            scale = 1.0 / float((z - shift).pow(2).mean().sqrt().clamp_min(1e-12))
        else:
            scale = own_scale if self.scaling_factor is None else float(self.scaling_factor)
        self.scaling_factor, self.shift_factor = scale, shift
        return {"scaling_factor": scale, "shift_factor": shift}

    def factors(self) -> tuple[float, float]:
        if isinstance(self.scaling_factor, str) or isinstance(self.shift_factor, str):
            raise RuntimeError("the autoencoder's factors are not resolved yet (resolve first)")
        own = self.own_factors()
        scale = own[0] if self.scaling_factor is None else float(self.scaling_factor)
        shift = own[1] if self.shift_factor is None else float(self.shift_factor)
        return scale, shift

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        scale, shift = self.factors()
        return (self.encode_mean(x).float() - shift) * scale

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Images in [-1, 1] for latents of the model's (scaled) space, in batches."""
        scale, shift = self.factors()
        out = [
            self.decode_mean(zb.float() / scale + shift).float().clamp(-1, 1)
            for zb in z.split(self.batch_size)
        ]
        return torch.cat(out) if out else z.new_zeros((0,))


def file_digest(path: Path, prefix: bytes = b"") -> str:
    """sha256 of ``prefix`` and the file's bytes, read in blocks (16 hex digits)."""
    h = hashlib.sha256(prefix)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def check_image_fit(what: str, data: DataInfo, channels: int, factor: int) -> None:
    """Refuse data an image autoencoder of ``channels`` input channels, downsampling by
    ``factor``, cannot encode."""
    if not data.is_image or len(data.shape) != 3:
        raise ConfigError(
            f"{what} encodes images; the data {data.name} are {data.kind} of shape {data.shape}"
        )
    c, h, w = data.shape
    if c != channels:
        raise ConfigError(
            f"{what} encodes {channels}-channel images; the data {data.name} have {c} channels"
        )
    if h % factor or w % factor:
        raise ConfigError(
            f"{what} downsamples by {factor}; the data {data.name} are {h}x{w}, not a multiple "
            f"of {factor} (resize the data, e.g. dataset.image_size)"
        )
