"""Densities and divergences behind the variational bound: Gaussian KL, decoders, bits/dim."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise ``KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))`` in nats.

    Prop. 5 (eq. 35) of the seed, one coordinate at a time:
    ``1/2 [log(s2^2/s1^2) + (s1^2 + (m1 - m2)^2) / s2^2 - 1]``. Summing over ``d`` coordinates
    with shared variances gives the isotropic form, see :func:`isotropic_gaussian_kl`.
    """
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def isotropic_gaussian_kl(mu1: Tensor, var1: Tensor, mu2: Tensor, var2: Tensor) -> Tensor:
    """Prop. 5 (eq. 35): KL between ``N(mu1, var1 I)`` and ``N(mu2, var2 I)`` in ``R^d`` (last axis).

    The correct form is ``d/2 log(var2/var1) + (d var1 + ||mu1 - mu2||^2) / (2 var2) - d/2``.
    The seed prints ``1/2 log((var1/var2)^d)`` and ``var1`` without the factor ``d``; both are
    typos (the test against ``torch.distributions`` pins the right one).
    """
    d = mu1.shape[-1]
    return (
        0.5 * d * torch.log(var2 / var1)
        + (d * var1 + ((mu1 - mu2) ** 2).sum(-1)) / (2 * var2)
        - 0.5 * d
    )


def gaussian_log_likelihood(x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """Elementwise ``log N(x; mean, exp(log_var))``: the continuous decoder ``p(x_0|x_1)``
    (eq. 12 at t = 1), used for data that is not quantised (toy 2-D sets)."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 * torch.exp(-log_var))


def _log_diff_ndtr(a: Tensor, b: Tensor) -> Tensor:
    """``log(Phi(b) - Phi(a))`` for ``a < b``, stable in both tails (by symmetry when a > 0)."""
    flip = a > 0
    a, b = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_b = torch.special.log_ndtr(b)
    log_a = torch.special.log_ndtr(a)
    return log_b + torch.log1p(-torch.exp((log_a - log_b).clamp(max=-1e-12)))


def discretized_gaussian_log_likelihood(
    x: Tensor, mean: Tensor, log_var: Tensor, num_bins: int = 256
) -> Tensor:
    """Ho et al. (2020) eq. 13: the decoder ``p(x_0 | x_1)`` as a Gaussian integrated over the bin
    of each of ``num_bins`` levels in [-1, 1], the outer bins extending to +-infinity.

    Returns elementwise log-probabilities (nats); the probabilities of the ``num_bins`` values sum
    to one, so ``-log p`` is a true code length, which makes bits/dim exact (the seed's ``L_0``,
    eq. 29, which it drops).
    """
    half_bin = 1.0 / (num_bins - 1)
    std = torch.exp(0.5 * log_var)
    upper = (x - mean + half_bin) / std
    lower = (x - mean - half_bin) / std
    inner = _log_diff_ndtr(lower, upper)
    log_cdf_upper = torch.special.log_ndtr(upper)  # bin of x = -1: (-inf, upper]
    log_sf_lower = torch.special.log_ndtr(-lower)  # bin of x = +1: [lower, inf)
    edge = 1.0 - half_bin
    return torch.where(x < -edge, log_cdf_upper, torch.where(x > edge, log_sf_lower, inner))


def nats_to_bits_per_dim(nats: Tensor, num_dims: int) -> Tensor:
    """``bits/dim = nats / (d ln 2)``."""
    return nats / (num_dims * math.log(2.0))


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every axis but the batch axis."""
    return x.reshape(x.shape[0], -1).mean(dim=1)
