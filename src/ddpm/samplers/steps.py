"""Step lists: which code indices of the training schedule a sampler visits.

A step list is a 1-D LongTensor, strictly decreasing, of length ``steps``, ending at ``k = 0``
(for ``steps >= 2``). It is plain data: print it, pass it to any sampler. The previous timestep is
always the next entry of the list, never recomputed as ``k - T // steps`` (the diffusers DDIM
off-by-one).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

from ddpm.schedule import Schedule, k_at_log_snr

Spacing = Literal["uniform", "linspace", "leading", "trailing", "quadratic", "logsnr", "karras"]
SPACINGS: tuple[str, ...] = get_args(Spacing)


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


def timesteps(schedule: Schedule, steps: int, spacing: Spacing = "uniform") -> Tensor:
    """The descending step list of ``steps`` code indices into ``schedule``.

    * ``uniform`` (= ``linspace``): evenly spaced from ``T-1`` to ``0``, rounded;
    * ``leading``: ``0, c, 2c, ...`` with ``c = T // steps`` (DDIM paper; starts below ``T-1``);
    * ``trailing``: ``T-1, T-1-T/steps, ...`` (Lin et al. 2024), its last entry moved to ``0``;
    * ``quadratic``: quadratic in the step number (DDIM paper, for CIFAR-10);
    * ``logsnr``: uniform in ``lambda = log(alpha/sigma)`` (DPM-Solver's recommended spacing);
    * ``karras``: Karras et al.'s rho = 7 list in ``sigma = sqrt((1 - abar) / abar) = e^-lambda``
      from ``sigma(T-1)`` to ``sigma(0)``, each rounded to the trained index of nearest log-sigma,
      so the network is only evaluated at times it was trained on.

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
