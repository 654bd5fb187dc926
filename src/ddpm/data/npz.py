"""Image batches in ``.npz`` files, as other frameworks write them, and reference batches in the
format of ADM's evaluator (guided-diffusion's ``evaluations/evaluator.py``).

Read: ``arr_0`` (ADM's sample and reference batches, ``np.savez(path, images)`` of a diffusers
pipeline's ``output_type="np"`` output, k-diffusion's and DiT's sample scripts), ours ``images``
(``sample.py``) or ``samples`` (float in [-1, 1], NCHW). Integer images are 0..255; float images
are in [0, 1] (diffusers) unless negative values show [-1, 1]. Channels last (NHWC) or first.
Labels, when present: ours ``labels``, or ``arr_1`` (ADM's class-conditional sample batches).

Written: ``arr_0`` uint8 NHWC, with the statistics ADM's evaluator reads when present (``mu``,
``sigma`` of the pool features; ``mu_s``, ``sigma_s`` of the spatial ones), plus ours:
``mu_dinov2``/``sigma_dinov2``, and metadata (``split``, ``dataset``, ``feature_extractor``,
``num_images`` the statistics were computed from, ``dataset_config``) as 0-d string arrays, which
ADM's evaluator ignores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IMAGE_KEYS = ("images", "arr_0", "samples")
LABEL_KEYS = ("labels", "arr_1")  # ours (sample.py), ADM's class-conditional sample batches
STAT_KEYS = {"pool": ("mu", "sigma"), "spatial": ("mu_s", "sigma_s"), "dinov2": ("mu_dinov2", "sigma_dinov2")}  # fmt: skip
META_KEYS = ("split", "dataset", "feature_extractor", "num_images", "dataset_config", "dinov2")


class NpzError(ValueError):
    """An ``.npz`` file that holds no image batch we can read; the message names the file."""


@dataclass
class ImageBatch:
    """``images``: uint8 NCHW; ``stats``: space -> (mu, sigma) float64; ``meta``: strings;
    ``labels``: int64, one per image, when the file holds them."""

    images: Tensor
    stats: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    labels: Tensor | None = None

    def data_space(self) -> Tensor:
        """The images as float in [-1, 1] (how samples live in this framework)."""
        return self.images.double() / 127.5 - 1


def _to_uint8_nchw(a: np.ndarray, path: Path, key: str) -> Tensor:
    if a.ndim == 3:  # (N, H, W): grey
        a = a[..., None]
    if a.ndim != 4:
        raise NpzError(f"{path}: {key} has shape {a.shape}; expected images (N, H, W, C)")
    if a.shape[-1] not in (1, 3, 4) and a.shape[1] in (1, 3, 4):
        a = a.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    if a.shape[-1] not in (1, 3):
        raise NpzError(f"{path}: {key} has shape {a.shape}; expected 1 or 3 channels")
    if np.issubdtype(a.dtype, np.integer):
        if a.min(initial=0) < 0 or a.max(initial=0) > 255:
            raise NpzError(f"{path}: {key} holds integers outside 0..255")
        u8 = a.astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise NpzError(f"{path}: {key} holds NaN or infinite values")
        lo = -1.0 if key == "samples" or a.min(initial=0) < 0 else 0.0
        scaled = (a.astype(np.float64) - lo) / (1.0 - lo) * 255
        u8 = np.clip(np.round(scaled), 0, 255).astype(np.uint8)  # rounded, as diffusers saves
    else:
        raise NpzError(f"{path}: {key} has dtype {a.dtype}; expected uint8 or float images")
    return torch.from_numpy(np.ascontiguousarray(u8.transpose(0, 3, 1, 2)))


def read_batch(path: str | Path) -> ImageBatch:
    """The images of an ``.npz`` file (the first of ``images``, ``arr_0``, ``samples``), with the
    statistics and metadata a reference batch carries."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise NpzError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            key = next((k for k in IMAGE_KEYS if k in keys), None)
            if key is None:
                raise NpzError(
                    f"{path} holds {sorted(keys)}; expected images under one of {list(IMAGE_KEYS)}"
                )
            images = _to_uint8_nchw(f[key], path, key)
            stats = {
                space: (torch.from_numpy(f[m]).double(), torch.from_numpy(f[s]).double())
                for space, (m, s) in STAT_KEYS.items()
                if m in keys and s in keys
            }
            meta = {k: str(f[k]) for k in META_KEYS if k in keys}
            labels = read_labels(f, len(images), path)
    except (OSError, ValueError) as e:
        if isinstance(e, NpzError):
            raise
        raise NpzError(f"{path} is not a readable .npz file ({str(e).splitlines()[0]})") from None
    return ImageBatch(images, stats, meta, labels)


def read_labels(f, n: int, path: Path) -> Tensor | None:
    """The ``n`` labels of an open ``.npz`` file ``f`` (``labels``, else ``arr_1``; ``None``
    when it has neither); refused, naming the file, unless they are ``n`` integers."""
    key = next((k for k in LABEL_KEYS if k in f.files), None)
    if key is None:
        return None
    a = f[key]
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
        raise NpzError(
            f"{path}: {key} has shape {a.shape} and dtype {a.dtype}; expected {n} integer labels"
        )
    return torch.from_numpy(a.astype(np.int64))


def write_reference(path: str | Path, batch: ImageBatch) -> Path:
    """Write ``batch`` as an ADM-format reference batch (atomically: a temporary file, renamed)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"arr_0": batch.images.permute(0, 2, 3, 1).numpy()}
    for space, (mu, sigma) in batch.stats.items():
        m, s = STAT_KEYS[space]
        arrays[m], arrays[s] = mu.numpy(), sigma.numpy()
    for k, v in batch.meta.items():
        arrays[k] = np.array(v if isinstance(v, str) else json.dumps(v))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # no key is allow_pickle (numpy stub)
    os.replace(tmp, path)
    return path
