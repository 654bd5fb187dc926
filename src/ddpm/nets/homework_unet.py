"""The seed homework's network (the sast2024-diffusion assignment): a plain UNet with BatchNorm,
as the assignment describes it, so that its recipe can be reproduced exactly.

Five resolution levels (64 -> 4 pixels for 64x64 input) with 64, 128, 256, 512, 1024 channels;
each block is two 3x3 convolutions, each followed by ReLU then BatchNorm, with the time embedding
added after the first; going down a strided 4x4 convolution halves the resolution, going up a
transposed 4x4 convolution doubles it, the skip connection is a concatenation. The time
embedding is sinusoidal (width 32) through a Linear + ReLU, then each block's own Linear + ReLU.
A 1x1 convolution predicts the noise. 62,438,883 parameters for 3-channel images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ddpm.checks import PositiveInt
from ddpm.nets.embeddings import multi_time_embedding


class HomeworkBlock(nn.Module):
    """conv3x3 -> ReLU -> BN, + ReLU(Linear(t)), conv3x3 -> ReLU -> BN, then the resampling:
    a strided 4x4 convolution (down) or a transposed 4x4 convolution (up)."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, up: bool = False) -> None:
        super().__init__()
        self.time_mlp = nn.Linear(time_dim, out_ch)
        self.conv1 = nn.Conv2d(2 * in_ch if up else in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.bnorm1, self.bnorm2 = nn.BatchNorm2d(out_ch), nn.BatchNorm2d(out_ch)
        self.transform: nn.Conv2d | nn.ConvTranspose2d
        if up:
            self.transform = nn.ConvTranspose2d(out_ch, out_ch, 4, 2, 1)
        else:
            self.transform = nn.Conv2d(out_ch, out_ch, 4, 2, 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.bnorm1(torch.relu(self.conv1(x)))
        h = h + torch.relu(self.time_mlp(t))[:, :, None, None]
        h = self.bnorm2(torch.relu(self.conv2(h)))
        return self.transform(h)


class HomeworkUNet(nn.Module):
    """``net(x_t, k) -> eps``: unconditional, fixed variance (the assignment's model)."""

    def __init__(
        self,
        in_channels: PositiveInt = 3,
        image_size: PositiveInt = 64,
        channels: Sequence[PositiveInt] = (64, 128, 256, 512, 1024),
        time_dim: PositiveInt = 32,
        time_inputs: PositiveInt = 1,
    ) -> None:
        super().__init__()
        if image_size % 2 ** (len(channels) - 1):
            raise ValueError(
                f"image_size {image_size} is not divisible by 2^{len(channels) - 1}, the "
                f"downsampling of channels={list(channels)}; use fewer levels or another size"
            )
        self.time_dim, self.time_inputs = time_dim, time_inputs
        self.time_mlp = nn.Sequential(nn.Linear(time_dim * time_inputs, time_dim), nn.ReLU())
        self.conv0 = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.downs = nn.ModuleList(
            HomeworkBlock(channels[i], channels[i + 1], time_dim) for i in range(len(channels) - 1)
        )
        up = list(reversed(channels))
        self.ups = nn.ModuleList(
            HomeworkBlock(up[i], up[i + 1], time_dim, up=True) for i in range(len(up) - 1)
        )
        self.output = nn.Conv2d(channels[0], in_channels, 1)

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        t = self.time_mlp(multi_time_embedding(k, self.time_dim, self.time_inputs))
        x = self.conv0(x)
        skips = []
        for down in self.downs:
            x = down(x, t)
            skips.append(x)
        for up in self.ups:
            x = up(torch.cat([x, skips.pop()], dim=1), t)
        return self.output(x)
