"""diffusers' schedulers driven call by call on an eps function, for ``benchmarks/samplers.py``:
which ones (``THEIRS_ODE``, ``THEIRS_SDE``), their settings grid, and a run within a budget of
network calls."""

from __future__ import annotations

import importlib

import torch

CHURN = 10.0  # s_churn of the churn rows: gamma = min(10/N, sqrt(2)-1), capped up to N = 24
# name: (diffusers class, its options, step() options)
THEIRS_ODE = {
    "DDIM": ("DDIMScheduler", {"clip_sample": False}, {}),
    "DPM++2M": ("DPMSolverMultistepScheduler", {}, {}),
    "DPM++3M": ("DPMSolverMultistepScheduler", {"solver_order": 3}, {}),
    "UniPC": ("UniPCMultistepScheduler", {}, {}), "DEIS": ("DEISMultistepScheduler", {}, {}),
    "Euler": ("EulerDiscreteScheduler", {}, {}), "Heun": ("HeunDiscreteScheduler", {}, {}),
    "PNDM": ("PNDMScheduler", {}, {}), "PLMS": ("PNDMScheduler", {"skip_prk_steps": True}, {}),
}  # fmt: skip
THEIRS_SDE = {
    "DDPM": ("DDPMScheduler", {"clip_sample": False}, {}),
    "DPM++2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, {}),
    "Euler churn": ("EulerDiscreteScheduler", {}, {"s_churn": CHURN}),
}


def fit_budget(sch, budget: int) -> bool:
    """``set_timesteps(n)`` with the most steps whose timesteps (one call each) fit ``budget``:
    Heun lists ``2 n - 1``, PLMS ``n + 1`` (its second call repeats the first time), PNDM's
    Runge-Kutta start ``n + 9``; False if none fits (PNDM at 5 and 10 calls)."""
    for n in range(budget, 0, -1):
        try:
            sch.set_timesteps(n)
        except ValueError:  # PNDM's Runge-Kutta start needs a few steps
            continue
        if len(sch.timesteps) <= budget:
            return True
    return False


def settings(cls) -> list[dict]:
    """The class's defaults first, then every timestep_spacing x use_karras_sigmas it takes."""
    karras = "use_karras_sigmas" in cls().config
    grid = [
        {"timestep_spacing": sp} | ({"use_karras_sigmas": k} if karras else {})
        for sp in ("leading", "linspace", "trailing") for k in (False, True)[: 1 + karras]
    ]  # fmt: skip
    default = {key: cls().config[key] for key in grid[0]}
    return [default] + [g for g in grid if g != default]


def scheduler_class(name: str):
    return getattr(importlib.import_module("diffusers"), (THEIRS_ODE | THEIRS_SDE)[name][0])


def theirs(name: str, setting: dict, eps_fn, x_T, budget: int, betas, seed: int = 1):
    """``NAME`` at ``setting`` on the schedule ``betas`` from ``x_T``, one ``eps_fn`` call per
    timestep: ``(x_0, calls)``, or ``(None, 0)`` when it cannot run within ``budget`` calls."""
    _, options, step_options = (THEIRS_ODE | THEIRS_SDE)[name]
    sch = scheduler_class(name)(trained_betas=betas.numpy(), **options, **setting)
    if not fit_budget(sch, budget):
        return None, 0
    if name in THEIRS_SDE:
        step_options = step_options | {"generator": torch.Generator().manual_seed(seed)}
    x = x_T * sch.init_noise_sigma
    for t in sch.timesteps:  # one network call each
        eps = eps_fn(sch.scale_model_input(x, t), t.double().expand(len(x)))
        x = sch.step(eps, t, x, **step_options).prev_sample
    return x.double(), len(sch.timesteps)


def label(setting: dict) -> str:
    return setting.get("timestep_spacing", "") + "+karras" * bool(setting.get("use_karras_sigmas"))
