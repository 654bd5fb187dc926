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


def time_columns(k: Tensor, inputs: int) -> list[Tensor]:
    """The time inputs of a network's ``c_noise`` as columns: ``(N,)`` for one time, ``(N,
    inputs)`` for several (MeanFlow's ``(t, t - r)``). The convention every network of ours
    follows: a network built with ``time_inputs=m`` takes ``c_noise`` of shape ``(N, m)`` and
    embeds each column with its own sinusoidal features, concatenated before its time MLP."""
    if inputs == 1:
        if k.ndim == 2 and k.shape[1] == 1:
            k = k[:, 0]
        if k.ndim != 1:
            raise ValueError(
                f"c_noise of shape {tuple(k.shape)}; this network takes one time, (N,)"
            )
        return [k]
    if k.ndim != 2 or k.shape[1] != inputs:
        raise ValueError(
            f"c_noise of shape {tuple(k.shape)}; this network takes {inputs} times, (N, {inputs})"
        )
    return list(k.unbind(1))


def multi_time_embedding(k: Tensor, dim: int, inputs: int = 1, embed=timestep_embedding) -> Tensor:
    """``embed`` (sinusoidal features of width ``dim``) of each time input, concatenated:
    ``(N, dim * inputs)`` (:func:`time_columns`)."""
    return torch.cat([embed(c, dim) for c in time_columns(k, inputs)], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoidal features followed by a two-layer MLP (Ho et al.: width 4 * ch, SiLU); with
    ``inputs`` > 1 the features of each time input are concatenated (:func:`time_columns`)."""

    def __init__(self, base_dim: int, dim: int, inputs: int = 1) -> None:
        super().__init__()
        self.base_dim, self.inputs = base_dim, inputs
        self.mlp = nn.Sequential(nn.Linear(base_dim * inputs, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, k: Tensor) -> Tensor:
        return self.mlp(multi_time_embedding(k, self.base_dim, self.inputs))


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
