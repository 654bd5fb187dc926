"""The probability-flow ODE (Song et al. 2021) solved with an adaptive Dormand-Prince 5(4)."""

from __future__ import annotations

import math
from typing import Annotated

from torch import Tensor

from ddpm.checks import POSITIVE
from ddpm.odeint import ODEError, dopri5
from ddpm.probability_flow import drift
from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.spec import StepCallback
from ddpm.targets import check_arguments


def probability_flow(
    denoiser: Denoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator=None,
    callback: StepCallback | None = None,
    rtol: Annotated[float, POSITIVE] = 1e-5,
    atol: Annotated[float, POSITIVE] = 1e-5,
) -> Tensor:
    """Solve the probability-flow ODE (:func:`ddpm.probability_flow.drift`, in ``log sigma``)
    from the first level of ``sigmas`` to the last before 0 (the solver picks its own steps in
    between), then take the data prediction there (the same last step as DDIM and DPM-Solver++).
    Deterministic: ``generator`` is unused."""
    check_arguments(probability_flow, {"rtol": rtol, "atol": atol})
    s_start, s_end = float(sigmas[0]), float(sigmas[-2])
    try:
        x = dopri5(
            lambda rho, y: drift(denoiser, y, rho), x_T, math.log(s_start), math.log(s_end), rtol,
            atol,
        )  # fmt: skip
    except ODEError as e:
        raise ODEError(
            f"sampler=ode stopped at noise level sigma={math.exp(e.t):.4g}: {e} (a network "
            f"output that is not finite, or an ODE too stiff for sampler.rtol={rtol}, "
            f"sampler.atol={atol})",
            e.t,
        ) from None
    x0 = denoiser(x, s_end).x0
    if callback is not None:
        callback(len(sigmas) - 2, 0.0, x0, x0)  # adaptive: only the end is reported
    return x0
