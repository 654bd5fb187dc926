"""Samplers: pure functions of (model_fn, schedule, x_T, step list, generator).

``sample`` is the one entry point (CONTRACT.md); each method lives in its own module:

========== =================================================== ==============================
method     what                                                paper
========== =================================================== ==============================
ddpm       ancestral sampling, respaced when steps < T          Ho et al. 2020; Nichol & Dhariwal 2021
ddim       deterministic (eta=0) to stochastic (eta=1)          Song, Meng & Ermon 2021
dpm_solver DPM-Solver++ multistep, orders 1-3 (2M default)      Lu et al. 2022b
ode        probability-flow ODE, adaptive Dormand-Prince 5(4)   Song et al. 2021
========== =================================================== ==============================
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from ddpm.analytic_variance import require_gamma
from ddpm.parameterization import check_prediction
from ddpm.samplers.common import Denoiser, Guidance, ModelFn, guided
from ddpm.samplers.ddim import ddim
from ddpm.samplers.ddpm import ddpm
from ddpm.samplers.dpm_solver import dpm_solver
from ddpm.samplers.ode import probability_flow
from ddpm.samplers.steps import SPACINGS, Generator, randn, sample_generators, timesteps
from ddpm.schedule import Schedule

Method = Literal["ddpm", "ddim", "dpm_solver", "ode"]
METHODS: tuple[str, ...] = get_args(Method)

__all__ = [
    "METHODS",
    "SPACINGS",
    "Denoiser",
    "ddim",
    "ddpm",
    "dpm_solver",
    "guided",
    "probability_flow",
    "randn",
    "sample",
    "sample_generators",
    "timesteps",
]


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown sampler {method!r}; choose one of {', '.join(METHODS)}")
    return method


@torch.no_grad()
def sample(
    model_fn: ModelFn,
    schedule: Schedule,
    x_T: Tensor,
    method: Method = "ddpm",
    steps: int | None = None,
    eta: float = 0.0,
    prediction: str = "eps",
    generator: Generator = None,
    clip_x0: bool = False,
    guidance: Guidance = None,
    return_info: bool = False,
    return_trajectory: bool = False,
    spacing: str = "linspace",
    variance: str = "fixed_small",
    order: int = 2,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    analytic_gamma: Tensor | None = None,
):
    """Draw ``x_0`` from ``x_T`` with the chosen sampler.

    ``model_fn(x_t, k)`` returns the network output for ``prediction`` (``k``: code indices of the
    training schedule, LongTensor of shape (N,)). ``steps`` defaults to T (ignored by ``ode``,
    which adapts). ``generator`` is a ``torch.Generator`` or one per sample (batch-size
    invariance). ``guidance=(scale, uncond_fn)`` applies classifier-free guidance.
    ``variance`` (ddpm; ddim with ``analytic``): fixed_small, fixed_large, learned_range, or
    analytic with ``analytic_gamma`` (Analytic-DPM, :mod:`ddpm.analytic_variance`).

    Returns ``x_0``, or ``(x_0, info)`` with ``return_info``: ``info["nfe"]`` network calls,
    ``info["timesteps"]`` the step list, ``info["trajectory"]`` the chain with
    ``return_trajectory`` (a list of CPU tensors, ``x_T`` first).
    """
    check_method(method)
    check_prediction(prediction)
    steps = schedule.num_timesteps if steps is None else steps
    ks = timesteps(schedule, steps, spacing)  # validates steps and spacing for every method
    den = Denoiser(
        guided(model_fn, guidance, variance),
        schedule,
        prediction,
        variance,
        clip_x0,
        calls_per_eval=2 if guidance is not None else 1,
        trajectory=[x_T.detach().cpu()] if return_trajectory else None,
    )
    if method == "ddpm":
        x0 = ddpm(den, schedule, x_T, ks, variance, generator, analytic_gamma)
    elif method == "ddim":
        gamma = require_gamma(analytic_gamma) if variance == "analytic" else None
        x0 = ddim(den, schedule, x_T, ks, eta, generator, gamma)
    elif method == "dpm_solver":
        x0 = dpm_solver(den, schedule, x_T, ks, order)
    else:
        ks = torch.tensor([schedule.num_timesteps - 1, 0])
        x0 = probability_flow(den, schedule, x_T, rtol, atol)
    if not return_info:
        return x0
    info = {"nfe": den.nfe, "timesteps": ks}
    if return_trajectory:
        info["trajectory"] = den.trajectory
    return x0, info
