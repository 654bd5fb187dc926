"""Drawing samples on every rank: each rank draws its contiguous block of sample indices and the
blocks are gathered in index order, so the result does not depend on the number of devices."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.evaluation.distributed import gather_in_order, shard
from ddpm.evaluation.loading import LoadedModel
from ddpm.evaluation.progress import progress_bar
from ddpm.models import SamplingOptions
from ddpm.samplers import SamplerSpec


def make_labels(loaded: LoadedModel, class_label, n: int) -> Tensor | None:
    """One label per sample: a single class, or a list cycled over the samples. ``None`` on a
    class-conditional checkpoint cycles every class (0, 1, ..., C-1, 0, ...), as its training
    grids do: a draw from p(x) = sum_y p(y) p(x|y) with balanced classes, the way class-conditional
    models are scored (Dhariwal & Nichol 2021); ``guidance_scale=0`` gives the unconditional
    branch. ``None`` on an unconditional checkpoint: no labels."""
    classes = loaded.num_classes
    if class_label is None:
        if classes is None:
            return None
        class_label = list(range(classes))
    if classes is None:
        raise ConfigError(
            f"class_label={class_label} needs a class-conditional checkpoint "
            f"(model.conditional=true); {loaded.path} is unconditional"
        )
    labels = class_label if isinstance(class_label, (list, tuple)) else [class_label]
    for c in labels:
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < classes:
            raise ConfigError(
                f"class_label={c!r} is not valid; the checkpoint's dataset has classes "
                f"0..{classes - 1}"
            )
    return torch.tensor(labels, dtype=torch.long).repeat(n // len(labels) + 1)[:n]


def draw_distributed(
    fabric: L.Fabric | None,
    loaded: LoadedModel,
    sampler: SamplerSpec,
    options: SamplingOptions,
    num_samples: int,
    seed: int,
    batch_size: int,
    labels: Tensor | None = None,
    trajectory_frames: int = 0,
    show_progress: bool = True,
) -> tuple[Tensor, dict]:
    """All ``num_samples`` samples, each rank drawing its block of indices; identical on every rank
    and for any world size or batch size. ``info``: ``nfe`` per sample, ``method``, and the kept
    trajectory frames (of rank 0's first batch); a latent model's raw latents (``latents``),
    gathered as the samples are."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(num_samples, rank, world)
    device = fabric.device if fabric else "cpu"
    bar = progress_bar("sampling", show_progress and rank == 0)
    local, info = loaded.model.generate(
        sampler, options, idx, seed, batch_size,
        labels[idx.start : idx.stop] if labels is not None else None, device,
        trajectory_frames if rank == 0 else 0, bar,
    )  # fmt: skip
    if info.get("latents") is not None:
        info["latents"] = gather_in_order(fabric, info["latents"], num_samples)
    return gather_in_order(fabric, local, num_samples), info
