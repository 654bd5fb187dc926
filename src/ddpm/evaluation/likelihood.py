"""Bits/dim of a checkpoint on the test split, split over devices by example. Each example's
noise comes from its own generator, so the numbers do not depend on batch size or devices."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ddpm.analytic_variance import analytic_log_variance
from ddpm.data.base import dataset_tensors
from ddpm.evaluation.distributed import gather_in_order, shard
from ddpm.evaluation.loading import LoadedModel
from ddpm.evaluation.progress import progress_bar
from ddpm.likelihood import nats_to_bits_per_dim
from ddpm.losses import full_vlb
from ddpm.ode_likelihood import ode_bits_per_dim
from ddpm.random import sample_generators
from ddpm.vae import bound_from_log_weights, kl_to_prior, log_importance_weights


def per_example(fabric, x: Tensor, batch_size: int, fn, width: int, show_progress: bool) -> Tensor:
    """``fn(batch, start) -> (n, width)`` over this rank's share of ``x``, gathered in order on
    every rank: float64 of shape ``(len(x), width)``."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(len(x), rank, world)
    device = fabric.device if fabric else "cpu"
    bar = progress_bar("bits/dim", show_progress and rank == 0)
    rows = [
        fn(x[start : min(start + batch_size, idx.stop)].to(device), start).double().cpu()
        for start in bar(range(idx.start, idx.stop, batch_size))
    ]
    local = torch.cat(rows) if rows else torch.zeros(0, width, dtype=torch.float64)
    return gather_in_order(fabric, local, len(x))


def standard_error(values: Tensor) -> float:
    """The standard error of the mean of per-example estimates: ``std / sqrt(n)``. It covers the
    spread of the test examples and the Monte Carlo noise of each example's estimate together,
    so two bits/dim that differ by less than a few of these are not told apart (0 for n = 1)."""
    n = len(values)
    return float(values.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0


def bits_per_dim(
    fabric,
    model: LoadedModel,
    test_set,
    seed: int,
    batch_size: int,
    timesteps_per_call: int = 10,
    limit: int | None = None,
    show_progress: bool = True,
    variance: str | None = None,
    method: str = "vlb",
) -> dict:
    """The full VLB (Prop. 2) in bits/dim on the test split (Ho et al. Table 2 protocol), with
    the model's reverse variance or ``variance`` (fixed_small, fixed_large, analytic).
    ``method="ode"``: the exact likelihood of the probability-flow ODE instead (Hutchinson trace,
    dequantized images; :mod:`ddpm.ode_likelihood`)."""
    x, _ = dataset_tensors(test_set, limit)
    decoder = "discretized" if model.is_image else "gaussian"
    variance = model.variance(variance)
    table = None
    if variance == "analytic":
        table = analytic_log_variance(model.schedule, model.analytic_gamma)
    net = model.model_fn(keep_variance=variance == "learned_range")
    ode_net = model.model_fn()
    prediction = model.recipe.prediction

    def batch_bpd(xb: Tensor, start: int) -> Tensor:
        if method == "ode":
            g = torch.Generator().manual_seed(seed * 7919 + start)
            bpd = ode_bits_per_dim(model.schedule, ode_net, xb, prediction, model.is_image, g)
            return bpd[:, None]
        g = sample_generators(seed, range(start, start + len(xb)))  # per example: any world size
        res = full_vlb(
            model.schedule, net, xb, prediction, variance, decoder, table,
            timesteps_per_call=timesteps_per_call, generator=g,
        )  # fmt: skip
        return torch.stack([res["total"], res["prior"], res["decoder"]], 1)

    width = 1 if method == "ode" else 3
    allv = per_example(fabric, x, batch_size, batch_bpd, width, show_progress)
    out = {
        "bpd_method": method,
        "bpd": float(allv[:, 0].mean()),
        "bpd_stderr": standard_error(allv[:, 0]),
        "bpd_num_examples": len(x),
    }
    if method == "vlb":
        out.update(
            bpd_variance=variance,
            bpd_prior=float(allv[:, 1].mean()),
            bpd_decoder=float(allv[:, 2].mean()),
        )
    return out


@torch.no_grad()
def vae_bits_per_dim(
    fabric,
    model: LoadedModel,
    test_set,
    seed: int,
    batch_size: int,
    limit: int | None = None,
    iw_samples: int = 256,
    show_progress: bool = True,
) -> dict:
    """The VAE's bounds on the test split in bits/dim, from the same ``iw_samples`` draws of
    ``z ~ q(z|x)`` per example: ``bpd`` from the ELBO (Prop. 1, eq. 7, the counterpart of the
    diffusion VLB; the mean of the log-weights) and ``bpd_iw`` from the importance-weighted
    bound (their log-mean-exp, Burda et al. 2016, never looser); ``bpd_kl`` is the ELBO's KL term
    in closed form."""
    x, _ = dataset_tensors(test_set, limit)
    decoder = "discretized" if model.is_image else "gaussian"

    def batch_bounds(xb: Tensor, start: int) -> Tensor:
        g = sample_generators(seed, range(start, start + len(xb)))  # per example: any world size
        w = log_importance_weights(model.net, xb, iw_samples, decoder, g)
        iw = bound_from_log_weights(w)
        return torch.stack([-w.mean(0), -iw, kl_to_prior(*model.net.encode(xb))], 1)

    allv = nats_to_bits_per_dim(
        per_example(fabric, x, batch_size, batch_bounds, 3, show_progress), x[0].numel()
    )
    return {
        "bpd_method": "elbo",
        "bpd": float(allv[:, 0].mean()),
        "bpd_stderr": standard_error(allv[:, 0]),
        "bpd_iw": float(allv[:, 1].mean()),
        "bpd_iw_stderr": standard_error(allv[:, 1]),
        "bpd_iw_samples": iw_samples,
        "bpd_kl": float(allv[:, 2].mean()),
        "bpd_num_examples": len(x),
    }
