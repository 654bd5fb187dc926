"""Step lists: the noise levels a sampler visits.

A step list is a float64 tensor of ``steps + 1`` noise levels (``sigma / alpha``, the
denoiser's ``sigma``), strictly decreasing from the path's ``sigma_max`` region and ending at
``0``: the network is called at the first ``steps`` levels, the last step goes to the data. It is
plain data: print it, pass it to any sampler, on any path. The next level is always the next
entry of the list, never recomputed as ``k - T // steps`` (the diffusers DDIM off-by-one).

The levels come from the path (:meth:`ddpm.paths.Path.sampling_levels`; the spacings themselves are
:mod:`ddpm.paths.spacing`): on the discrete chain they are trained levels, and with ``quantize``
off the level-based lists keep their exact levels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.paths import Path
from ddpm.paths.spacing import (
    LEVEL_SPACINGS,
    SPACINGS,
    Spacing,
    karras_sigmas,
    level_spacing,
    timesteps,
    unit_spacing,
)


def step_levels(path: Path, steps: int, spacing: Spacing = "uniform", quantize: bool = True):
    """The step list of ``steps`` network calls on ``path``: ``steps`` descending levels
    (:meth:`ddpm.paths.Path.sampling_levels`), then 0."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    levels = path.sampling_levels(steps, spacing, quantize)
    return torch.cat([levels.double(), torch.zeros(1, dtype=torch.float64)])


def adaptive_levels(path: Path) -> Tensor:
    """An adaptive solver's list: its ends ``[sigma_max, sigma_min, 0]``; it picks its own
    steps in between."""
    return torch.tensor([path.sigma_max, path.sigma_min, 0.0], dtype=torch.float64)


__all__ = [
    "LEVEL_SPACINGS",
    "SPACINGS",
    "Spacing",
    "adaptive_levels",
    "karras_sigmas",
    "level_spacing",
    "step_levels",
    "timesteps",
    "unit_spacing",
]
