"""The consistency sampler (Song et al. 2023, "Consistency models", Algorithm 1): one call of the
consistency function from the prior, then, for each noise level it revisits, fresh noise added to
the estimate and one more call."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.fewstep.consistency import renoised
from ddpm.random import Generator, randn
from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.spec import StepCallback
from ddpm.targets import check_arguments


def consistency(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: Generator = None,
    callback: StepCallback | None = None,
    levels: Sequence[float] | None = None,
) -> Tensor:
    """``x0 = f(x_T, sigma_max)``; then for each revisited level ``tau`` (descending):
    ``x = x0 + sqrt(tau^2 - sigma_min^2) z``, ``x0 = f(x, tau)`` (Algorithm 1); ``f`` is the
    denoiser's ``x0`` (a consistency model's by construction; on a diffusion model this is
    "denoise and renoise"). One network call per level: ``nfe = steps``.

    ``levels``: the revisited levels, ``steps - 1`` of them (e.g. ``[0.821]`` for two steps, the
    level Song & Dhariwal 2024 use on CIFAR-10); ``null`` takes the step list's levels after the
    first (``spacing`` of ``steps``)."""
    check_arguments(consistency, {"levels": levels})
    plan = [float(sigmas[0]), *(levels if levels is not None else sigmas[1:-1].tolist())]
    sigma_min = float(denoiser.path.sigma_min)
    x0 = denoiser(x_T, plan[0]).x0
    if callback is not None:
        callback(0, plan[1] if len(plan) > 1 else 0.0, x0, x0)
    for i, tau in enumerate(plan[1:], start=1):
        noise = randn(x0.shape, generator, x0.device, x0.dtype)
        x0 = denoiser(renoised(x0, tau, sigma_min, noise), tau).x0
        if callback is not None:
            callback(i, plan[i + 1] if i + 1 < len(plan) else 0.0, x0, x0)
    return x0


def check_consistency_options(steps: int | None, options: dict, key: str) -> None:
    """``levels`` holds ``steps - 1`` descending positive levels."""
    check_levels(steps, options.get("levels"), f"{key}.steps", f"{key}.levels")


def check_levels(steps: int | None, levels, steps_key: str, levels_key: str) -> None:
    """Revisited ``levels`` (``None``: the spacing's) are ``steps - 1`` strictly decreasing
    positive levels; the messages name the settings ``steps_key`` and ``levels_key``."""
    if levels is None:
        return
    levels = [float(v) for v in levels]
    if steps is not None and len(levels) != steps - 1:
        raise ConfigError(
            f"{levels_key}={levels} revisits {len(levels)} levels, but {steps_key}={steps} "
            f"revisits steps - 1 = {steps - 1}; give {steps - 1} levels or set {steps_key}="
            f"{len(levels) + 1}"
        )
    if any(v <= 0 for v in levels) or any(a <= b for a, b in zip(levels, levels[1:])):
        raise ConfigError(f"{levels_key}={levels} must be positive and strictly decreasing")


consistency.models = ("consistency", "diffusion")  # type: ignore[attr-defined]
consistency.check_options = check_consistency_options  # type: ignore[attr-defined]
