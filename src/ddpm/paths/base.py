"""What every formulation ("path") states: the forward process, the training distribution of
noise levels, the loss weight and the network's preconditioning.

A path is ``x_t = alpha(t) x_0 + sigma(t) eps`` in its own time ``t`` (an integer index for the
discrete DDPM chain, a real ``t`` for the continuous ones, ``sigma`` itself for EDM). What the
samplers see is only the **noise level** ``level = sigma(t) / alpha(t)`` (EDM's ``sigma``,
``e^{-lambda}`` with ``lambda`` the half log-SNR) and the state on the ``x / alpha`` scale,
``xbar = x_0 + level * eps``: in those coordinates every path is the same process (Karras et al.
2022, sec. 2 and eq. 4), so one sampler runs on every path and the path enters only through the
denoiser (:class:`ddpm.samplers.Denoiser`), the prior and the levels it offers (:meth:`sampling_levels`).

A network of a path is called ``net(c_in(t) x_t, c_noise(t)[, y])``; its output is turned into
``x_0`` by :meth:`Path.x0` for the model's ``prediction`` (eps, x0, Salimans' v, the velocity
``dx_t/dt``, or a path's own, e.g. EDM's ``F``), and the training target is :meth:`Path.target`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.likelihood import mean_flat
from ddpm.paths.spacing import Spacing, spaced_levels
from ddpm.timestep_sampler import TimeSampler

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ddpm.paths.ddpm import DiscreteLossOptions, DiscreteVarianceOptions

DISCRETE_ONLY = {
    "loss": ("simple", "the VLB terms and min-SNR weights are the discrete chain's"),
    "variance": ("fixed_small", "learned variances are trained by the discrete chain's VLB"),
    "timestep_sampling": ("uniform", "importance sampling weighs the discrete VLB terms"),
}


def broadcast(values: Tensor, like: Tensor) -> Tensor:
    """Per-example values ``(N,)`` shaped and cast to broadcast against ``like`` ``(N, ...)``."""
    return values.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def as_levels(level, n: int) -> Tensor:
    """A noise level (a float or a tensor of one or ``n`` values) as a float64 CPU tensor ``(n,)``."""
    out = torch.as_tensor(level, dtype=torch.float64).detach().cpu().reshape(-1)
    return out.expand(n).clone() if out.numel() == 1 else out


class Path(ABC):
    """A formulation: ``x_t = alpha(t) x_0 + sigma(t) eps``.

    Subclasses state ``alpha``, ``sigma`` (and their derivatives for the velocity), the map between
    ``t`` and the noise level, ``c_noise`` (what the network's time input receives) and its
    inverse, the training times, and the sampling range ``[t_min, t_max]`` (two attributes).
    Everything else has a default here that holds for every path with ``c_in = 1``.
    """

    name: ClassVar[str] = "path"
    predictions: ClassVar[tuple[str, ...]] = ("eps", "x0", "velocity")  # the first is "auto"
    discrete: ClassVar[bool] = False
    max_steps: int | None = None  # a sampler may visit at most this many levels
    t_min: float  # the smallest time a sampler visits before it steps to the data (level 0)
    t_max: float  # where sampling starts from the prior
    # options that change how the model is trained, not what it is: a run may resume with others
    training_only: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other) -> bool:
        """The same model: the same class and options, the training-only ones aside."""
        if type(other) is not type(self):
            return False
        mine, theirs = dict(vars(self)), dict(vars(other))
        for key in self.training_only:
            mine.pop(key, None), theirs.pop(key, None)
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]

    def check_range(self, low: str = "t_min", high: str = "t_max") -> None:
        """Refuse a sampling range that is empty (``path.t_min`` not below ``path.t_max``)."""
        if not self.t_min < self.t_max:
            raise ConfigError(
                f"path.{low}={self.t_min} is not valid; it must be below path.{high}={self.t_max}"
            )

    # --- the forward process ------------------------------------------------------------------
    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor:
        """The data coefficient ``alpha(t)``."""

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """The noise coefficient ``sigma(t)``."""

    def d_alpha(self, t: Tensor) -> Tensor:
        raise ConfigError(f"path={self.name} has no time derivative: no velocity prediction")

    def d_sigma(self, t: Tensor) -> Tensor:
        raise ConfigError(f"path={self.name} has no time derivative: no velocity prediction")

    def noise_level(self, t: Tensor) -> Tensor:
        """``sigma(t) / alpha(t)``: the currency of the samplers."""
        return self.sigma(t) / self.alpha(t)

    @abstractmethod
    def time_at(self, level: Tensor) -> Tensor:
        """The time whose noise level is ``level`` (float64), the inverse of :meth:`noise_level`."""

    @property
    def sigma_min(self) -> float:
        return float(self.noise_level(torch.tensor([self.t_min], dtype=torch.float64)))

    @property
    def sigma_max(self) -> float:
        return float(self.noise_level(torch.tensor([self.t_max], dtype=torch.float64)))

    def time_grid(self, u: Tensor) -> Tensor:
        """The times of the fractions ``u`` of the sampling range (0: ``t_min``, 1: ``t_max``):
        how the path discretizes its time (linear in ``t`` by default), which the time-based
        spacings (uniform, leading, trailing, quadratic) are stated in."""
        return self.t_min + u * (self.t_max - self.t_min)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t = alpha(t) x_0 + sigma(t) eps`` (the seed's eq. 31 for the VP chain)."""
        return broadcast(self.alpha(t), x0) * x0 + broadcast(self.sigma(t), x0) * noise

    def scale_at(self, level: float) -> float:
        """``alpha`` at a noise level: the factor from the ``x / alpha`` scale to the path's own;
        1 at level 0 (the data)."""
        if level == 0:
            return 1.0
        t = self.time_at(torch.tensor([float(level)], dtype=torch.float64))
        return float(self.alpha(t))

    def prior_scale(self, level: float) -> float:
        """The standard deviation of the prior at ``level`` on the ``x / alpha`` scale: a unit
        Gaussian in the path's own scale, ``1 / alpha``."""
        return 1.0 / self.scale_at(level)

    # --- training ----------------------------------------------------------------------------------
    @abstractmethod
    def sample_times(self, n: int, generator: torch.Generator | None, device) -> Tensor:
        """``n`` training times from the path's training distribution."""

    def time_sampler(self, kind: str = "uniform"):
        """The object the training module draws times from (``sample``/``update``)."""
        return TimeSampler(self)

    def time_fraction(self, t: Tensor) -> Tensor:
        """Where ``t`` lies in the training range, in [0, 1] (the loss quartiles logged)."""
        return (t / self.t_max).clamp(0, 1)

    def couple(self, x0: Tensor, noise: Tensor, labels: Tensor | None = None) -> Tensor:
        """The noise paired with each example (independent by default)."""
        return noise

    def loss_weight(self, t: Tensor) -> Tensor:
        """Per-example weight on ``||out - target||^2``."""
        return torch.ones_like(t, dtype=torch.float32)

    def losses(
        self, out: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, noise: Tensor, prediction: str,
        **_discrete_options: Unpack[DiscreteLossOptions],
    ) -> dict[str, Tensor]:  # fmt: skip
        """Per-example ``{"loss", "mse"}``: the weighted and the plain squared error of the
        network output against the target of its prediction type."""
        target = self.target(x0, noise, x_t, t, prediction)
        mse = mean_flat((out - target) ** 2)
        return {"loss": mse * self.loss_weight(t).to(mse), "mse": mse}

    # --- the network ---------------------------------------------------------------------------------
    @abstractmethod
    def c_noise(self, t: Tensor) -> Tensor:
        """What the network's time input receives at ``t``."""

    @abstractmethod
    def time_from_c_noise(self, c: Tensor) -> Tensor:
        """The inverse of :meth:`c_noise` (exact oracles use it)."""

    def c_in(self, t: Tensor) -> Tensor | None:
        """The input scaling; ``None`` for 1 (the network sees ``x_t``)."""
        return None

    def network_input(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(c_in x_t, c_noise)`` as the network takes them."""
        c_in = self.c_in(t)
        x_in = x_t if c_in is None else broadcast(c_in, x_t) * x_t
        return x_in, self.c_noise(t).to(x_t.device)

    def x0(self, out: Tensor, x_t: Tensor, t: Tensor, prediction: str) -> Tensor:
        """The ``x_0`` implied by a network output: eps ``(x_t - sigma out) / alpha``; x0; v
        (Salimans & Ho 2022, for ``alpha^2 + sigma^2 = 1``) ``alpha x_t - sigma out``; velocity
        ``out = alpha' x_0 + sigma' eps``, solved with ``x_t``."""
        a, s = broadcast(self.alpha(t), x_t), broadcast(self.sigma(t), x_t)
        if prediction == "eps":
            return (x_t - s * out) / a
        if prediction == "x0":
            return out
        if prediction == "v":
            return a * x_t - s * out
        if prediction == "velocity":
            da, ds = broadcast(self.d_alpha(t), x_t), broadcast(self.d_sigma(t), x_t)
            return (ds * x_t - s * out) / (a * ds - s * da)
        raise ConfigError(f"path={self.name} has no prediction {prediction!r}")

    def target(self, x0: Tensor, eps: Tensor, x_t: Tensor, t: Tensor, prediction: str) -> Tensor:
        """The network output that :meth:`x0` maps to ``x0`` (the regression target)."""
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        a, s = broadcast(self.alpha(t), x0), broadcast(self.sigma(t), x0)
        if prediction == "v":
            return a * eps - s * x0
        if prediction == "velocity":
            return broadcast(self.d_alpha(t), x0) * x0 + broadcast(self.d_sigma(t), x0) * eps
        raise ConfigError(f"path={self.name} has no prediction {prediction!r}")

    # --- sampling ------------------------------------------------------------------------------------
    def sampling_levels(self, steps: int, spacing: Spacing, quantize: bool = True) -> Tensor:
        """The ``steps`` descending levels a sampler visits before the data (a path whose
        network knows only some levels keeps to them when ``quantize``: the discrete chain)."""
        return spaced_levels(self, steps, spacing)

    def check_steps(self, steps: int | None, spacing: Spacing, quantize: bool, key: str) -> None:
        """Refuse a step count the path cannot visit (``null``: every trained level)."""
        if steps is None:
            raise ConfigError(
                f"{key}.steps=null walks every trained level of path=ddpm; path={self.name} is "
                f"continuous: give {key}.steps a number"
            )

    def reverse_variance(
        self, level: float, level_next: float, variance: str = "fixed_small",
        **_: Unpack[DiscreteVarianceOptions],
    ) -> float | Tensor:  # fmt: skip
        """The variance, on the ``x / alpha`` scale, of the ancestral step from ``level`` to
        ``level_next``: ``fixed_small``, the posterior ``q(x_s | x_t, x_0)`` of any path,
        ``level'^2 (level^2 - level'^2) / level^2`` (the seed's ``beta_tilde``, eq. 34, rescaled).
        The other reverse variances belong to the discrete chain (:mod:`ddpm.paths.ddpm`)."""
        if variance != "fixed_small":
            raise ConfigError(f"denoiser.variance={variance} needs path=ddpm")
        return level_next**2 * (level**2 - level_next**2) / level**2

    def quantize(self, level: float, up: bool = False) -> float:
        """The level a network of this path is evaluated at for ``level`` (itself: every level
        of a continuous path is trained)."""
        return level

    def describe(self, level: float) -> str:
        """A frame label for a noise level (its time)."""
        t = 0.0 if level == 0 else float(self.time_at(torch.tensor([level], dtype=torch.float64)))
        return f"t={t:.3g}"

    def display_levels(self, frames: int) -> list[float]:
        """Noise levels of the forward-noising figure, from the data (0) to the prior, evenly
        spaced in time."""
        ts = torch.linspace(0, self.t_max, frames, dtype=torch.float64)[1:]
        return [0.0, *self.noise_level(ts).tolist()]

    # --- checks ----------------------------------------------------------------------------------------
    @classmethod
    def resolve_prediction(cls, prediction: str) -> str:
        """``auto`` is the path's native target; anything else must be one of its own."""
        if prediction == "auto":
            return cls.predictions[0]
        if prediction not in cls.predictions:
            raise ConfigError(
                f"model.prediction={prediction} is not defined on path={cls.name}; choose "
                f"auto or one of {', '.join(cls.predictions)}"
            )
        return prediction

    @classmethod
    def check_model(cls, options: dict) -> None:
        """Refuse the model options only the discrete chain has, naming what to use."""
        if cls.discrete:
            return
        for key, (plain, why) in DISCRETE_ONLY.items():
            if key in options and options[key] != plain:
                raise ConfigError(
                    f"model.{key}={options[key]} needs path=ddpm ({why}); path={cls.name} "
                    f"trains with model.{key}={plain}"
                )

    @classmethod
    def check_variance(cls, variance: str | None) -> None:
        if variance not in (None, "fixed_small") and not cls.discrete:
            raise ConfigError(
                f"denoiser.variance={variance} is a reverse variance of the discrete chain "
                f"(path=ddpm); path={cls.name} samples ancestrally with fixed_small, the posterior "
                f"of its SDE"
            )
