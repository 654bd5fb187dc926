"""Drawing samples on every rank: each rank draws its contiguous block of sample indices and the
blocks are gathered in index order, so the result does not depend on the number of devices."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.config import DenoiserConfig
from ddpm.evaluation.distributed import gather_in_order, shard
from ddpm.evaluation.loading import LoadedModel
from ddpm.evaluation.progress import progress_bar
from ddpm.samplers import SamplerSpec, draw_samples
from ddpm.vae import draw_vae_samples


def make_labels(model: LoadedModel, class_label, n: int) -> Tensor | None:
    """One label per sample: a single class, or a list cycled over the samples. ``None`` on a
    class-conditional checkpoint cycles every class (0, 1, ..., C-1, 0, ...), as its training
    grids do: a draw from p(x) = sum_y p(y) p(x|y) with balanced classes, the way class-conditional
    models are scored (Dhariwal & Nichol 2021); ``guidance_scale=0`` gives the unconditional
    branch. ``None`` on an unconditional checkpoint: no labels."""
    if class_label is None:
        if model.num_classes is None:
            return None
        class_label = list(range(model.num_classes))
    if model.num_classes is None:
        raise ConfigError(
            f"class_label={class_label} needs a class-conditional checkpoint "
            f"(model.conditional=true); {model.path} is unconditional"
        )
    labels = class_label if isinstance(class_label, (list, tuple)) else [class_label]
    for c in labels:
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < model.num_classes:
            raise ConfigError(
                f"class_label={c!r} is not valid; the checkpoint's dataset has classes "
                f"0..{model.num_classes - 1}"
            )
    return torch.tensor(labels, dtype=torch.long).repeat(n // len(labels) + 1)[:n]


def check_sampling(
    model: LoadedModel,
    sampler: SamplerSpec,
    denoiser: DenoiserConfig,
    class_label,
    guidance_scale: float,
    trajectory: bool = False,
) -> None:
    """Everything sample.py and evaluate.py refuse before drawing: options that the checkpoint
    cannot honour are errors, never silently ignored."""
    if model.is_vae:
        what = [
            name
            for name, on in (
                ("trajectory=true", trajectory),
                (f"guidance_scale={guidance_scale}", guidance_scale != 1.0),
                (f"denoiser.variance={denoiser.variance}", denoiser.variance is not None),
            )
            if on
        ]
        if what:
            raise ConfigError(
                f"{', '.join(what)}: {model.path} is a VAE (model=vae), sampled from its prior in "
                f"one decoder call; it has no reverse chain, guidance or reverse variance"
            )
        return
    sampler.check_steps(model.schedule.num_timesteps)
    model.variance(denoiser.variance)
    if guidance_scale != 1.0 and model.num_classes is None:
        raise ConfigError(
            f"guidance_scale={guidance_scale} needs class labels to guide towards; "
            f"{model.path} is unconditional"
        )


def draw_distributed(
    fabric: L.Fabric | None,
    model: LoadedModel,
    sampler: SamplerSpec,
    denoiser: DenoiserConfig,
    num_samples: int,
    seed: int,
    batch_size: int,
    labels: Tensor | None = None,
    guidance_scale: float = 1.0,
    trajectory_frames: int = 0,
    show_progress: bool = True,
) -> tuple[Tensor, dict]:
    """All ``num_samples`` samples, each rank drawing its block of indices; identical on every rank
    and for any world size or batch size. ``info``: ``nfe`` per sample, ``method``, and the kept
    trajectory frames (of rank 0's first batch)."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(num_samples, rank, world)
    device = fabric.device if fabric else "cpu"
    method = "vae_prior" if model.is_vae else sampler.name
    bar = progress_bar(f"sampling ({method})", show_progress and rank == 0)
    if model.is_vae:
        local = draw_vae_samples(
            model.net, model.shape, idx, seed, batch_size, device,
            model.recipe.decoder_noise, model.is_image, bar,
        )  # fmt: skip
        return gather_in_order(fabric, local, num_samples), {"nfe": 1, "method": method}
    local, info = draw_samples(
        model.denoiser_factory(
            denoiser.clip_x0, denoiser.variance, guidance_scale, denoiser.channels_last
        ),
        sampler,
        model.shape,
        idx,
        seed,
        batch_size,
        labels[idx.start : idx.stop] if labels is not None else None,
        device,
        trajectory_frames if rank == 0 else 0,
        progress=bar,
    )
    info["method"] = method
    return gather_in_order(fabric, local, num_samples), info
