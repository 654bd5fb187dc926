"""A small UNet with BatchNorm for teaching, in the spirit of the seed's homework (Stanford Cars at
64x64): two convolutions per level, the time embedding added once per block, no attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ddpm.checks import PositiveInt
from ddpm.nets.embeddings import TimeEmbedding, class_embedding, condition


class Block(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()
        )
        self.emb = nn.Linear(emb_dim, out_ch)
        self.conv2 = nn.Sequential(
            nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv2(self.conv1(x) + self.emb(emb)[:, :, None, None])


class SimpleUNet(nn.Module):
    """``net(x_t, k, y=None)``; ``channels`` gives the width of each level."""

    def __init__(
        self,
        in_channels: PositiveInt = 3,
        out_channels: PositiveInt | None = None,
        image_size: PositiveInt = 64,
        channels: Sequence[PositiveInt] = (64, 128, 256, 512),
        time_dim: PositiveInt = 128,
        num_classes: int | None = None,
        class_cond: bool = False,
        learn_sigma: bool = False,
        time_inputs: PositiveInt = 1,
    ) -> None:
        super().__init__()
        if image_size % 2 ** (len(channels) - 1):
            raise ValueError(
                f"image_size {image_size} is not divisible by 2^{len(channels) - 1}, the downsampling "
                f"of channels={list(channels)}; use fewer levels or another image size"
            )
        out_channels = (out_channels or in_channels) * (2 if learn_sigma else 1)
        self.time_embed = TimeEmbedding(time_dim, time_dim, time_inputs)
        self.class_embed = class_embedding(num_classes, class_cond, time_dim)
        self.down = nn.ModuleList()
        cur = in_channels
        for c in channels:
            self.down.append(Block(cur, c, time_dim))
            cur = c
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.upconv = nn.ModuleList()
        for c in reversed(channels[:-1]):
            self.upconv.append(nn.ConvTranspose2d(cur, c, 2, stride=2))
            self.up.append(Block(2 * c, c, time_dim))
            cur = c
        self.out = nn.Conv2d(cur, out_channels, 1)

    def forward(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        emb = condition(self.time_embed, self.class_embed, k, y, x)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = self.pool(x)
            x = block(x, emb)
            skips.append(x)
        skips.pop()
        for upconv, block in zip(self.upconv, self.up):
            x = block(torch.cat([upconv(x), skips.pop()], dim=1), emb)
        return self.out(x)
