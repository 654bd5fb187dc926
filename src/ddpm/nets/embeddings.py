"""Time and class embeddings shared by the networks."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_embedding(k: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly real-valued) timesteps, Vaswani et al. (2017) sec. 3.5,
    as used by Ho et al. (2020): ``[sin(k w_i), cos(k w_i)]`` with ``w_i = max_period^(-i/half)``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=k.device, dtype=torch.float32) / half
    )
    args = k.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class TimeEmbedding(nn.Module):
    """Sinusoidal features followed by a two-layer MLP (Ho et al.: width 4 * ch, SiLU)."""

    def __init__(self, base_dim: int, dim: int) -> None:
        super().__init__()
        self.base_dim = base_dim
        self.mlp = nn.Sequential(nn.Linear(base_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, k: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(k, self.base_dim))


class ClassEmbedding(nn.Module):
    """Learned class embedding with one extra "null" class (index ``num_classes``) for the
    unconditional model of classifier-free guidance; ``y = None`` or ``y = -1`` means null."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y: Tensor | None, batch: int, device) -> Tensor:
        if y is None:
            y = torch.full((batch,), self.num_classes, device=device, dtype=torch.long)
        y = torch.where(y < 0, torch.full_like(y, self.num_classes), y.long())
        return self.table(y)


def class_embedding(num_classes: int | None, class_cond: bool, dim: int) -> ClassEmbedding | None:
    """The class embedding a network gets when it is class-conditional, else ``None``."""
    return ClassEmbedding(num_classes, dim) if class_cond and num_classes else None


def condition(
    time_embed: TimeEmbedding,
    class_embed: ClassEmbedding | None,
    k: Tensor,
    y: Tensor | None,
    x: Tensor,
) -> Tensor:
    """The conditioning vector every block sees: time embedding plus (optional) class embedding."""
    emb = time_embed(k)
    if class_embed is not None:
        emb = emb + class_embed(y, x.shape[0], x.device)
    return emb
