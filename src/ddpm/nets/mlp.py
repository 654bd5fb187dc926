"""An MLP denoiser with a time embedding, for 2-D toy data."""

from __future__ import annotations

from torch import Tensor, nn

from ddpm.checks import PositiveInt
from ddpm.nets.embeddings import TimeEmbedding, class_embedding, condition


class MLP(nn.Module):
    """``net(x_t, k, y=None)`` for points ``x_t`` of shape ``(N, dim)``: residual SiLU layers, the
    time (and optional class) embedding added at every layer."""

    def __init__(
        self,
        dim: PositiveInt = 2,
        hidden: PositiveInt = 256,
        depth: PositiveInt = 4,
        time_dim: PositiveInt = 128,
        num_classes: int | None = None,
        class_cond: bool = False,
        learn_sigma: bool = False,
        time_inputs: PositiveInt = 1,
    ) -> None:
        super().__init__()
        self.time_embed = TimeEmbedding(time_dim, hidden, time_inputs)
        self.class_embed = class_embedding(num_classes, class_cond, hidden)
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(depth)
        )
        self.out = nn.Sequential(
            nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim * (2 if learn_sigma else 1))
        )

    def forward(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        emb = condition(self.time_embed, self.class_embed, k, y, x)
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(h + emb)
        return self.out(h)
