"""Work split over devices by sample index, gathered back in index order.

Every rank takes a contiguous block of indices (no ``DistributedSampler`` padding, so no sample is
counted twice); results are padded to equal length for ``all_gather`` and trimmed after. Since
sample ``i`` is seeded by ``(seed, i)``, the gathered result does not depend on the world size.
"""

from __future__ import annotations

import math
from typing import Any, cast

import lightning as L
import torch
from torch import Tensor


def make_fabric(
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    precision: str = "32-true",
) -> L.Fabric:
    """A launched Fabric: one process per device (DDP when more than one). Under Hydra the entry
    point has made Lightning relaunch ranks with the job's own overrides
    (:mod:`ddpm.cli.hydra_ddp`)."""
    multi = num_nodes > 1 or devices not in (1, "1")
    fabric = L.Fabric(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if multi else "auto",
        precision=cast(Any, precision),  # a config string, which Fabric checks
    )
    fabric.launch()
    return fabric


def shard(n: int, rank: int, world_size: int) -> range:
    """The contiguous block of ``range(n)`` that ``rank`` handles."""
    per = math.ceil(n / world_size)
    return range(min(n, rank * per), min(n, (rank + 1) * per))


def gather_in_order(fabric: L.Fabric | None, local: Tensor, n: int) -> Tensor:
    """Concatenate every rank's block (from :func:`shard`) in index order; the full ``(n, ...)``
    tensor on every rank."""
    if fabric is None or fabric.world_size == 1:
        return local
    per = math.ceil(n / fabric.world_size)
    padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=fabric.device)
    padded[: len(local)] = local.to(fabric.device)
    gathered = cast(Tensor, fabric.all_gather(padded))  # (world, per, ...)
    return gathered.reshape(-1, *local.shape[1:])[:n].cpu()
