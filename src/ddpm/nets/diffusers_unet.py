"""A diffusers ``UNet2DModel`` as a network of this framework, so a diffusers architecture trains,
samples and is evaluated here (``network=diffusers_unet``; ``pip install -e '.[export]'``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ddpm.checks import ConfigError, PositiveInt, Probability
from ddpm.nets.embeddings import TimeEmbedding, time_columns


class ExtraTimes(nn.Module):
    """UNet2DModel's time embedding plus the embedding of the further time inputs (set on the
    module before each call): how a diffusers UNet takes ``time_inputs`` > 1."""

    def __init__(self, inner: nn.Module, base_dim: int, inputs: int) -> None:
        super().__init__()
        self.inner = inner
        self.extra = TimeEmbedding(base_dim, cast(nn.Linear, inner.linear_2).out_features, inputs)
        self.times: Tensor | None = None

    def forward(self, sample: Tensor, *args, **kwargs) -> Tensor:
        return self.inner(sample, *args, **kwargs) + self.extra(self.times).to(sample.dtype)


class DiffusersUNet(nn.Module):
    """``net(x_t, k)`` or ``net(x_t, k, y)`` around ``UNet2DModel``: the input shape and classes
    come from the data and the model (``in_channels``, ``image_size``, ``num_classes``,
    ``class_cond``, ``learn_sigma``), the rest are UNet2DModel's own config keys. A conditional
    network embeds ``num_classes + 1`` labels, the last one the null label (``y = -1``) of
    classifier-free guidance."""

    def __init__(
        self,
        in_channels: PositiveInt = 3,
        image_size: PositiveInt = 32,
        num_classes: int | None = None,
        class_cond: bool = False,
        learn_sigma: bool = False,
        block_out_channels: Sequence[PositiveInt] = (64, 128),
        layers_per_block: PositiveInt = 2,
        down_block_types: Sequence[str] = ("DownBlock2D", "AttnDownBlock2D"),
        up_block_types: Sequence[str] = ("AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim: PositiveInt | None = 8,
        norm_num_groups: PositiveInt = 32,
        dropout: Probability = 0.0,
        time_inputs: PositiveInt = 1,
    ) -> None:
        super().__init__()
        try:
            from diffusers import UNet2DModel
        except ImportError:
            raise ConfigError(
                "network=diffusers_unet needs diffusers: pip install -e '.[export]'"
            ) from None
        if len(block_out_channels) != len(down_block_types) or len(up_block_types) != len(
            down_block_types
        ):
            raise ValueError(
                f"network.block_out_channels, down_block_types and up_block_types need one entry "
                f"per level; got {len(block_out_channels)}, {len(down_block_types)}, "
                f"{len(up_block_types)}"
            )
        self.num_classes = num_classes if class_cond else None
        self.unet = UNet2DModel(
            sample_size=image_size,
            in_channels=in_channels,
            out_channels=in_channels * (2 if learn_sigma else 1),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            attention_head_dim=attention_head_dim,
            norm_num_groups=norm_num_groups,
            dropout=dropout,
            num_class_embeds=num_classes + 1 if class_cond and num_classes else None,
        )
        self.time_inputs = time_inputs
        if time_inputs > 1:
            self.unet.time_embedding = ExtraTimes(
                self.unet.time_embedding, block_out_channels[0], time_inputs - 1
            )

    def forward(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        labels = None
        if self.num_classes is not None:
            null = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
            labels = null if y is None else torch.where(y < 0, null, y.long())
        times = time_columns(k, self.time_inputs)
        if self.time_inputs > 1:
            self.unet.time_embedding.times = torch.stack(times[1:], 1)
        return self.unet(x, times[0], class_labels=labels).sample
