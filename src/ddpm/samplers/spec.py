"""A sampler as configured: its function, the step list it walks (``steps``, ``spacing``) and its
own keyword options. ``conf/sampler/NAME.yaml`` is exactly this, with ``_target_`` naming the
function; the Python facade :func:`ddpm.samplers.sample` reads the same files
(:func:`builtin_sampler`), so both share one set of defaults.

Every sampler has one signature (docs/extending.md)::

    fn(denoiser, x_T, sigmas, *, generator=None, callback=None, **options) -> x_0
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from torch import Tensor

from ddpm.checks import ConfigError, check_value
from ddpm.files import conf_dir, read_yaml
from ddpm.paths import Path
from ddpm.samplers.steps import SPACINGS, Spacing, adaptive_levels, step_levels
from ddpm.samplers.trajectory import Trajectory
from ddpm.targets import check_call, locate

SAMPLER_ARGS = ("denoiser", "x_T", "sigmas", "generator", "callback")
DENOISER_MODELS = ("diffusion", "meanflow")  # what a sampler without a ``models`` attribute serves
StepCallback = Callable[[int, float, Tensor, Tensor], None]


def function_path(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def check_sampler_function(fn: Callable, key: str = "sampler._target_") -> None:
    """A sampler takes ``(denoiser, x_T, sigmas, *, generator, callback, **options)``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={fn!r} is not a function") from None
    missing = [a for a in SAMPLER_ARGS if a not in params]
    if missing == ["sigmas"] and "ks" in params:
        raise ConfigError(
            f"{key}={function_path(fn)} takes a step list of indices (ks): samplers now take "
            f"noise levels, fn(denoiser, x_T, sigmas, ...), and call denoiser(x, sigma); see the "
            f"migration note in docs/extending.md"
        )
    if missing:
        raise ConfigError(
            f"{key}={function_path(fn)} is not a sampler: it must take "
            f"(denoiser, x_T, sigmas, *, generator=None, callback=None, **options); "
            f"missing {', '.join(missing)}"
        )


