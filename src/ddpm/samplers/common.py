"""What every sampler shares: turning a network into a denoiser, counting calls, trajectories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ddpm.diffusion import split_output
from ddpm.parameterization import predict_x0_eps, predict_x0_eps_continuous
from ddpm.schedule import Schedule, alpha_bar_at

ModelFn = Callable[[Tensor, Tensor], Tensor]
Guidance = tuple[float, ModelFn] | None


def guided(model_fn: ModelFn, guidance: Guidance, variance: str = "fixed_small") -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6):
    ``out = out_uncond + w (out_cond - out_uncond)``; ``w = 0`` is the unconditional model,
    ``w = 1`` the conditional one. The combination is linear, so it is the same in eps, x0, v or mu
    form. A learned variance is taken from the conditional call."""
    if guidance is None:
        return model_fn
    scale, uncond_fn = guidance

    def fn(x: Tensor, k: Tensor) -> Tensor:
        cond, uncond = model_fn(x, k), uncond_fn(x, k)
        if variance == "learned_range":
            (c, v), (u, _) = split_output(cond, variance), split_output(uncond, variance)
            return torch.cat([u + scale * (c - u), v], dim=1)
        return uncond + scale * (cond - uncond)

    return fn


@dataclass
class Denoiser:
    """Wraps ``model_fn(x_t, k)`` into ``(x0, eps, variance output)`` estimates using the schedule
    the network was trained on, and counts network evaluations."""

    model_fn: ModelFn
    schedule: Schedule
    prediction: str = "eps"
    variance: str = "fixed_small"
    clip_x0: bool = False
    nfe: int = 0
    calls_per_eval: int = 1
    trajectory: list[Tensor] | None = field(default=None)

    def __call__(self, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``k`` is an index into the training schedule (an int tensor of shape (N,), or a real
        value for ODE solvers)."""
        out = self.model_fn(x, k)
        self.nfe += self.calls_per_eval
        pred, v = split_output(out, self.variance)
        if k.is_floating_point():
            abar = alpha_bar_at(self.schedule, k.cpu())
            x0, eps = predict_x0_eps_continuous(abar, self.prediction, pred, x, self.clip_x0)
        else:
            x0, eps = predict_x0_eps(self.schedule, self.prediction, pred, x, k, self.clip_x0)
        return x0, eps, v

    def record(self, x: Tensor) -> None:
        if self.trajectory is not None:
            self.trajectory.append(x.detach().cpu())


def batch_k(k: int | Tensor, x: Tensor, dtype=torch.long) -> Tensor:
    return torch.full(
        (x.shape[0],), float(k) if dtype.is_floating_point else int(k), dtype=dtype, device=x.device
    )
