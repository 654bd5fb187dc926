"""Noise schedules as frozen float64 data.

Conventions used everywhere in :mod:`ddpm`:

* The code timestep index is ``k = 0 .. T-1``; the paper's (and the seed's) time is ``t = k + 1``.
  So ``betas[k]`` is the seed's ``beta_t`` with ``t = k + 1``, and ``x`` "at k" is ``x_{k+1}``.
* ``alphas_cumprod[k] = prod_{i <= k} (1 - betas[i])`` is ``alpha_bar_t`` of Ho et al.; the seed
  writes the same product as ``alpha_t`` (Prop. 3, eq. 31). The code always says ``alpha_bar`` /
  ``alphas_cumprod`` to avoid the clash with the per-step ``alphas = 1 - betas``.
* ``alphas_cumprod_prev[k]`` is ``alpha_bar_{t-1}``, with ``alpha_bar_0 = 1`` (clean data).
* Every table is computed once, in float64; :func:`extract` gathers and casts values for a batch
  of indices: no schedule arithmetic happens inside training or sampling loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Literal, cast, get_args

import torch
from torch import Tensor

from ddpm.betas import BUILDERS
from ddpm.checks import Range
from ddpm.targets import check_arguments, check_call

ScheduleName = Literal["linear", "cosine", "sigmoid", "quadratic"]
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)


@dataclass(frozen=True, eq=False)
class Schedule:
    """A variance schedule ``beta_1 .. beta_T`` and every table derived from it (float64).

    The stored quantity is ``alphas_cumprod`` (so respacing keeps it bit for bit); build from
    betas with :meth:`from_betas`. ``timestep_map[j]`` is the index of step ``j`` in the schedule
    the network was trained on: the identity for a full schedule, the kept steps for a respaced
    one (:func:`respace`). Networks are always called with ``timestep_map[j]``, samplers index
    tables with ``j``.
    """

    alphas_cumprod: Tensor
    name: str = "custom"
    timestep_map: Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        abar = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64)
        if abar.ndim != 1 or abar.numel() == 0:
            raise ValueError(
                f"alphas_cumprod must be a non-empty 1-D sequence, got {tuple(abar.shape)}"
            )
        prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        if not bool(((abar > 0) & (abar < prev)).all()):
            raise ValueError("alphas_cumprod must decrease strictly from below 1 and stay positive")
        object.__setattr__(self, "alphas_cumprod", abar)
        tmap = self.timestep_map
        tmap = torch.arange(len(abar)) if tmap is None else torch.as_tensor(tmap, dtype=torch.long)
        if tmap.shape != abar.shape:
            raise ValueError("timestep_map must have one entry per step")
        object.__setattr__(self, "timestep_map", tmap)

    @classmethod
    def from_betas(cls, betas, name: str = "custom", timestep_map=None) -> Schedule:
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every beta must lie in (0, 1)")
        return cls(torch.cumprod(1.0 - betas, dim=0), name=name, timestep_map=timestep_map)

    @property
    def num_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    def __len__(self) -> int:
        return self.num_timesteps

    def __repr__(self) -> str:
        return f"Schedule(name={self.name!r}, num_timesteps={self.num_timesteps})"

    # --- eq. 9 / 14 and Prop. 3 (eq. 31) -------------------------------------------------------
    @cached_property
    def betas(self) -> Tensor:
        """``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}``; ``alpha_bar_t = prod_{i<=t} (1 - beta_i)``
        is the seed's ``alpha_t`` (eq. 31)."""
        return 1.0 - self.alphas_cumprod / self.alphas_cumprod_prev

    @cached_property
    def alphas(self) -> Tensor:
        return 1.0 - self.betas

    @cached_property
    def alphas_cumprod_prev(self) -> Tensor:
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])

    @cached_property
    def sqrt_alphas_cumprod(self) -> Tensor:
        return self.alphas_cumprod.sqrt()

    @cached_property
    def sqrt_one_minus_alphas_cumprod(self) -> Tensor:
        return (1.0 - self.alphas_cumprod).sqrt()

    @cached_property
    def log_one_minus_alphas_cumprod(self) -> Tensor:
        return torch.log1p(-self.alphas_cumprod)

    @cached_property
    def sqrt_recip_alphas_cumprod(self) -> Tensor:
        return self.alphas_cumprod.rsqrt()

    @cached_property
    def sqrt_recipm1_alphas_cumprod(self) -> Tensor:
        return (1.0 / self.alphas_cumprod - 1.0).sqrt()

    @cached_property
    def snr(self) -> Tensor:
        """Signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)`` (Kingma et al. 2021)."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    @cached_property
    def log_snr(self) -> Tensor:
        """``lambda = log(alpha / sigma)``, half the log-SNR, the time of DPM-Solver (Lu et al.)."""
        return 0.5 * (self.alphas_cumprod.log() - self.log_one_minus_alphas_cumprod)

    # --- Prop. 4 (eq. 32-34) ----------------------------------------------------------------------
    @cached_property
    def posterior_variance(self) -> Tensor:
        """``beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t`` (eq. 34)."""
        return self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    @cached_property
    def posterior_log_variance_clipped(self) -> Tensor:
        """``log beta_tilde_t`` with the first entry (``beta_tilde_1 = 0``) replaced by
        ``beta_tilde_2``, as Ho et al. and Nichol & Dhariwal do, so the log is finite. With T = 1
        there is no second entry and ``beta_1`` stands in."""
        var = self.posterior_variance
        return torch.cat([self._first_step_variance.reshape(1), var[1:]]).log()

    @cached_property
    def posterior_mean_coef1(self) -> Tensor:
        """Coefficient of ``x_0`` in ``mu_tilde`` (eq. 33)."""
        return self.betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)

    @cached_property
    def posterior_mean_coef2(self) -> Tensor:
        """Coefficient of ``x_t`` in ``mu_tilde`` (eq. 33)."""
        return (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1.0 - self.alphas_cumprod)

    @cached_property
    def fixed_large_log_variance(self) -> Tensor:
        """``log sigma_t^2`` for ``sigma_t^2 = beta_t`` (Ho et al. sec. 3.2), with the first entry
        set to ``beta_tilde_2`` so the decoder ``p(x_0|x_1)`` is not needlessly wide (their code)."""
        return torch.cat([self._first_step_variance.reshape(1), self.betas[1:]]).log()

    @cached_property
    def _first_step_variance(self) -> Tensor:
        """What both fixed variances use at ``t = 1``: ``beta_tilde_2`` (``beta_1`` when T = 1)."""
        return self.posterior_variance[1] if self.num_timesteps > 1 else self.betas[0]


def extract(values: Tensor, k: Tensor, shape: torch.Size | tuple[int, ...], dtype=None) -> Tensor:
    """Gather ``values[k]`` for a batch of indices and shape it to broadcast against ``shape``.

    The float64 table is gathered on ``k``'s device and cast to ``dtype`` (float32 by default):
    the only place schedule values meet data.
    """
    out = values.to(device=k.device)[k.long()]
    out = out.to(dtype or torch.get_default_dtype())
    return out.reshape(len(k), *([1] * (len(shape) - 1)))


def make_schedule(
    name: ScheduleName, num_timesteps: Annotated[int, Range(1)] = 1000, **kwargs
) -> Schedule:
    """Build a named schedule: ``linear``, ``cosine``, ``sigmoid`` or ``quadratic``.

    ``kwargs`` go to the builder (``beta_start``/``beta_end`` for linear and quadratic, ``s`` for
    cosine, ``start``/``end``/``tau`` for sigmoid).
    """
    check_arguments(make_schedule, {"name": name, "num_timesteps": num_timesteps}, "schedule.")
    build = cast("Callable[..., Tensor]", BUILDERS[name])  # a dict of differing signatures
    check_call(build, kwargs, "schedule", provided=["num_timesteps"])
    return Schedule.from_betas(build(num_timesteps, **kwargs), name=name)


def from_alphas_cumprod(
    alphas_cumprod: Tensor, name: str = "custom", timestep_map=None
) -> Schedule:
    """The schedule whose ``alpha_bar`` is the given decreasing sequence:
    ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}`` with ``alpha_bar_0 = 1``."""
    return Schedule(alphas_cumprod, name=name, timestep_map=timestep_map)


def respace(schedule: Schedule, kept_steps) -> Schedule:
    """The Markov chain that visits only ``kept_steps`` (code indices into ``schedule``).

    ``alpha_bar`` at every kept step is kept exactly (Nichol & Dhariwal 2021, sec. 4): the new
    betas are ``1 - alpha_bar[k_j] / alpha_bar[k_{j-1}]``. ``timestep_map`` records the original
    indices so the network is called with the times it was trained on.
    """
    kept = torch.as_tensor(kept_steps, dtype=torch.long).unique(sorted=True)
    if len(kept) == 0 or kept[0] < 0 or kept[-1] >= schedule.num_timesteps:
        raise ValueError(f"kept_steps must be indices in [0, {schedule.num_timesteps - 1}]")
    return from_alphas_cumprod(
        schedule.alphas_cumprod[kept],
        name=f"{schedule.name}[respaced {len(kept)}]",
        timestep_map=schedule.timestep_map[kept],
    )


# --- continuous time between the discrete steps (for ODE solvers) ---------------------------------


def log_snr_at(schedule: Schedule, k: Tensor) -> Tensor:
    """``lambda(k)`` for real-valued ``k`` in [0, T-1]: piecewise linear in ``k`` between the table's
    values, exact at integer ``k``. float64, on ``k``'s device."""
    table = schedule.log_snr.to(k.device)
    k = k.to(torch.float64).clamp(0, schedule.num_timesteps - 1)
    lo = k.floor().long().clamp(max=max(schedule.num_timesteps - 2, 0))
    hi = (lo + 1).clamp(max=schedule.num_timesteps - 1)
    w = k - lo
    return table[lo] * (1 - w) + table[hi] * w


def k_at_log_snr(schedule: Schedule, lam: Tensor) -> Tensor:
    """Inverse of :func:`log_snr_at` (``lambda`` decreases with ``k``): the real-valued index."""
    table = schedule.log_snr.to(lam.device)
    lam = lam.to(torch.float64).clamp(table[-1], table[0])
    # searchsorted needs ascending order: work on -lambda.
    hi = torch.searchsorted(-table, -lam).clamp(1, max(schedule.num_timesteps - 1, 1))
    lo = hi - 1
    span = table[lo] - table[hi]
    w = torch.where(span > 0, (table[lo] - lam) / span.clamp(min=1e-300), torch.zeros_like(lam))
    return lo.to(torch.float64) + w


def alpha_bar_at(schedule: Schedule, k: Tensor) -> Tensor:
    """``alpha_bar`` at real-valued ``k``: ``sigmoid(2 lambda(k))``."""
    return torch.sigmoid(2.0 * log_snr_at(schedule, k))
