"""VAE networks for the seed's Example 1: an encoder ``q(z|x) = N(mu_phi(x), diag sigma_phi^2(x))``
and a decoder ``p(x|z) = N(mu(z), diag sigma^2(z))``, with ``z ~ N(0, I)``.

They know nothing of the bound they are trained with (:mod:`ddpm.vae`). The decoder variance is
per coordinate (the seed's ``sigma^2(z) I`` generalised to a diagonal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

from torch import Tensor, nn
from torch.nn import functional as F

from ddpm.checks import PositiveInt
from ddpm.nets.unet import group_norm

LOG_VAR_RANGE = (-14.0, 4.0)  # keeps exp(log_var) finite in float32 at the start of training


class VAE(nn.Module):
    """``encode(x) -> (mean, log_var)`` of ``q(z|x)``; ``decode(z) -> (mean, log_var)`` of
    ``p(x|z)``; ``latent_shape`` is the shape of ``z`` (``latent_dim`` its size). Subclass it for
    your own architecture."""

    latent_dim: int

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    # the model a network is trained by, for the refusal of any other (a denoiser states none)
    trained_by = "model=vae (or experiment=digits_vae)"

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @staticmethod
    def split(h: Tensor) -> tuple[Tensor, Tensor]:
        """A head's output, channels ``[mean, log_var]``, with the log-variance kept in range."""
        mean, log_var = h.chunk(2, dim=1)
        return mean, log_var.clamp(*LOG_VAR_RANGE)


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            group_norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
            group_norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ConvVAE(VAE):
    """Images ``(N, C, H, W)`` in [-1, 1]: residual conv stages, each halving the resolution
    (``ch * ch_mult[i]`` channels), a linear map to the latent, and the mirror image back up.
    With ``latent_channels`` the latent is instead a map of that many channels at the lowest
    resolution (1x1 convolutions in and out), the spatial latent a latent diffusion model's
    image network takes (``latent=vae``)."""

    def __init__(
        self,
        in_channels: PositiveInt = 1,
        image_size: PositiveInt = 8,
        latent_dim: PositiveInt = 16,
        ch: PositiveInt = 32,
        ch_mult: Sequence[PositiveInt] = (1, 2),
        latent_channels: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        if image_size % 2 ** len(ch_mult):
            raise ValueError(
                f"image_size={image_size} is not divisible by 2^{len(ch_mult)} (network.ch_mult={list(ch_mult)})"
            )
        self.in_channels, self.latent_channels = in_channels, latent_channels
        widths = [ch * m for m in ch_mult]
        self.bottom = (widths[-1], image_size // 2 ** len(ch_mult))
        side = self.bottom[1]
        self.latent_dim = latent_dim if latent_channels is None else latent_channels * side**2
        flat = widths[-1] * side**2
        down: list[nn.Module] = [nn.Conv2d(in_channels, ch, 3, padding=1)]
        prev = ch
        for w in widths:
            down += [ResBlock(prev), nn.Conv2d(prev, w, 3, stride=2, padding=1)]
            prev = w
        if latent_channels is None:
            self.encoder = nn.Sequential(*down, group_norm(prev), nn.SiLU(), nn.Flatten())
            self.to_latent: nn.Module = nn.Linear(flat, 2 * latent_dim)
            self.from_latent: nn.Module = nn.Linear(latent_dim, flat)
        else:
            self.encoder = nn.Sequential(*down, group_norm(prev), nn.SiLU())
            self.to_latent = nn.Conv2d(prev, 2 * latent_channels, 1)
            self.from_latent = nn.Conv2d(latent_channels, prev, 1)
        up: list[nn.Module] = []
        for w in reversed([ch, *widths[:-1]]):
            up += [ResBlock(prev), nn.Upsample(scale_factor=2.0), nn.Conv2d(prev, w, 3, padding=1)]
            prev = w
        self.decoder = nn.Sequential(
            *up, ResBlock(prev), group_norm(prev), nn.SiLU(), nn.Conv2d(prev, 2 * in_channels, 3, padding=1)
        )  # fmt: skip

    @property
    def latent_shape(self) -> tuple[int, ...]:
        side = self.bottom[1]
        return (
            (self.latent_dim,)
            if self.latent_channels is None
            else (self.latent_channels, side, side)
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.to_latent(self.encoder(x)))

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        c, s = self.bottom
        h = F.silu(self.from_latent(z)).reshape(-1, c, s, s)
        return self.split(self.decoder(h))


def _mlp(inp: int, hidden: int, depth: int, out: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(inp, hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, out))


class MLPVAE(VAE):
    """Points ``(N, dim)``: MLP encoder and decoder."""

    def __init__(
        self,
        dim: PositiveInt = 2,
        latent_dim: PositiveInt = 2,
        hidden: PositiveInt = 256,
        depth: PositiveInt = 3,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _mlp(dim, hidden, depth, 2 * latent_dim)
        self.decoder = _mlp(latent_dim, hidden, depth, 2 * dim)
        # start with a narrow decoder
        nn.init.constant_(cast(Tensor, self.decoder[-1].bias)[dim:], math.log(0.1))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.encoder(x))

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.decoder(z))