@dataclass(frozen=True)
class SamplerSpec:
    """``fn`` with ``steps`` network calls (``None``: an adaptive solver, given the ends of the
    path's range) over the ``spacing`` step list, and ``options`` (the function's own
    keywords)."""

    fn: Callable
    steps: int | None = None
    spacing: Spacing = "uniform"
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    adaptive: bool = False

    @classmethod
    def create(
        cls,
        fn: Callable,
        steps: int | None = None,
        spacing: str = "uniform",
        options: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        adaptive: bool = False,
        key: str = "sampler",
    ) -> SamplerSpec:
        """A checked spec: ``fn`` has the sampler signature, ``steps`` and ``spacing`` are valid
        and ``options`` fit ``fn``'s own keyword arguments (names, types, ranges)."""
        check_sampler_function(fn, f"{key}._target_")
        check_value(steps, int | None, f"{key}.steps")
        if steps is not None and steps < 1:
            raise ConfigError(f"{key}.steps={steps!r} is not valid; it must be an integer >= 1")
        check_value(spacing, Spacing, f"{key}.spacing")
        options = dict(options or {})
        check_call(fn, options, key, provided=SAMPLER_ARGS)
        if (check := getattr(fn, "check_options", None)) is not None:
            check(steps, options, key)
        return cls(fn, steps, cast(Spacing, spacing), options, name or fn.__name__, adaptive)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], key: str = "sampler") -> SamplerSpec:
        """From a sampler config node: ``_target_``, ``steps``, ``spacing`` and the options; a node
        without ``steps`` is an adaptive solver (it gets the ends of the path's range)."""
        config = dict(config)
        if "_target_" not in config:
            raise ConfigError(
                f"{key} has no _target_; a sampler config names its function "
                f"(e.g. _target_: ddpm.samplers.ddim.ddim)"
            )
        target = config.pop("_target_")
        fn = locate(target, f"{key}._target_")
        adaptive = "steps" not in config
        steps = config.pop("steps", None)
        spacing = config.pop("spacing", "uniform")
        name = target.rsplit(".", 1)[-1]
        return cls.create(fn, steps, spacing, config, name=name, adaptive=adaptive, key=key)

    def updated(self, key: str = "sampler", **changes) -> SamplerSpec:
        """A copy with ``steps``, ``spacing`` or options changed (``None`` keeps a value),
        checked like a config."""
        steps = changes.pop("steps", None)
        spacing = changes.pop("spacing", None)
        if steps is not None and self.adaptive:
            raise ConfigError(f"{key} is an adaptive solver; it takes no steps")
        options = dict(self.options) | {k: v for k, v in changes.items() if v is not None}
        return SamplerSpec.create(
            self.fn,
            self.steps if steps is None else steps,
            self.spacing if spacing is None else spacing,
            options,
            name=self.name,
            adaptive=self.adaptive,
            key=key,
        )

    @property
    def models(self) -> tuple[str, ...]:
        """The kinds of model the sampler samples (a function's ``models`` attribute): ODE and SDE
        solvers take a denoiser, which diffusion and MeanFlow models give."""
        return tuple(getattr(self.fn, "models", DENOISER_MODELS))

    def check_serves(self, kind: str, what: str) -> None:
        """Refuse a sampler that cannot sample a model of ``kind`` (``what`` names the model)."""
        if kind in self.models:
            return
        other = {"consistency": "consistency", "meanflow": "meanflow"}.get(kind, "dpm_solver_sde")
        doing = {
            "meanflow": "takes average-velocity steps of a MeanFlow model (model=meanflow)",
            "consistency": "revisits noise levels with a consistency function",
        }.get(self.models[0], "integrates a diffusion model's ODE or SDE")
        raise ConfigError(
            f"sampler={self.name} {doing}; {what} is a {kind} model: sample it with sampler={other}"
        )

    def check_steps(self, path: Path, quantize: bool = True, key: str = "sampler") -> None:
        """``steps`` fits the path (:meth:`ddpm.paths.Path.check_steps`)."""
        if not self.adaptive:
            path.check_steps(self.steps, self.spacing, quantize, key)

    def step_list(self, path: Path, quantize: bool = True) -> Tensor:
        """The descending noise levels the sampler visits, ending at 0 (:mod:`.steps`)."""
        if self.adaptive:
            return adaptive_levels(path)
        self.check_steps(path, quantize)
        steps = path.max_steps if self.steps is None else self.steps
        return step_levels(path, cast(int, steps), self.spacing, quantize)  # None: refused

    def draw(
        self,
        denoiser,
        noise: Tensor,
        generator=None,
        callback: StepCallback | None = None,
        trajectory_frames: int = 0,
        trajectory_rows: int | None = 8,
    ) -> tuple[Tensor, Tensor, Trajectory | None]:
        """``(x_0, sigmas, trajectory)`` from a standard normal draw ``noise``: the step list on
        the denoiser's path, the start scaled to the path's prior at its first level, then the
        sampler function (``trajectory``: ``trajectory_frames`` states kept, or ``None``)."""
        path = denoiser.path
        sigmas = self.step_list(path, denoiser.quantize_levels)
        x_T = noise * path.prior_scale(float(sigmas[0]))
        trajectory = None
        if trajectory_frames:
            trajectory = Trajectory(sigmas, x_T, path, trajectory_frames, trajectory_rows)

        def on_step(i: int, sigma: float, x: Tensor, x0_hat: Tensor) -> None:
            if trajectory is not None:
                trajectory(i, sigma, x, x0_hat)
            if callback is not None:
                callback(i, sigma, x, x0_hat)

        x0 = self.fn(denoiser, x_T, sigmas, generator=generator, callback=on_step, **self.options)
        return x0, sigmas, trajectory


def builtin_sampler(name: str) -> SamplerSpec:
    """The sampler ``conf/sampler/NAME.yaml`` describes, as ``sampler=NAME`` gives it."""
    path = conf_dir() / "sampler" / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(names)}")
    spec = SamplerSpec.from_config(read_yaml(path), f"sampler={name}")
    return replace(spec, name=name)


def builtin_sampler_names(serving: str | None = None) -> list[str]:
    """The samplers of ``conf/sampler/`` (those that sample a model of kind ``serving``:
    diffusion, consistency or meanflow)."""
    names = sorted(p.stem for p in (conf_dir() / "sampler").glob("*.yaml"))
    return [n for n in names if serving is None or serving in builtin_sampler(n).models]


__all__ = ["SAMPLER_ARGS", "SPACINGS", "SamplerSpec", "builtin_sampler", "builtin_sampler_names"]
