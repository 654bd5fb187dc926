"""Samplers: plain functions of ``(denoiser, x_T, sigmas)``, one module each, in noise levels, so
every sampler runs on every path (:mod:`ddpm.paths`).

Every sampler has the signature ``fn(denoiser, x_T, sigmas, *, generator=None, callback=None,
**options) -> x_0`` and a yaml in ``conf/sampler/`` naming it (``_target_``) with its ``steps``,
``spacing`` and own options. :func:`sample` is the Python facade over the same registry.

============== ===================================================== ========================
sampler        what (default spacing; network calls for ``steps``)   paper
============== ===================================================== ========================
ddpm           ancestral sampling, respaced when steps < T           Ho et al. 2020; Nichol &
               (quadratic; steps)                                    Dhariwal 2021
ddim           deterministic (eta=0) to stochastic (eta=1)           Song, Meng & Ermon 2021
               (quadratic; steps)
dpm_solver     DPM-Solver++ multistep, orders 1-3, exact exponential Lu et al. 2022b
               integrator (order 2; logsnr; steps)
unipc          UniPC predictor-corrector, orders 1-3, B(h) bh1/bh2,  Zhao et al. 2023
               data prediction (auto order: 3 from 12 steps,
               else 2; logsnr; steps)
ipndm          improved PNDM: constant-step Adams-Bashforth on eps   Zhang & Chen 2023 (DEIS
               in sigma space, orders 1-4 (order 3; quadratic;       paper); Liu et al. 2022
               steps)
euler          Euler in sigma space, optional churn (quadratic;      Karras et al. 2022, Alg. 2
               steps; = ddim when s_churn = 0)
heun           Heun in sigma space, optional churn (leading;         Karras et al. 2022,
               2 * steps - 1)                                        Alg. 1-2
dpm_solver_sde stochastic DPM-Solver++(2M) SDE, eta from ODE to SDE  Lu et al. 2022b (SDE
               (eta 0.5; logsnr; steps)                              variant)
ode            probability-flow ODE, adaptive Dormand-Prince 5(4)    Song et al. 2021
consistency    one call, then one per revisited level (trailing;     Song et al. 2023, Alg. 1
               steps); for consistency models
meanflow       average-velocity steps (trailing; steps); for         Geng et al. 2025 (MeanFlow)
               MeanFlow models
============== ===================================================== ========================

A sampler function may state the model kinds it samples (``fn.models``; ODE and SDE solvers
serve diffusion and MeanFlow models) and check its options against ``steps``
(``fn.check_options``).

Defaults are those of the lowest FID on trained checkpoints of every path at 5-20 calls
(``benchmarks/trained_samplers.py``), the exact-denoiser accuracy of ``benchmarks/samplers.py``
breaking near ties; ``conf/sampler/NAME.yaml`` states them once for the API and the config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor

from ddpm.paths import Path, as_path
from ddpm.random import Generator, randn, sample_generators
from ddpm.samplers.denoiser import Denoised, Denoiser, Guidance, NetFn, ReverseVariance
from ddpm.samplers.draw import draw_samples, network_denoiser
from ddpm.samplers.spec import SamplerSpec, builtin_sampler, builtin_sampler_names
from ddpm.samplers.steps import SPACINGS, step_levels, timesteps
from ddpm.samplers.trajectory import Trajectory
from ddpm.schedule import Schedule

__all__ = [
    "SPACINGS",
    "Denoised",
    "Denoiser",
    "Guidance",
    "SamplerSpec",
    "Trajectory",
    "builtin_sampler",
    "builtin_sampler_names",
    "draw_samples",
    "network_denoiser",
    "randn",
    "sample",
    "sample_generators",
    "step_levels",
    "timesteps",
]


@torch.no_grad()
def sample(
    net_fn: NetFn,
    path: Path | Schedule,
    x_T: Tensor,
    method: str | Callable = "ddpm",
    steps: int | None = None,
    *,
    spacing: str | None = None,
    prediction: str = "auto",
    generator: Generator = None,
    clip_x0: bool = False,
    guidance: Guidance | tuple | None = None,
    variance: ReverseVariance = "fixed_small",
    analytic_gamma: Tensor | None = None,
    quantize: bool = True,
    callback: Callable | None = None,
    return_info: bool = False,
    return_trajectory: bool = False,
    trajectory_frames: int = 10,
    **options,
):
    """Draw ``x_0`` with the sampler ``method``: a name of ``conf/sampler/`` (its yaml gives the
    defaults, exactly as ``sampler=NAME`` does on the command line) or a sampler function.
    ``steps``, ``spacing`` and ``options`` (the sampler's own keywords, e.g. ``eta``) override
    those defaults and are checked like config values.

    ``net_fn(x_in, c_noise)`` is the network of ``path`` (a :class:`ddpm.paths.Path`; a
    :class:`~ddpm.schedule.Schedule` means its discrete chain, ``DDPMPath(schedule)``, whose
    ``c_noise`` is the index ``k``), outputting ``prediction`` (``auto``: the path's native
    target). ``x_T`` is a standard normal draw: the sampler starts from it scaled to the path's
    prior (``N(0, I)`` on the VP and flow paths' own scale). ``generator`` is a
    ``torch.Generator`` or one per sample (batch-size invariance). ``guidance=(scale,
    uncond_fn)`` applies classifier-free guidance (a :class:`Denoiser`'s ``Guidance`` adds
    autoguidance's weaker network and the interval); ``variance`` is the reverse variance
    (``learned_range``: ``net_fn`` also outputs it; ``analytic``: pass ``analytic_gamma``,
    :mod:`ddpm.analytic_variance`).

    Returns ``x_0``, or ``(x_0, info)`` with ``return_info``: ``info["nfe"]`` network calls,
    ``info["sigmas"]`` the step list, ``info["trajectory"]`` (with ``return_trajectory``) up to
    ``trajectory_frames`` states from ``x_T`` to ``x_0`` and ``info["trajectory_labels"]``.
    """
    path = as_path(path)
    spec = builtin_sampler(method) if isinstance(method, str) else SamplerSpec.create(method)
    changes = dict(options, steps=steps, spacing=spacing)
    if steps is None and not spec.adaptive and spec.steps is not None and path.discrete:
        changes["steps"] = min(spec.steps, cast(int, path.max_steps))  # a discrete path's T
    spec = spec.updated(spec.name, **changes)
    denoiser = Denoiser(
        net_fn, path, prediction, clip_x0, variance, guidance, analytic_gamma, quantize=quantize
    )
    frames = trajectory_frames if return_trajectory else 0
    x0, sigmas, trajectory = spec.draw(
        denoiser, x_T, generator, callback, trajectory_frames=frames, trajectory_rows=None
    )
    if not return_info:
        return x0
    info = {"nfe": denoiser.nfe, "sigmas": sigmas}
    if trajectory is not None:
        info.update(trajectory=trajectory.frames, trajectory_labels=trajectory.labels)
    return x0, info
