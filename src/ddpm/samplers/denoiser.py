"""The denoiser every sampler sees: a network turned into estimates of ``x0`` and ``eps`` at
``(x, k)``.

The caller builds it, so prediction-type conversion, x0 clipping, classifier-free guidance and the
reverse variance (fixed, learned or analytic) live here once, not in each sampler; a sampler only
does its own numerical method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.analytic_variance import optimal_reverse_variance, require_gamma
from ddpm.diffusion import VARIANCES, Variance
from ddpm.parameterization import check_prediction, predict_x0_eps, predict_x0_eps_continuous
from ddpm.schedule import Schedule, alpha_bar_at

ModelFn = Callable[[Tensor, Tensor], Tensor]
Guidance = tuple[float, ModelFn] | None
ReverseVariance = Variance
REVERSE_VARIANCES = VARIANCES


@dataclass(frozen=True)
class Denoised:
    """What the denoiser says about ``x`` at ``k``: the clean-data estimate ``x0`` and the noise
    estimate ``eps`` (consistent with each other, eq. 31), and the learned-variance output ``v``
    in [-1, 1] when the network has one (Nichol & Dhariwal eq. 15)."""

    x0: Tensor
    eps: Tensor
    v: Tensor | None = None


def guide(cond: Tensor, uncond: Tensor, scale: float, learned: bool) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6): ``uncond + w (cond - uncond)``;
    ``w = 0`` is the unconditional model, ``w = 1`` the conditional one. The combination is linear,
    so it is the same in eps, x0, v or mu form. A learned variance is taken from the conditional
    output."""
    if learned:
        (c, v), (u, _) = cond.chunk(2, dim=1), uncond.chunk(2, dim=1)
        return torch.cat([u + scale * (c - u), v], dim=1)
    return uncond + scale * (cond - uncond)


class Denoiser:
    """``denoiser(x, k) -> Denoised`` for a network ``net_fn(x, k)`` trained on ``schedule``.

    * ``k``: a LongTensor (N,) of code indices of the training schedule, or a float tensor of
      real-valued indices (ODE solvers; ``alpha_bar`` interpolated in log-SNR).
    * ``prediction``: what the network outputs (eps, x0, v, mu); ``clip_x0`` clamps the ``x0``
      estimate to [-1, 1] and recomputes ``eps`` from it.
    * ``learned``: the network also outputs a variance (twice the channels); ``variance`` is the
      reverse variance samplers use (:meth:`reverse_log_variance`).
    * ``guidance=(scale, uncond_fn)``: classifier-free guidance (two network calls per call).
    * ``nfe`` counts network evaluations.
    """

    def __init__(
        self,
        net_fn: ModelFn,
        schedule: Schedule,
        prediction: str = "eps",
        clip_x0: bool = False,
        variance: ReverseVariance = "fixed_small",
        guidance: Guidance = None,
        analytic_gamma: Tensor | None = None,
        learned: bool | None = None,
    ) -> None:
        check_prediction(prediction)
        if variance not in REVERSE_VARIANCES:
            raise ValueError(
                f"unknown variance {variance!r}; choose one of {', '.join(REVERSE_VARIANCES)}"
            )
        self.learned = variance == "learned_range" if learned is None else learned
        if variance == "learned_range" and not self.learned:
            raise ValueError("variance='learned_range' needs a network that outputs a variance")
        if variance == "analytic":
            require_gamma(analytic_gamma)
        self.net_fn, self.schedule, self.prediction = net_fn, schedule, prediction
        self.clip_x0, self.variance, self.guidance = clip_x0, variance, guidance
        self.analytic_gamma = analytic_gamma
        self.nfe = 0

    @property
    def calls_per_eval(self) -> int:
        return 2 if self.guidance is not None else 1

    def output(self, x: Tensor, k: Tensor) -> Tensor:
        """The raw network output at ``(x, k)`` (guided when asked)."""
        self.nfe += self.calls_per_eval
        out = self.net_fn(x, k)
        if self.guidance is not None:
            scale, uncond_fn = self.guidance
            out = guide(out, uncond_fn(x, k), scale, self.learned)
        return out

    def __call__(self, x: Tensor, k: Tensor) -> Denoised:
        out = self.output(x, k)
        pred, v = out.chunk(2, dim=1) if self.learned else (out, None)
        if k.is_floating_point():
            abar = alpha_bar_at(self.schedule, k.cpu())
            x0, eps = predict_x0_eps_continuous(abar, self.prediction, pred, x, self.clip_x0)
        else:
            x0, eps = predict_x0_eps(self.schedule, self.prediction, pred, x, k, self.clip_x0)
        return Denoised(x0, eps, v)

    def reverse_log_variance(
        self, out: Denoised, k: int, k_prev: int, lambda2: float | None = None
    ) -> float | Tensor:
        """``log sigma^2`` of the reverse kernel ``p(x_{k_prev} | x_k)`` of the chain that jumps
        from code index ``k`` to ``k_prev < k`` (a respaced chain keeps ``alpha_bar`` at both,
        Nichol & Dhariwal sec. 4): ``beta = 1 - abar_k / abar_prev``,
        ``beta_tilde = (1 - abar_prev) / (1 - abar_k) beta`` (eq. 34).

        * ``fixed_small``: ``beta_tilde``; ``fixed_large``: ``beta`` (Ho et al. sec. 3.2);
        * ``learned_range``: ``v log beta + (1 - v) log beta_tilde`` with ``v`` mapped to [0, 1]
          (Nichol & Dhariwal eq. 15), per element;
        * ``analytic``: Analytic-DPM's optimum for the kernel family of variance ``lambda2``
          (``beta_tilde`` for DDPM; DDIM passes its ``sigma_eta^2``), Bao et al. Theorem 1.
        """
        abar = self.schedule.alphas_cumprod
        a, ap = abar[k].item(), abar[k_prev].item()
        beta = 1.0 - a / ap
        beta_tilde = beta * (1.0 - ap) / (1.0 - a)
        if self.variance == "fixed_small":
            return math.log(beta_tilde)
        if self.variance == "fixed_large":
            return math.log(beta)
        if self.variance == "learned_range":
            frac = (out.v + 1.0) / 2.0
            return frac * math.log(beta) + (1.0 - frac) * math.log(beta_tilde)
        gamma = require_gamma(self.analytic_gamma)[k].double()
        var = optimal_reverse_variance(
            abar[k],
            abar[k_prev],
            gamma,
            torch.tensor(beta_tilde if lambda2 is None else lambda2, dtype=torch.float64),
        )
        return math.log(max(var.item(), 1e-20))


def batch_k(k: int | float, x: Tensor, dtype=torch.long) -> Tensor:
    """The index ``k`` repeated for every row of ``x`` (the shape networks take)."""
    return torch.full(
        (x.shape[0],), float(k) if dtype.is_floating_point else int(k), dtype=dtype, device=x.device
    )
