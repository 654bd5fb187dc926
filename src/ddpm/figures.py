"""Pictures users look at: image grids, scatter plots over the data, forward/reverse strips."""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] floats to uint8 by rounding (not truncating) to the 256 levels."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def image_grid(
    images: Tensor, nrow: int | None = None, pad: int = 1, min_size: int = 256
) -> np.ndarray:
    """A grid of NCHW images in [-1, 1] as an HWC uint8 array, upscaled (nearest) so that small
    images such as 8x8 digits stay visible."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    imgs = to_uint8(images.detach().float().cpu())
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[
            :,
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + q * (w + pad) : pad + q * (w + pad) + w,
        ] = imgs[i]
    scale = max(1, math.ceil(min_size / max(grid.shape[1:])))
    grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    arr = grid.permute(1, 2, 0).numpy()
    return arr[..., 0] if c == 1 else arr


def save_image_grid(images: Tensor, path: str | Path, nrow: int | None = None) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, nrow)).save(path)
    return path


def save_scatter(
    points: Tensor, path: str | Path, reference: Tensor | None = None, title: str = ""
) -> Path:
    """Generated 2-D points (blue) over the data (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    # (N, 2) points transposed unpack to exactly x and y
    if reference is not None:
        ax.scatter(*cast("tuple[Tensor, Tensor]", reference.cpu().T), s=2, c="0.75", label="data")
    xy = cast("tuple[Tensor, Tensor]", points.detach().cpu().float().T)
    ax.scatter(*xy, s=2, c="tab:blue", label="samples")
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _save_with_column_labels(grid: np.ndarray, path: Path, labels: list[str] | None) -> Path:
    """An image grid with one label above each column (PNG), or the bare grid without labels."""
    from PIL import Image

    if not labels:
        Image.fromarray(grid).save(path)
        return path
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = grid.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100 + 0.3), dpi=100)
    ax = fig.add_axes((0, 0, 1, h / (h + 30)))
    ax.imshow(
        grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest"
    )
    ax.set_axis_off()
    for j, label in enumerate(labels):
        fig.text(
            (j + 0.5) / len(labels), 1 - 15 / (h + 30), label, ha="center", va="center", fontsize=7
        )
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_strip(
    frames: list[Tensor],
    path: str | Path,
    labels: list[str] | None = None,
    reference: Tensor | None = None,
) -> Path:
    """Frames along a chain, each labelled (e.g. with its time ``t``): for images, each frame is
    a batch (N, C, H, W) and frame j becomes column j (rows are samples); for points, one scatter
    panel per frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frames[0].ndim == 4:
        stacked = torch.stack(frames, dim=1)  # (N, F, C, H, W)
        n, f = stacked.shape[:2]
        grid = image_grid(stacked.reshape(n * f, *stacked.shape[2:]), nrow=f, min_size=60 * f)
        return _save_with_column_labels(grid, path, labels)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(2.2 * len(frames), 2.4))
    for j, (ax, pts) in enumerate(zip(np.atleast_1d(axes), frames)):
        if reference is not None:
            ax.scatter(*reference.cpu().T, s=1, c="0.8")
        ax.scatter(*pts.detach().cpu().float().T, s=1, c="tab:blue")
        lim = max(1.6, float(pts.abs().max()) * 1.05)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xticks([])
        ax.set_yticks([])
        if labels:
            ax.set_title(labels[j], fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
