"""Consistency models (Song et al. 2023, "Consistency models"; Geng et al. 2025, "Consistency
models made easy", ECT): a function ``f(x, sigma)`` that maps any point of a probability-flow
trajectory to its origin, on the EDM path.

The parametrisation (Song et al. App. C) keeps EDM's ``c_in`` and ``c_noise`` and shifts the skip
and output scalings so that ``f(x, sigma_min) = x`` holds exactly, by construction:

    c_skip(sigma) = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)
    c_out(sigma)  = (sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2)

(``c_skip = 1``, ``c_out = 0`` at ``sigma_min``). With ``sigma_min -> 0`` these are EDM's own
(Karras et al. Table 1), so a trained EDM network is a consistency function's starting point as
it is: ECT's tuning starts there.

ECT's training pairs (sec. 3): ``t`` from the path's log-normal, and ``r < t`` from the mapping
``r = t (1 - n(t) q^-(s + 1))``, ``n(t) = 1 + k sigmoid(-b t)``, where the stage ``s = 0, 1, ...``
grows during training so ``t - r`` shrinks by ``q`` per stage; where the mapping falls below
``sigma_min`` (small ``t``, early stages) ``r`` is clipped there, where ``f`` is the identity and
the loss is the diffusion (denoising) loss. The loss compares ``f(x_0 + t eps, t)`` with the
stopped-gradient ``f(x_0 + r eps, r)`` on the same noise draw, weighted by ``1 / (t - r)``,
through the pseudo-Huber metric ``sqrt(d^2 + c^2) - c`` (``c = 0``: the L2 distance, whose
gradient is the squared loss's with the adaptive weight ``1 / ||d||``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.paths.base import Path
from ddpm.paths.edm import EDMPath


def consistency_c_skip(sigma: Tensor, sigma_min: float, sigma_data: float) -> Tensor:
    """``sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)``: 1 at ``sigma_min``."""
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)


def consistency_c_out(sigma: Tensor, sigma_min: float, sigma_data: float) -> Tensor:
    """``(sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2)``: 0 at ``sigma_min``."""
    return (sigma - sigma_min) * sigma_data / (sigma**2 + sigma_data**2).sqrt()


E = TypeVar("E", bound=EDMPath)


def retyped(path: EDMPath, cls: type[E]) -> E:
    """``path``'s settings under class ``cls``, an EDM path class: the same levels and
    scalings' constants, ``cls``'s parametrisation."""
    out = cls.__new__(cls)
    out.__dict__.update(vars(path))
    return out


class ConsistencyPath(EDMPath):
    """The EDM path whose denoiser is a consistency function: ``x0(out, x, sigma) = c_skip x +
    c_out F`` with the boundary-condition scalings above. Built from a run's EDM path
    (:meth:`of`); everything else (training levels, ``c_in``, ``c_noise``, the sampling range)
    is EDM's."""

    kind: ClassVar[str] = "consistency"

    @classmethod
    def of(cls, path: Path) -> ConsistencyPath:
        """``path`` with the consistency parametrisation (``precond: edm`` only: the vp and ve
        columns of Table 1 have no ``sigma_data`` to shift)."""
        if isinstance(path, cls):
            return path
        if not isinstance(path, EDMPath) or path.precond != "edm":
            name = getattr(path, "name", type(path).__name__)
            detail = f" precond={path.precond}" if isinstance(path, EDMPath) else ""
            raise ConfigError(
                f"a consistency model is an EDM model (path=edm, path.precond=edm); this run is "
                f"on path={name}{detail}"
            )
        return retyped(path, cls)

    def diffusion(self) -> EDMPath:
        """The EDM path this one was made from (:meth:`of`'s inverse): EDM's own ``c_skip`` and
        ``c_out``, for a diffusion denoiser of the same run (a teacher, DMD's score pair)."""
        return retyped(self, EDMPath)

    def c_skip(self, t: Tensor) -> Tensor:
        return consistency_c_skip(t, self.t_min, self.sd)

    def c_out(self, t: Tensor) -> Tensor:
        return consistency_c_out(t, self.t_min, self.sd)


