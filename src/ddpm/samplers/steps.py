"""Step lists (which code indices a sampler visits) and per-sample noise.

A step list is a 1-D LongTensor, strictly decreasing, of length ``steps``, ending at ``k = 0``
(for ``steps >= 2``). It is plain data: print it, pass it to any sampler. The previous timestep is
always the next entry of the list, never recomputed as ``k - T // steps`` (the diffusers DDIM
off-by-one).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from ddpm.schedule import Schedule, k_at_log_snr

Spacing = Literal["linspace", "uniform", "leading", "trailing", "quadratic", "logsnr"]
SPACINGS: tuple[str, ...] = get_args(Spacing)


def _strictly_increasing(ks: Tensor) -> Tensor:
    """Push duplicates produced by rounding up by one, keeping the top at ``ks[-1]``."""
    ks = ks.clone()
    for i in range(1, len(ks)):
        ks[i] = max(int(ks[i]), int(ks[i - 1]) + 1)
    return ks


def timesteps(schedule: Schedule, steps: int, spacing: Spacing = "linspace") -> Tensor:
    """The descending step list of ``steps`` code indices into ``schedule``.

    * ``linspace`` / ``uniform``: evenly spaced from ``T-1`` to ``0``, rounded;
    * ``leading``: ``0, c, 2c, ...`` with ``c = T // steps`` (DDIM paper; starts below ``T-1``);
    * ``trailing``: ``T-1, T-1-T/steps, ...`` (Lin et al. 2024), its last entry moved to ``0``;
    * ``quadratic``: quadratic in the step number (DDIM paper, for CIFAR-10);
    * ``logsnr``: uniform in ``lambda = log(alpha/sigma)`` (DPM-Solver's recommended spacing).
    """
    T = schedule.num_timesteps
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in [1, {T}] (the schedule's T), got {steps!r}")
    if steps == 1:
        return torch.tensor([T - 1])
    j = torch.arange(steps, dtype=torch.float64)
    if spacing in ("linspace", "uniform"):
        ks = torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long()
    elif spacing == "leading":
        ks = (j * (T // steps)).long()
    elif spacing == "trailing":
        ks = (T - (steps - 1 - j) * (T / steps)).round().long() - 1
        ks[0] = 0
    elif spacing == "quadratic":
        ks = ((j / (steps - 1)) ** 2 * (T - 1)).round().long()
    else:  # logsnr
        lam = torch.linspace(
            schedule.log_snr[0].item(), schedule.log_snr[-1].item(), steps, dtype=torch.float64
        )
        ks = k_at_log_snr(schedule, lam).round().long()
    ks = _strictly_increasing(ks)
    if ks[-1] > T - 1:  # pushed past the end: shift the tail back down
        ks = torch.minimum(ks, torch.arange(T - steps, T))
    return ks.flip(0)


Generator = torch.Generator | list[torch.Generator] | None


def randn(shape, generator: Generator = None, device=None, dtype=None) -> Tensor:
    """Standard normal noise. With a list of generators, row ``i`` comes from ``generator[i]``,
    so sample ``i`` is the same whatever the batch it is drawn in (EDM's per-sample seeding).
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


def sample_generators(seed: int, indices) -> list[torch.Generator]:
    """One generator per sample index, seeded from ``(seed, index)`` only."""
    return [torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i)) for i in indices]
