"""The seed's model: the discrete variance-preserving chain of Ho et al. (2020), whose times are
its trained indices ``k = 0 .. T-1`` (``t = k + 1`` in the seed).

``alpha = sqrt(alpha_bar_k)``, ``sigma = sqrt(1 - alpha_bar_k)`` (eq. 31), noise level
``e^{-lambda_k}``; between indices the level is interpolated in log-SNR (as k-diffusion's
``sigma_to_t``), so a sampler may evaluate the network at any level in
``[level(0), level(T-1)]``, and at exactly ``k`` on a trained level (the map snaps to it).

What only this chain has lives here: Algorithm 1's reverse variances (fixed small and large,
learned, Analytic-DPM), the VLB losses and importance sampling of :mod:`ddpm.losses`, the mean
prediction ``mu`` (eq. 42), and quantizing levels to trained ones.
"""

from __future__ import annotations

import math
from typing import ClassVar, TypedDict

import torch
from torch import Tensor

from ddpm.analytic_variance import optimal_reverse_variance, require_gamma
from ddpm.checks import ConfigError
from ddpm.diffusion import q_sample
from ddpm.losses import training_losses
from ddpm.parameterization import from_x0, predict_x0_eps
from ddpm.paths.base import Path
from ddpm.paths.spacing import LEVEL_SPACINGS, Spacing, timesteps
from ddpm.schedule import Schedule, alpha_bar_at, k_at_log_snr
from ddpm.timestep_sampler import ImportanceSampler, UniformSampler

SNAP = 1e-9  # a real index this close to an integer is that trained index


class DiscreteLossOptions(TypedDict, total=False):
    """The training options only this chain takes (the other paths' losses ignore them)."""

    loss: str
    variance: str
    decoder: str
    vlb_weight: float
    min_snr_gamma: float


class DiscreteVarianceOptions(TypedDict, total=False):
    """What only this chain's reverse variances read (the other paths' ignore it)."""

    v: Tensor | None  # learned_range: the network's second output
    gamma: Tensor | None  # analytic: the Gamma estimates
    lambda2: float | None  # analytic: the variance of the kernel family


