"""The Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers",
sec. 3): patchify, a fixed 2-D sin-cos position embedding, ``depth`` blocks conditioned by
adaLN-Zero on the noise-level embedding plus the class embedding, and a final adaLN layer with a
linear decoder back to patches (twice the channels with a learned variance).

Two details follow diffusers' ``DiTTransformer2DModel`` rather than the original code, so the
same weights give the same output in both (``python -m ddpm.export``): the time frequencies are
``10000^(-i / (half - 1))`` (diffusers' ``downscale_freq_shift=1``; the original divides by
``half``), and the attention projections are stored as one ``qkv`` matrix that export splits.
``conditioning: per_block`` gives every block its own time and class embedding, diffusers' layout
(its parameter count exactly); the default ``shared`` is the paper's single embedding.

Presets (``network=dit_s_2`` ...) are Table 1's depth, width and heads. REPA reads the tokens of a
block through :meth:`DiT.token_block` and :attr:`DiT.token_grid`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ddpm.checks import PositiveInt, Probability
from ddpm.nets.embeddings import multi_time_embedding

TIME_FEATURES = 256  # the sinusoidal features the time MLP reads (DiT's frequency_embedding_size)


def dit_time_features(c_noise: Tensor, dim: int = TIME_FEATURES) -> Tensor:
    """``[cos(c w_i), sin(c w_i)]``, ``w_i = 10000^(-i / (half - 1))`` (diffusers' convention)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0)
        * torch.arange(half, device=c_noise.device, dtype=torch.float32)
        / (half - 1)
    )
    args = c_noise.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """``[sin(p w_i), cos(p w_i)]``, ``w_i = 10000^(-i / (dim / 2))`` for each position ``p``."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    args = pos.reshape(-1).double()[:, None] * omega[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def sincos_2d(dim: int, grid: int) -> Tensor:
    """The fixed 2-D position embedding of a ``grid x grid`` token map, row-major: half the
    channels encode the column, half the row (MAE's and DiT's ``get_2d_sincos_pos_embed``)."""
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1).float()


class Conditioning(nn.Module):
    """``c = MLP(time features(c_noise)) + class embedding(y)``; ``y = -1`` or ``None`` is the
    null class of classifier-free guidance (index ``num_classes``)."""

    def __init__(self, hidden: int, num_classes: int | None, time_inputs: int = 1) -> None:
        super().__init__()
        self.time_inputs = time_inputs
        self.time = nn.Sequential(
            nn.Linear(TIME_FEATURES * time_inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        self.num_classes = num_classes
        self.labels = nn.Embedding(num_classes + 1, hidden) if num_classes else None

    def forward(self, c_noise: Tensor, y: Tensor | None) -> Tensor:
        features = multi_time_embedding(c_noise, TIME_FEATURES, self.time_inputs, dit_time_features)
        c = self.time(features.to(cast(nn.Linear, self.time[0]).weight.dtype))
        if self.labels is not None:
            assert self.num_classes is not None  # labels exist only with classes
            null = torch.full((c.shape[0],), self.num_classes, device=c.device, dtype=torch.long)
            y = null if y is None else torch.where(y < 0, null, y.long())
            c = c + self.labels(y)
        return c


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Self-attention and an MLP, each after a LayerNorm modulated by ``c`` and gated (adaLN-Zero:
    the modulation starts at zero, so the block starts as the identity)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
            nn.Linear(width, hidden),
        )  # fmt: skip
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def attention(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)
        x = x + gate1[:, None] * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """``net(x, c_noise[, y]) -> (N, C or 2C, H, W)`` for images ``(N, C, H, W)`` whose side
    ``patch_size`` divides. The input shape, classes and variance output come from the data and
    the model, as for every network here."""

    def __init__(
        self,
        in_channels: PositiveInt = 4,
        image_size: PositiveInt = 32,
        num_classes: int | None = None,
        class_cond: bool = False,
        learn_sigma: bool = False,
        patch_size: PositiveInt = 2,
        hidden_size: PositiveInt = 384,
        depth: PositiveInt = 12,
        num_heads: PositiveInt = 6,
        mlp_ratio: float = 4.0,
        dropout: Probability = 0.0,
        conditioning: Literal["shared", "per_block"] = "shared",
        time_inputs: PositiveInt = 1,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(
                f"network.patch_size={patch_size} does not divide the input size {image_size} "
                f"(an image side, or a latent side with latent=...); use a divisor of {image_size}"
            )
        if hidden_size % num_heads or (hidden_size // num_heads) % 2 or hidden_size % 4:
            raise ValueError(
                f"network.hidden_size={hidden_size} must split into network.num_heads={num_heads} "
                f"heads of even width and be a multiple of 4 (the 2-D position embedding)"
            )
        self.in_channels, self.patch, self.token_dim = in_channels, patch_size, hidden_size
        self.out_channels = in_channels * (2 if learn_sigma else 1)
        self.grid = image_size // patch_size
        classes = num_classes if class_cond and num_classes else None
        self.embed = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size)
        self.register_buffer("pos", sincos_2d(hidden_size, self.grid)[None], persistent=False)
        count = depth if conditioning == "per_block" else 1
        self.conditioning = nn.ModuleList(
            Conditioning(hidden_size, classes, time_inputs) for _ in range(count)
        )
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_size, num_heads, mlp_ratio, dropout) for _ in range(depth)
        )
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        self.out = nn.Linear(hidden_size, patch_size * patch_size * self.out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation: Xavier-uniform linears, the patch embedding as a linear,
        N(0, 0.02) time MLP and class table, and zero for every adaLN modulation and the output
        layer (each block starts as the identity, the network outputs zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.embed.weight.view(self.embed.weight.shape[0], -1))
        assert self.embed.bias is not None  # bias=True
        nn.init.zeros_(self.embed.bias)
        for cond in cast("Iterable[Conditioning]", self.conditioning):
            nn.init.normal_(cast(nn.Linear, cond.time[0]).weight, std=0.02)
            nn.init.normal_(cast(nn.Linear, cond.time[2]).weight, std=0.02)
            if cond.labels is not None:
                nn.init.normal_(cond.labels.weight, std=0.02)
        blocks = cast("Iterable[DiTBlock]", self.blocks)
        layers = [*(b.ada[1] for b in blocks), self.ada_out[1], self.out]
        for layer in cast("list[nn.Linear]", layers):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def token_grid(self) -> tuple[int, int]:
        """The token map's rows and columns (REPA resamples its target features to it)."""
        return self.grid, self.grid

    def token_block(self, depth: int) -> nn.Module:
        """The block whose output tokens ``(N, T, token_dim)`` are those at ``depth`` (1-based)."""
        if not 1 <= depth <= len(self.blocks):
            raise ValueError(f"depth {depth} is outside the network's 1..{len(self.blocks)} blocks")
        return self.blocks[depth - 1]

    def unpatchify(self, h: Tensor) -> Tensor:
        n, p, c, g = h.shape[0], self.patch, self.out_channels, self.grid
        h = h.reshape(n, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(n, c, g * p, g * p)

    def forward(self, x: Tensor, c_noise: Tensor, y: Tensor | None = None) -> Tensor:
        if c_noise.ndim == 0:
            c_noise = c_noise.expand(x.shape[0])
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos.to(x.dtype)
        conds = [cond(c_noise, y).to(h.dtype) for cond in self.conditioning]
        for i, block in enumerate(self.blocks):
            h = block(h, conds[i if len(conds) > 1 else 0])
        shift, scale = self.ada_out(conds[0]).chunk(2, dim=1)
        return self.unpatchify(self.out(modulate(self.norm_out(h), shift, scale)))


PRESETS = {  # Peebles & Xie (2023), Table 1: depth, hidden size, heads
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),
    "XL": (28, 1152, 16),
}
