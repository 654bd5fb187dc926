"""Randomness as an argument: per-sample generators, so that sample (or test example) ``i`` draws
the same noise whatever the batch it is in and whichever device draws it (EDM's per-sample
seeding)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

Generator = torch.Generator | list[torch.Generator] | None


def sample_generators(seed: int, indices: Iterable[int]) -> list[torch.Generator]:
    """One CPU generator per sample index, seeded from ``(seed, index)`` only."""
    return [torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i)) for i in indices]


def randn(shape, generator: Generator = None, device=None, dtype=None) -> Tensor:
    """Standard normal noise. With a list of generators, row ``i`` comes from ``generator[i]``.
    Noise is drawn on the CPU and moved, so it is the same on every device type."""
    dtype = dtype or torch.get_default_dtype()
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
        out = torch.stack(
            [torch.randn(tuple(shape[1:]), generator=g, dtype=dtype) for g in generator]
        )
    else:
        out = torch.randn(tuple(shape), generator=generator, dtype=dtype)
    return out.to(device) if device is not None else out


def step_generator(seed: int, rank: int, step: int, device=None) -> torch.Generator:
    """The generator of one training step: a function of ``(seed, rank, step)`` only, so ranks
    draw different noise and a resumed run draws what the uninterrupted one would."""
    g = torch.Generator(device=device)
    g.manual_seed(hash((int(seed), int(rank), int(step))) % (2**63))
    return g


def fork_init(seed: int, build):
    """``build()`` under its own seed, leaving the global random state as it was (so a run with
    a head of its own, REPA's projector or a discriminator, draws the data order of one without)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()
