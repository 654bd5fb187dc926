"""What sample.py and evaluate.py write: samples.npz, samples.png, trajectory.png, metrics.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from torch import Tensor

from ddpm.figures import save_image_grid, save_scatter, save_strip, to_uint8


def write_samples(
    out_dir: Path,
    x: Tensor,
    is_image: bool,
    labels: Tensor | None = None,
    trajectory: list[Tensor] | None = None,
    trajectory_labels: list[str] | None = None,
    reference: Tensor | None = None,
    latents: Tensor | None = None,
) -> None:
    """``samples.npz`` (``samples`` float32 in data space, ``images`` uint8 NHWC for images,
    ``labels``, and a latent model's ``latents`` before decoding), ``samples.png`` and, with frames, ``trajectory.png`` (each frame labelled with
    its time ``t``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"samples": x.float().numpy()}
    if is_image:
        arrays["images"] = to_uint8(x).permute(0, 2, 3, 1).numpy()
    if labels is not None:
        arrays["labels"] = labels.numpy()
    if latents is not None:
        arrays["latents"] = latents.float().numpy()
    tmp = out_dir / f".samples.npz.tmp-{os.getpid()}.npz"
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # no key is allow_pickle (numpy stub)
    os.replace(tmp, out_dir / "samples.npz")
    if is_image:
        save_image_grid(x[:256], out_dir / "samples.png")
    else:
        save_scatter(x, out_dir / "samples.png", reference)
    if trajectory:
        save_strip(trajectory, out_dir / "trajectory.png", trajectory_labels, reference)


def write_metrics(out_dir: Path, metrics: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    tmp = path.with_name(f".metrics.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, path)
    return path
