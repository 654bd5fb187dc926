"""Training objectives: the VLB terms of Prop. 2 and their simplifications.

Every function returns per-example values (shape ``(N,)``) or a dict of them; reduction,
weighting across the batch and logging live in the training module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor

from ddpm.diffusion import p_mean_variance, q_mean_variance, q_posterior, q_sample
from ddpm.likelihood import (
    discretized_gaussian_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
    mean_flat,
)
from ddpm.parameterization import from_x0, to_x0, x0_error_scale
from ddpm.random import randn
from ddpm.schedule import Schedule

LossType = Literal["simple", "vlb", "hybrid", "min_snr"]
LOSS_TYPES: tuple[str, ...] = get_args(LossType)
Decoder = Literal["discretized", "gaussian"]

LN2 = math.log(2.0)


def check_loss_type(loss: str) -> str:
    if loss not in LOSS_TYPES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSS_TYPES)}")
    return loss


def prior_bpd(schedule: Schedule, x0: Tensor) -> Tensor:
    """``L_T`` (eq. 27): ``KL(q(x_T | x_0) || N(0, I))`` in bits/dim. No parameters: it is
    reported, never trained."""
    k = torch.full((x0.shape[0],), schedule.num_timesteps - 1, device=x0.device, dtype=torch.long)
    mean, _, log_var = q_mean_variance(schedule, x0, k)
    kl = gaussian_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(log_var))
    return mean_flat(kl) / LN2


def vlb_term(
    schedule: Schedule,
    x0: Tensor,
    x_t: Tensor,
    k: Tensor,
    model_mean: Tensor,
    model_log_var: Tensor,
    decoder: Decoder = "discretized",
) -> Tensor:
    """One term of Prop. 2 (eq. 25) in bits/dim, per example:

    * ``k > 0``: ``L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))`` (eq. 28, via eq. 35);
    * ``k = 0``: ``L_0 = -log p(x_0 | x_1)`` (eq. 29), with the discretized decoder of Ho et al.
      for 8-bit data or a plain Gaussian density for continuous data.
    """
    true_mean, _, true_log_var = q_posterior(schedule, x0, x_t, k)
    kl = mean_flat(gaussian_kl(true_mean, true_log_var, model_mean, model_log_var)) / LN2
    if decoder == "discretized":
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, model_log_var)
    elif decoder == "gaussian":
        nll = -gaussian_log_likelihood(x0, model_mean, model_log_var)
    else:
        raise ValueError(f"unknown decoder {decoder!r}; choose discretized or gaussian")
    return torch.where(k == 0, mean_flat(nll) / LN2, kl)


def simple_loss(
    schedule: Schedule,
    prediction: str,
    pred: Tensor,
    x0: Tensor,
    x_t: Tensor,
    k: Tensor,
    noise: Tensor,
) -> Tensor:
    """``L_simple`` (Ho et al. eq. 14) for any prediction target: the mean squared error between
    the network output and the target of its type. For ``mu`` this is the seed's eq. 42,
    ``||mu_tilde(x0, x_t) - mu_theta(x_t, t)||^2``."""
    target = noise if prediction == "eps" else from_x0(schedule, prediction, x0, x_t, k)
    return mean_flat((target - pred) ** 2)


def min_snr_weight(schedule: Schedule, prediction: str, k: Tensor, gamma: float = 5.0) -> Tensor:
    """Min-SNR-gamma weighting (Hang et al. 2023, eq. 9-10): weight ``min(SNR, gamma)`` on the
    x0 error, expressed for the chosen prediction target."""
    snr = schedule.snr[k.cpu()]
    return (snr.clamp(max=gamma) / x0_error_scale(schedule, prediction, k.cpu())).to(k.device)


def training_losses(
    schedule: Schedule,
    out: Tensor,
    x0: Tensor,
    k: Tensor,
    noise: Tensor,
    x_t: Tensor | None = None,
    prediction: str = "eps",
    loss: LossType = "simple",
    variance: str = "fixed_small",
    decoder: Decoder = "discretized",
    vlb_weight: float = 1e-3,
    min_snr_gamma: float = 5.0,
) -> dict[str, Tensor]:
    """Per-example training loss for a network output ``out`` at ``(x_t, k)``.

    * ``simple``: ``L_simple`` of the prediction target (Ho et al.);
    * ``vlb``: the true bound, ``L_{t-1}`` / ``L_0`` in bits/dim scaled by T (Nichol & Dhariwal);
    * ``hybrid``: ``L_simple + vlb_weight * L_vlb``, the VLB term seeing the mean through a
      stop-gradient so it trains only the learned variance (Nichol & Dhariwal sec. 3.1, lambda = 1e-3);
    * ``min_snr``: ``L_simple`` weighted by min-SNR-gamma (Hang et al. 2023).

    Returns ``{"loss", "mse", "vlb"?}``, each of shape ``(N,)``.
    """
    check_loss_type(loss)
    if x_t is None:
        x_t = q_sample(schedule, x0, k, noise)
    pred = out.chunk(2, dim=1)[0] if variance == "learned_range" else out
    terms: dict[str, Tensor] = {"mse": simple_loss(schedule, prediction, pred, x0, x_t, k, noise)}
    if loss in ("vlb", "hybrid"):
        # The VLB term trains the variance; in hybrid the mean gets its gradient from L_simple only.
        frozen = out.detach() if loss == "hybrid" else out
        if loss == "hybrid" and variance == "learned_range":
            frozen = torch.cat([pred.detach(), out.chunk(2, dim=1)[1]], dim=1)
        p = p_mean_variance(schedule, frozen, x_t, k, prediction, variance)
        terms["vlb"] = vlb_term(schedule, x0, x_t, k, p["mean"], p["log_variance"], decoder) * (
            schedule.num_timesteps
        )
    if loss == "simple":
        terms["loss"] = terms["mse"]
    elif loss == "min_snr":
        terms["loss"] = terms["mse"] * min_snr_weight(schedule, prediction, k, min_snr_gamma).to(
            x0.dtype
        )
    elif loss == "vlb":
        terms["loss"] = terms["vlb"]
    else:
        terms["loss"] = terms["mse"] + vlb_weight * terms["vlb"]
    return terms


ModelFn = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def full_vlb(
    schedule: Schedule,
    model_fn: ModelFn,
    x0: Tensor,
    prediction: str = "eps",
    variance: str = "fixed_small",
    decoder: Decoder = "discretized",
    analytic_log_variance: Tensor | None = None,
    timesteps_per_call: int = 1,
    generator: torch.Generator | list[torch.Generator] | None = None,
    progress: Callable | None = None,
) -> dict[str, Tensor]:
    """The whole bound of Prop. 2, ``L = L_T + sum_{t>1} L_{t-1} + L_0`` (eq. 30), in bits/dim
    per example: every term evaluated once at a fresh ``x_t ~ q(x_t | x_0)`` (an unbiased
    estimate of the expectation in eq. 25, exact for ``L_T``). ``timesteps_per_call`` timesteps
    are stacked into one network call to amortise it (Ho et al. Table 2 protocol). With one
    ``generator`` per example, an example's noise does not depend on its batch.

    Returns ``{"total", "prior", "decoder", "terms" (N, T), "mse" (N, T)}``.
    """
    n, T = x0.shape[0], schedule.num_timesteps
    terms = torch.zeros(n, T, dtype=torch.float64, device=x0.device)
    mse = torch.zeros_like(terms)
    ks = list(range(T - 1, -1, -1))
    chunks = [ks[i : i + timesteps_per_call] for i in range(0, T, timesteps_per_call)]
    for chunk in progress(chunks) if progress else chunks:
        kk = torch.tensor(chunk, device=x0.device).repeat_interleave(n)
        xx0 = x0.repeat(len(chunk), *([1] * (x0.ndim - 1)))
        if isinstance(generator, (list, tuple)):  # row i from generator i, timestep by timestep
            noise = torch.cat([randn(x0.shape, generator, dtype=x0.dtype) for _ in chunk])
        else:
            noise = torch.randn(xx0.shape, generator=generator, device="cpu", dtype=x0.dtype)
        noise = noise.to(x0.device)
        x_t = q_sample(schedule, xx0, kk, noise)
        out = model_fn(x_t, schedule.timestep_map.to(kk.device)[kk])
        p = p_mean_variance(
            schedule, out, x_t, kk, prediction, variance, False, analytic_log_variance
        )
        term = vlb_term(schedule, xx0, x_t, kk, p["mean"], p["log_variance"], decoder)
        err = mean_flat((to_x0(schedule, "x0", p["pred_x0"], x_t, kk) - xx0) ** 2)
        for j, kj in enumerate(chunk):
            terms[:, kj] = term[j * n : (j + 1) * n].double()
            mse[:, kj] = err[j * n : (j + 1) * n].double()
    prior = prior_bpd(schedule, x0).double()
    return {
        "total": terms.sum(1) + prior,
        "prior": prior,
        "decoder": terms[:, 0],
        "terms": terms,
        "mse": mse,
    }