def ect_stage(step: int, max_steps: int, stages: int) -> int:
    """The stage of ECT's schedule at optimizer step ``step`` of ``max_steps``: ``stages`` equal
    parts of the run, counted from 0."""
    if max_steps <= 0:
        return stages - 1
    return min(stages - 1, step * stages // max_steps)


def ect_r(
    t: Tensor, stage: int, sigma_min: float, q: float = 2.0, k: float = 8.0, b: float = 1.0
) -> Tensor:
    """ECT's mapping from ``t`` to ``r`` (sec. 3): ``r = t (1 - n(t) q^-(stage + 1))`` with
    ``n(t) = 1 + k sigmoid(-b t)`` and the stage counted from 0, clipped below at ``sigma_min``
    (where ``f`` is the identity)."""
    n = 1.0 + k * torch.sigmoid(-b * t)
    return (t * (1.0 - n * q ** (-float(stage + 1)))).clamp(min=sigma_min)


def ect_loss(f_t: Tensor, f_r: Tensor, t: Tensor, r: Tensor, c: float = 0.0) -> Tensor:
    """Per example: ``(sqrt(||f_t - f_r||^2 + c^2) - c) / (t - r)`` (ECT's weighting ``1 / (t -
    r)`` and the pseudo-Huber metric of Song & Dhariwal 2024; ``f_r`` is the stopped-gradient
    target). The distance is over all dimensions."""
    d2 = (f_t - f_r.detach()).flatten(1).pow(2).sum(1)
    metric = (d2 + c * c).clamp_min(1e-20).sqrt() - c
    return metric / (t - r).to(metric)


def consistency_plan(path: Path, steps: int, levels: Sequence[float] | None = None) -> list[float]:
    """The levels the consistency sampler calls the model at in ``steps`` calls (Song et al. 2023,
    Algorithm 1): the path's first sampling level (``sigma_max``), then the ``steps - 1``
    revisited ``levels``, or where ``null`` the ``trailing`` spacing's, as ``sampler=consistency
    sampler.steps=steps`` takes them."""
    spaced = [float(v) for v in path.sampling_levels(steps, "trailing")]
    return [spaced[0], *([float(v) for v in levels] if levels is not None else spaced[1:])]


def renoised(x0: Tensor, tau: float, sigma_min: float, z: Tensor) -> Tensor:
    """The multistep consistency sampler's re-noising (Song et al. 2023, Algorithm 1, line 5):
    ``x = x0 + sqrt(tau^2 - sigma_min^2) z``, the estimate back at level ``tau``."""
    return x0 + math.sqrt(max(tau * tau - sigma_min * sigma_min, 0.0)) * z


def sampler_outputs(
    f: Callable[[Tensor, Tensor, Tensor], Tensor],
    plan: Sequence[float],
    noises: Sequence[Tensor],
    sigma_min: float,
) -> Tensor:
    """The consistency sampler's outputs (Song et al. 2023, Algorithm 1) along ``plan``, the batch
    in ``len(plan)`` equal parts in order: part ``k`` is the output of ``k + 1`` calls. ``f(x,
    sigma, index)`` is the consistency function on the batch's examples ``index``; ``noises[0]``
    is the prior's draw and ``noises[k]`` the ``k``-th re-noising (``x = x0 + sqrt(tau^2 -
    sigma_min^2) z``). Each part's earlier calls run without gradient and its last with it (the
    generator trained on its own intermediate outputs: DMD2's backward simulation, Yin et al.
    2024 sec. 4.4), so one call per example carries the gradient."""
    n = noises[0].shape[0]
    part = torch.arange(n, device=noises[0].device) * len(plan) // n
    x = plan[0] * noises[0]
    sigma = torch.full((n,), plan[0], device=x.device, dtype=x.dtype)
    for k, tau in enumerate(plan[1:], start=1):
        index = (part >= k).nonzero().squeeze(1)
        with torch.no_grad():
            x0 = f(x[index], sigma[index], index)
        x = x.index_copy(0, index, renoised(x0, tau, sigma_min, noises[k][index]))
        sigma = sigma.index_fill(0, index, tau)
    return f(x, sigma, torch.arange(n, device=x.device))
