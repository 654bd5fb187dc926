"""The optimal reverse variance (Bao, Li, Zhu & Zhang 2022, "Analytic-DPM"), the seed's open
question of sec. 4: with the mean fixed at the posterior mean of the model's ``x0``, the variance
that minimises the KL of each reverse step has a closed form in one scalar per step,

    Gamma_n = E_q ||eps_theta(x_n, n)||^2 / d,

estimated once by Monte Carlo over training data. Everything here is per step of a chain, so it
works on the full schedule and on any respacing of it (pass the Gammas of the kept steps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ddpm.diffusion import q_sample
from ddpm.parameterization import predict_x0_eps
from ddpm.schedule import Schedule


def require_gamma(gamma: Tensor | None) -> Tensor:
    """The Gamma table, or an error saying how to make one."""
    if gamma is None:
        raise ValueError(
            "variance='analytic' needs Gamma estimates: run python -m ddpm.estimate_gamma CKPT"
        )
    return gamma


def optimal_reverse_variance(
    abar: Tensor, abar_prev: Tensor, gamma: Tensor, lambda2: Tensor
) -> Tensor:
    """Bao et al. (2022) Theorem 1, with the score written through the noise prediction
    (``beta_bar_n E||grad log q_n||^2 / d = Gamma_n``):

        sigma*^2 = lambda^2 + (sqrt(beta_bar_n / alpha_n) - sqrt(beta_bar_{n-1} - lambda^2))^2 (1 - Gamma_n)

    ``alpha_n = abar_n / abar_{n-1}``, ``beta_bar = 1 - abar``, ``lambda^2`` the variance of the
    forward kernel family (``beta_tilde_n`` for DDPM, ``eta^2 beta_tilde_n`` for DDIM). Clipped to
    Theorem 2's bounds ``[lambda^2, lambda^2 + (...)^2]`` (``Gamma`` in [0, 1]).
    """
    alpha = abar / abar_prev
    gap = ((1 - abar) / alpha).sqrt() - (1 - abar_prev - lambda2).clamp(min=0).sqrt()
    return lambda2 + gap**2 * (1 - gamma).clamp(0.0, 1.0)


def analytic_log_variance(schedule: Schedule, gamma: Tensor) -> Tensor:
    """``log sigma*^2`` for every step of the Markov (DDPM) chain ``s``; ``gamma`` holds one value
    per step of ``s``. At the first step ``beta_tilde_1 = 0`` and the variance is the decoder's,
    ``(beta_bar_1 / alpha_1)(1 - Gamma_1)``, floored at 1e-20 so its log stays finite."""
    var = optimal_reverse_variance(
        schedule.alphas_cumprod,
        schedule.alphas_cumprod_prev,
        gamma.double(),
        schedule.posterior_variance,
    )
    return var.clamp(min=1e-20).log()


@torch.no_grad()
def estimate_gamma(
    schedule: Schedule,
    model_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable[Tensor],
    prediction: str = "eps",
    timesteps_per_call: int = 10,
    generator: torch.Generator | None = None,
    progress: Callable | None = None,
) -> Tensor:
    """``Gamma_k = E ||eps_theta(x_k, k)||^2 / d`` for every code index ``k`` of ``s`` (float64),
    averaged over the examples of ``batches`` (each at one fresh ``x_k ~ q(x_k | x_0)`` per step),
    ``timesteps_per_call`` steps stacked into one network call."""
    T = schedule.num_timesteps
    total = torch.zeros(T, dtype=torch.float64)
    count = 0
    for x0 in batches:
        n = x0.shape[0]
        chunks = [
            list(range(i, min(i + timesteps_per_call, T))) for i in range(0, T, timesteps_per_call)
        ]
        for chunk in progress(chunks) if progress else chunks:
            k = torch.tensor(chunk, device=x0.device).repeat_interleave(n)
            xx0 = x0.repeat(len(chunk), *([1] * (x0.ndim - 1)))
            noise = torch.randn(xx0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
            x_t = q_sample(schedule, xx0, k, noise)
            _, eps = predict_x0_eps(
                schedule, prediction, model_fn(x_t, schedule.timestep_map.to(k.device)[k]), x_t, k
            )
            sq = eps.reshape(len(eps), -1).double().pow(2).mean(1).reshape(len(chunk), n).sum(1)
            total[chunk] += sq.cpu()
        count += n
    return total / max(count, 1)
