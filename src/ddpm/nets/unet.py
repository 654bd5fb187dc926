"""The UNet of Ho et al. (2020), appendix B: a PixelCNN++-style Wide-ResNet UNet with GroupNorm,
sinusoidal time embedding, self-attention at chosen resolutions, and dropout.

With ``ch=128, ch_mult=(1,2,2,2), num_res_blocks=2, attn_resolutions=(16,), image_size=32`` it is
the CIFAR-10 model of the paper (35.7M parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ddpm.checks import PositiveInt, Probability
from ddpm.nets.embeddings import TimeEmbedding, class_embedding, condition


def group_norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, ch), ch)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, add the projected time embedding, GroupNorm-SiLU-Dropout-Conv, plus a
    1x1 skip projection when the width changes (Ho et al. appendix B)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = group_norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.drop = group_norm(out_ch), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        assert self.conv2.bias is not None  # bias=True
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, with a residual connection."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        assert self.proj.bias is not None  # bias=True
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        """The 1x1 convolutions applied as matrix products over the ``h w`` positions (the same
        parameters; one GEMM each way instead of a convolution: ~15% faster per block on CPU)."""
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)  # (b, hw, c)
        qkv = F.linear(tokens, self.qkv.weight.view(3 * c, c), self.qkv.bias)
        q, k, v = qkv.view(b, h * w, 3, c).permute(2, 0, 1, 3).unsqueeze(2)  # (b, 1, hw, c)
        out = F.scaled_dot_product_attention(q, k, v)[:, 0]
        out = F.linear(out, self.proj.weight.view(c, c), self.proj.bias)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """``net(x_t, k, y=None) -> prediction`` of shape ``(N, out_channels * (2 if learn_sigma), H, W)``.

    ``class_cond`` adds a class embedding (with a null class for classifier-free guidance) to the
    time embedding; ``learn_sigma`` doubles the output channels for the learned-variance
    interpolation of Nichol & Dhariwal.
    """

    def __init__(
        self,
        in_channels: PositiveInt = 3,
        out_channels: PositiveInt | None = None,
        image_size: PositiveInt = 32,
        ch: PositiveInt = 128,
        ch_mult: Sequence[PositiveInt] = (1, 2, 2, 2),
        num_res_blocks: PositiveInt = 2,
        attn_resolutions: Sequence[int] = (16,),
        dropout: Probability = 0.1,
        num_classes: int | None = None,
        class_cond: bool = False,
        learn_sigma: bool = False,
        time_inputs: PositiveInt = 1,
    ) -> None:
        super().__init__()
        levels = len(ch_mult)
        if image_size % 2 ** (levels - 1):
            raise ValueError(
                f"image_size {image_size} is not divisible by 2^{levels - 1}, the UNet's downsampling "
                f"for ch_mult={list(ch_mult)}; use fewer levels or another image size"
            )
        out_channels = (out_channels or in_channels) * (2 if learn_sigma else 1)
        emb_dim = 4 * ch
        self.time_embed = TimeEmbedding(ch, emb_dim, time_inputs)
        self.class_embed = class_embedding(num_classes, class_cond, emb_dim)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips, cur, res = [ch], ch, image_size
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                blocks: list[nn.Module] = [ResBlock(cur, ch * mult, emb_dim, dropout)]
                cur = ch * mult
                if res in attn_resolutions:
                    blocks.append(AttnBlock(cur))
                self.down.append(nn.ModuleList(blocks))
                skips.append(cur)
            if level != levels - 1:
                self.down.append(nn.ModuleList([Downsample(cur)]))
                skips.append(cur)
                res //= 2

        self.mid = nn.ModuleList(
            [
                ResBlock(cur, cur, emb_dim, dropout),
                AttnBlock(cur),
                ResBlock(cur, cur, emb_dim, dropout),
            ]
        )

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                blocks = [ResBlock(cur + skips.pop(), ch * mult, emb_dim, dropout)]
                cur = ch * mult
                if res in attn_resolutions:
                    blocks.append(AttnBlock(cur))
                self.up.append(nn.ModuleList(blocks))
            if level != 0:
                self.up.append(nn.ModuleList([Upsample(cur)]))
                res *= 2

        self.norm_out = group_norm(cur)
        self.conv_out = nn.Conv2d(cur, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None  # bias=True
        nn.init.zeros_(self.conv_out.bias)

    @staticmethod
    def _run(blocks: nn.ModuleList, h: Tensor, emb: Tensor) -> Tensor:
        for block in blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return h

    def forward(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        emb = condition(self.time_embed, self.class_embed, k, y, x)
        h = self.conv_in(x)
        hs = [h]
        for blocks in cast("Iterable[nn.ModuleList]", self.down):
            h = self._run(blocks, h, emb)
            hs.append(h)
        h = self._run(self.mid, h, emb)
        for blocks in cast("Iterable[nn.ModuleList]", self.up):
            if isinstance(blocks[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(blocks, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
