"""Bits/dim of a checkpoint on the test split, split over devices by example. Each example's
noise comes from its own generator (the family's :class:`ddpm.models.Likelihood` seeds it by the
example's index), so the numbers do not depend on batch size or devices."""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.data.base import dataset_tensors
from ddpm.evaluation.distributed import gather_in_order, shard
from ddpm.evaluation.loading import LoadedModel
from ddpm.evaluation.progress import progress_bar
from ddpm.models import Likelihood


def per_example(fabric, x: Tensor, batch_size: int, fn, width: int, show_progress: bool) -> Tensor:
    """``fn(batch, start) -> (n, width)`` over this rank's share of ``x``, gathered in order on
    every rank: float64 of shape ``(len(x), width)``."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(len(x), rank, world)
    device = fabric.device if fabric else "cpu"
    bar = progress_bar("bits/dim", show_progress and rank == 0)
    rows = [
        fn(x[start : min(start + batch_size, idx.stop)].to(device), start).double().cpu()
        for start in bar(range(idx.start, idx.stop, batch_size))
    ]
    local = torch.cat(rows) if rows else torch.zeros(0, width, dtype=torch.float64)
    return gather_in_order(fabric, local, len(x))


def bits_per_dim(
    fabric,
    loaded: LoadedModel,
    test_set,
    method: str | bool,
    seed: int,
    batch_size: int,
    limit: int | None = None,
    show_progress: bool = True,
    **options,
) -> dict:
    """The model's likelihood ``method`` (``True``: its own bound, the VLB of a discrete chain or
    a VAE's ELBO; ``ode``: the probability-flow likelihood of any path) on the test split,
    summarised (``bpd``, ``bpd_stderr`` ...)."""
    likelihood: Likelihood = loaded.model.likelihood(method, seed, **options)
    x, _ = dataset_tensors(test_set, limit)
    values = per_example(
        fabric, x, batch_size, likelihood.batch, len(likelihood.columns), show_progress
    )
    return likelihood.summary(values)