class DDPMPath(Path):
    """The discrete chain of a :class:`~ddpm.schedule.Schedule` (``conf/path/ddpm.yaml``, with
    the ``schedule`` group)."""

    name: ClassVar[str] = "ddpm"
    predictions: ClassVar[tuple[str, ...]] = ("eps", "x0", "v", "mu")
    discrete: ClassVar[bool] = True
    max_steps: int

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.levels = torch.exp(-schedule.log_snr)  # float64, increasing in k
        self.max_steps = schedule.num_timesteps
        self.t_min, self.t_max = 0.0, float(schedule.num_timesteps - 1)

    def __eq__(self, other) -> bool:
        return isinstance(other, DDPMPath) and torch.equal(
            self.schedule.alphas_cumprod, other.schedule.alphas_cumprod
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"DDPMPath({self.schedule!r})"

    @property
    def num_timesteps(self) -> int:
        return self.schedule.num_timesteps

    def sampling_levels(self, steps: int, spacing: Spacing, quantize: bool = True) -> Tensor:
        """Trained levels (:func:`ddpm.paths.spacing.timesteps`), or with ``quantize`` off the
        level-based spacings' exact levels, between the trained ones."""
        if quantize or spacing not in LEVEL_SPACINGS:
            return self.noise_level(timesteps(self.schedule, steps, spacing))
        return super().sampling_levels(steps, spacing, quantize)

    def check_steps(self, steps: int | None, spacing: Spacing, quantize: bool, key: str) -> None:
        """At most ``T`` trained levels to visit (``null``: all of them), unless the levels are
        real-valued (a level-based spacing without ``quantize``)."""
        trained = quantize or spacing not in LEVEL_SPACINGS
        if steps is not None and trained and steps > self.max_steps:
            raise ConfigError(
                f"{key}.steps={steps} is not valid; it must be an integer in "
                f"[1, {self.max_steps}] (schedule.num_timesteps of the model)"
            )

    # --- the forward process (integer k: the tables; real k: log-SNR interpolation) ------------
    def alpha_bar(self, t: Tensor) -> Tensor:
        if t.is_floating_point():
            return alpha_bar_at(self.schedule, t.cpu()).to(t.device)
        return self.schedule.alphas_cumprod.to(t.device)[t]

    def alpha(self, t: Tensor) -> Tensor:
        return self.alpha_bar(t).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        return (1.0 - self.alpha_bar(t)).sqrt()

    def noise_level(self, t: Tensor) -> Tensor:
        if t.is_floating_point():
            return super().noise_level(t)
        return self.levels.to(t.device)[t]

    def time_at(self, level: Tensor) -> Tensor:
        """The real-valued index of a level (log-SNR interpolation), exact at trained levels."""
        level = torch.as_tensor(level, dtype=torch.float64)
        k = k_at_log_snr(self.schedule, -level.log())
        near = k.round()
        return torch.where((k - near).abs() < SNAP, near, k)

    @property
    def sigma_min(self) -> float:
        return float(self.levels[0])

    @property
    def sigma_max(self) -> float:
        return float(self.levels[-1])

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        if t.is_floating_point():
            return super().q_sample(x0, t, noise)
        return q_sample(self.schedule, x0, t, noise)  # eq. 31 from the float64 tables

    # --- training ----------------------------------------------------------------------------------
    def sample_times(self, n: int, generator, device) -> Tensor:
        return UniformSampler(self.num_timesteps).sample(n, device, generator)[0]

    def time_sampler(self, kind: str = "uniform"):
        T = self.num_timesteps
        return ImportanceSampler(T) if kind == "importance" else UniformSampler(T)

    def time_fraction(self, t: Tensor) -> Tensor:
        return t / self.num_timesteps

    def losses(
        self, out, x0, x_t, t, noise, prediction, loss="simple", variance="fixed_small",
        decoder="discretized", vlb_weight=1e-3, min_snr_gamma=5.0,
    ) -> dict[str, Tensor]:  # fmt: skip
        """:func:`ddpm.losses.training_losses`: L_simple, the VLB (Prop. 2), hybrid or min-SNR."""
        return training_losses(
            self.schedule, out, x0, t, noise, x_t, prediction, loss, variance, decoder,
            vlb_weight, min_snr_gamma,
        )  # fmt: skip

    # --- the network: the index itself (a LongTensor at trained levels) -----------------------------
    def c_noise(self, t: Tensor) -> Tensor:
        """The trained index the network saw, ``timestep_map[t]`` (the identity unless the
        chain is respaced, :func:`ddpm.schedule.respace`); between trained levels the map
        interpolated linearly, as a float."""
        tmap = self.schedule.timestep_map.to(t.device)
        if not t.is_floating_point():
            return tmap[t]
        if torch.equal(t, t.round()):
            return tmap[t.long()]
        lo = t.floor().long().clamp(0, len(tmap) - 1)
        hi = (lo + 1).clamp(max=len(tmap) - 1)
        return (tmap[lo] + (t - lo) * (tmap[hi] - tmap[lo])).float()

    def time_from_c_noise(self, c: Tensor) -> Tensor:
        return c

    def network_input(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return x_t, self.c_noise(t).to(x_t.device)

    def x0(self, out: Tensor, x_t: Tensor, t: Tensor, prediction: str) -> Tensor:
        if not t.is_floating_point() or torch.equal(t, t.round()):
            k = t.long().to(x_t.device)
            return predict_x0_eps(self.schedule, prediction, out, x_t, k)[0]
        if prediction == "mu":
            raise ConfigError(
                "model.prediction=mu is the mean of one step of the chain: it is defined only at "
                "trained levels; sample with denoiser.quantize=true"
            )
        return super().x0(out, x_t, t, prediction)

    def target(self, x0: Tensor, eps: Tensor, x_t: Tensor, t: Tensor, prediction: str) -> Tensor:
        if prediction == "mu":
            return from_x0(self.schedule, "mu", x0, x_t, t.long().to(x_t.device))
        return super().target(x0, eps, x_t, t, prediction)

    # --- sampling ------------------------------------------------------------------------------------
    def reverse_variance(
        self, level: float, level_next: float, variance: str = "fixed_small", v=None,
        gamma: Tensor | None = None, lambda2: float | None = None,
    ) -> float | Tensor:  # fmt: skip
        """The reverse variance of the chain that jumps from ``level`` to ``level_next`` (a
        respaced chain keeps alpha_bar at both, Nichol & Dhariwal sec. 4), on the ``x / alpha``
        scale: the VP variance times ``1 + level'^2``. With ``beta = 1 - abar / abar'`` and
        ``beta_tilde = (1 - abar') / (1 - abar) beta`` (eq. 34): ``fixed_small`` beta_tilde,
        ``fixed_large`` beta (Ho et al. sec. 3.2), ``learned_range`` ``v log beta + (1 - v)
        log beta_tilde`` (Nichol & Dhariwal eq. 15, ``v`` the network's second output in [-1, 1],
        per element), ``analytic`` Analytic-DPM's optimum for the kernel family of variance
        ``lambda2`` (Bao et al. 2022 Theorem 1; ``beta_tilde`` for DDPM, DDIM's own for DDIM)."""
        a, ap = 1.0 / (1.0 + level**2), 1.0 / (1.0 + level_next**2)
        to_bar = 1.0 + level_next**2
        beta = 1.0 - a / ap
        beta_tilde = beta * (1.0 - ap) / (1.0 - a)
        if variance == "fixed_small":
            return beta_tilde * to_bar
        if variance == "fixed_large":
            return beta * to_bar
        if variance == "learned_range":
            frac = (v + 1.0) / 2.0
            return torch.exp(frac * math.log(beta) + (1.0 - frac) * math.log(beta_tilde)) * to_bar
        k = self.trained_index(level, "denoiser.variance=analytic")
        lam2 = beta_tilde if lambda2 is None else lambda2 / to_bar
        var = optimal_reverse_variance(
            torch.tensor(a, dtype=torch.float64), torch.tensor(ap, dtype=torch.float64),
            require_gamma(gamma)[k].double(), torch.tensor(lam2, dtype=torch.float64),
        )  # fmt: skip
        return max(var.item(), 1e-20) * to_bar

    def trained_index(self, level: float, what: str) -> int:
        k = float(self.time_at(torch.tensor([level], dtype=torch.float64)))
        if k != round(k):
            raise ConfigError(
                f"{what} is defined at trained levels only; keep denoiser.quantize=true"
            )
        return int(k)

    def quantize(self, level: float, up: bool = False) -> float:
        """The trained level nearest ``level`` in log-level, or with ``up`` the smallest at least
        ``level`` (churn: the noise added is never less than asked), at most ``level(T-1)``."""
        lv = self.levels
        if up:
            k = int(torch.searchsorted(lv, torch.tensor([level], dtype=torch.float64)))
        else:
            k = int(
                k_at_log_snr(
                    self.schedule, torch.tensor([-math.log(level)], dtype=torch.float64)
                ).round()
            )
        return float(lv[min(k, len(lv) - 1)])

    def describe(self, level: float) -> str:
        """``t = k + 1`` (the seed's time), ``t=0`` for the data."""
        if level == 0:
            return "t=0"
        k = float(self.time_at(torch.tensor([level], dtype=torch.float64)))
        return f"t={round(k) + 1}" if k == round(k) else f"t={k + 1:.1f}"

    def display_levels(self, frames: int) -> list[float]:
        """Evenly spaced seed times ``t = 0 .. T`` (k = t - 1)."""
        times = torch.linspace(0, self.num_timesteps, frames).round().long().tolist()
        return [0.0 if t == 0 else float(self.levels[t - 1]) for t in times]
