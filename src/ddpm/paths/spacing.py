"""Step spacings: the noise levels a sampler visits, as pure functions of a path's range.

Spacings are stated in the path's own sampling time (``uniform``, ``leading``, ``trailing``,
``quadratic``: fractions of its range, :func:`unit_spacing`, mapped by
:meth:`ddpm.paths.Path.time_grid`) or in the level itself (``logsnr``, ``karras``:
:func:`level_spacing`, the same on every path). The discrete chain's lists are trained indices
(:func:`timesteps`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import Tensor

from ddpm.schedule import Schedule, k_at_log_snr

if TYPE_CHECKING:
    from ddpm.paths.base import Path

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


def spaced_levels(path: Path, steps: int, spacing: Spacing) -> Tensor:
    """``steps`` descending levels of ``path`` (float64): the level-based spacings between its
    ``sigma_max`` and ``sigma_min``, the time-based ones on its :meth:`~Path.time_grid`."""
    if steps == 1:
        return torch.tensor([path.sigma_max], dtype=torch.float64)
    if spacing in LEVEL_SPACINGS:
        return level_spacing(path.sigma_min, path.sigma_max, steps, spacing)
    return path.noise_level(path.time_grid(unit_spacing(steps, spacing))).double()
