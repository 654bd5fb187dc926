"""A sampler as configured: its function, the step list it walks (``steps``, ``spacing``) and its
own keyword options. ``conf/sampler/NAME.yaml`` is exactly this, with ``_target_`` naming the
function; the Python facade :func:`ddpm.samplers.sample` reads the same files
(:func:`builtin_sampler`), so both share one set of defaults.

Every sampler has one signature (CONTRACT.md, "Extending")::

    fn(denoiser, x_T, ks, *, generator=None, callback=None, **options) -> x_0
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ddpm.checks import ConfigError, check_value
from ddpm.paths import conf_dir, read_yaml
from ddpm.samplers.steps import SPACINGS, Spacing, timesteps
from ddpm.schedule import Schedule
from ddpm.targets import check_call, locate

SAMPLER_ARGS = ("denoiser", "x_T", "ks", "generator", "callback")
StepCallback = Callable[[int, int, Tensor, Tensor], None]


def function_path(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def check_sampler_function(fn: Callable, key: str = "sampler._target_") -> None:
    """A sampler takes ``(denoiser, x_T, ks, *, generator, callback, **options)``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={fn!r} is not a function") from None
    missing = [a for a in SAMPLER_ARGS if a not in params]
    if missing:
        raise ConfigError(
            f"{key}={function_path(fn)} is not a sampler: it must take "
            f"(denoiser, x_T, ks, *, generator=None, callback=None, **options); "
            f"missing {', '.join(missing)}"
        )


@dataclass(frozen=True)
class SamplerSpec:
    """``fn`` with ``steps`` (``None``: every step of the schedule, or an adaptive solver's
    endpoints) over the ``spacing`` step list, and ``options`` (the function's own keywords)."""

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
        return cls(fn, steps, spacing, options, name or fn.__name__, adaptive)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], key: str = "sampler") -> SamplerSpec:
        """From a sampler config node: ``_target_``, ``steps``, ``spacing`` and the options; a node
        without ``steps`` is an adaptive solver (it gets the ends of the schedule)."""
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

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_target_": function_path(self.fn)}
        if not self.adaptive:
            out.update(steps=self.steps, spacing=self.spacing)
        return out | dict(self.options)

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

    def check_steps(self, num_timesteps: int, key: str = "sampler") -> None:
        if self.steps is not None and not 1 <= self.steps <= num_timesteps:
            raise ConfigError(
                f"{key}.steps={self.steps} is not valid; it must be an integer in "
                f"[1, {num_timesteps}] (schedule.num_timesteps of the model)"
            )

    def step_list(self, schedule: Schedule) -> Tensor:
        """The descending code indices the sampler visits, ending at 0."""
        T = schedule.num_timesteps
        if self.adaptive:
            return torch.tensor([T - 1, 0]) if T > 1 else torch.tensor([0])
        return timesteps(schedule, T if self.steps is None else self.steps, self.spacing)

    def __call__(
        self,
        denoiser,
        x_T: Tensor,
        generator=None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        ks = self.step_list(denoiser.schedule)
        return self.fn(denoiser, x_T, ks, generator=generator, callback=callback, **self.options)


def builtin_sampler(name: str) -> SamplerSpec:
    """The sampler ``conf/sampler/NAME.yaml`` describes, as ``sampler=NAME`` gives it."""
    path = conf_dir() / "sampler" / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(names)}")
    spec = SamplerSpec.from_config(read_yaml(path), f"sampler={name}")
    return replace(spec, name=name)


def builtin_sampler_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "sampler").glob("*.yaml"))


__all__ = ["SAMPLER_ARGS", "SPACINGS", "SamplerSpec", "builtin_sampler", "builtin_sampler_names"]
