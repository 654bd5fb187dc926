"""Step lists: the noise levels a sampler visits.

A step list is a float64 tensor of ``steps + 1`` noise levels (``sigma / alpha``, the
denoiser's ``sigma``), strictly decreasing from the path's ``sigma_max`` region and ending at
``0``: the network is called at the first ``steps`` levels, the last step goes to the data. It is
plain data: print it, pass it to any sampler, on any path. The next level is always the next
entry of the list, never recomputed as ``k - T // steps`` (the diffusers DDIM off-by-one).

Spacings are stated in the path's own sampling time (uniform, leading, trailing, quadratic:
:meth:`ddpm.paths.Path.time_grid`) or in the level itself (logsnr, karras, the same on every
path); on the discrete chain the time is the trained index, and with ``quantize`` the level-based
lists are rounded to trained indices too (:func:`timesteps`, the chain's integer lists).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

from ddpm.paths import Path
from ddpm.schedule import Schedule, k_at_log_snr

Spacing = Literal["uniform", "linspace", "leading", "trailing", "quadratic", "logsnr", "karras"]
SPACINGS: tuple[str, ...] = get_args(Spacing)
LEVEL_SPACINGS = ("logsnr", "karras")


def _strictly_increasing(ks: Tensor) -> Tensor:
    """Push duplicates produced by rounding up by one, keeping the top at ``ks[-1]``."""
    ks = ks.clone()
    for i in range(1, len(ks)):
        ks[i] = max(int(ks[i]), int(ks[i - 1]) + 1)
    return ks


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022) eq. 5: ``sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) -
    sigma_max^(1/rho)))^rho``, ``i = 0 .. N-1`` (float64, descending)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def level_spacing(sigma_min: float, sigma_max: float, steps: int, spacing: str) -> Tensor:
    """``steps`` descending levels: uniform in ``log sigma`` (``logsnr``: uniform in
    ``lambda = -log sigma``, DPM-Solver's recommended spacing) or Karras et al.'s rho = 7."""
    if spacing == "logsnr":
        lo, hi = math.log(sigma_min), math.log(sigma_max)
        return torch.linspace(hi, lo, steps, dtype=torch.float64).exp()
    return karras_sigmas(sigma_min, sigma_max, steps)


def unit_spacing(steps: int, spacing: str) -> Tensor:
    """``steps`` descending fractions ``u`` of a path's sampling range (1: its start, 0: its
    end): ``uniform`` (= ``linspace``) from 1 to 0; ``leading`` ``j / steps`` (below 1, as the
    DDIM paper's); ``trailing`` ``1 - j / steps`` (Lin et al. 2024: the uniform Euler grid of flow
    matching); ``quadratic`` in the step number (DDIM paper)."""
    j = torch.arange(steps, dtype=torch.float64)
    if spacing in ("uniform", "linspace"):
        u = torch.linspace(0, 1, steps, dtype=torch.float64)
    elif spacing == "leading":
        u = j / steps
    elif spacing == "trailing":
        u = 1 - (steps - 1 - j) / steps
    else:  # quadratic
        u = (j / (steps - 1)) ** 2
    return u.flip(0)


def timesteps(schedule: Schedule, steps: int, spacing: Spacing = "uniform") -> Tensor:
    """The descending list of ``steps`` trained indices of a discrete chain (``k = 0 .. T-1``).

    * ``uniform`` (= ``linspace``): evenly spaced from ``T-1`` to ``0``, rounded;
    * ``leading``: ``0, c, 2c, ...`` with ``c = T // steps`` (DDIM paper; starts below ``T-1``);
    * ``trailing``: ``T-1, T-1-T/steps, ...`` (Lin et al. 2024), its last entry moved to ``0``;
    * ``quadratic``: quadratic in the step number (DDIM paper, for CIFAR-10);
    * ``logsnr``: uniform in ``lambda = log(alpha/sigma)``, rounded to trained indices;
    * ``karras``: Karras et al.'s rho = 7 list from ``sigma(T-1)`` to ``sigma(0)``, each rounded
      to the trained index of nearest log-sigma.

    Rounding can give the same index twice; duplicates are pushed up by one (at most ``steps``
    distinct indices exist, so every list has exactly ``steps`` entries).
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
    elif spacing == "logsnr":
        lam = torch.linspace(
            schedule.log_snr[0].item(), schedule.log_snr[-1].item(), steps, dtype=torch.float64
        )
        ks = k_at_log_snr(schedule, lam).round().long()
    else:  # karras: sigma = exp(-lambda)
        lam = schedule.log_snr
        sig = karras_sigmas(math.exp(-lam[0].item()), math.exp(-lam[-1].item()), steps)
        ks = k_at_log_snr(schedule, -sig.log().flip(0)).round().long()
    ks = _strictly_increasing(ks)
    if ks[-1] > T - 1:  # pushed past the end: shift the tail back down
        ks = torch.minimum(ks, torch.arange(T - steps, T))
    return ks.flip(0)


def step_levels(path: Path, steps: int, spacing: Spacing = "uniform", quantize: bool = True):
    """The step list of ``steps`` network calls on ``path``: ``steps`` descending levels, then 0.

    On a discrete path the levels are those of :func:`timesteps`' trained indices; without
    ``quantize`` the level-based spacings (logsnr, karras) keep their exact levels."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if path.discrete and (quantize or spacing not in LEVEL_SPACINGS):
        levels = path.noise_level(timesteps(path.schedule, steps, spacing))
    elif steps == 1:
        levels = torch.tensor([path.sigma_max], dtype=torch.float64)
    elif spacing in LEVEL_SPACINGS:
        levels = level_spacing(path.sigma_min, path.sigma_max, steps, spacing)
    else:
        levels = path.noise_level(path.time_grid(unit_spacing(steps, spacing)))
    return torch.cat([levels.double(), torch.zeros(1, dtype=torch.float64)])


def adaptive_levels(path: Path) -> Tensor:
    """An adaptive solver's list: its ends ``[sigma_max, sigma_min, 0]``; it picks its own
    steps in between."""
    return torch.tensor([path.sigma_max, path.sigma_min, 0.0], dtype=torch.float64)
