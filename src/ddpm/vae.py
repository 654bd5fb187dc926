"""The latent-variable model DDPM generalises: the seed's Example 1 (a VAE) and the two bounds
on its log-likelihood, Prop. 1's variational lower bound (eq. 7) and the importance-weighted
bound of Burda et al. (2016).

``vae`` is any :class:`ddpm.nets.VAE`: ``encode(x) -> (mean, log_var)`` of ``q(z|x)``,
``decode(z) -> (mean, log_var)`` of ``p(x|z)``, prior ``p(z) = N(0, I)``. Results are per
example, in nats; :func:`ddpm.likelihood.nats_to_bits_per_dim` turns them into bits/dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor

from ddpm.likelihood import (
    discretized_gaussian_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
)
from ddpm.random import Generator, randn, sample_generators

DECODERS = ("discretized", "gaussian")


def _sum_dims(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def decoder_log_likelihood(x: Tensor, mean: Tensor, log_var: Tensor, decoder: str) -> Tensor:
    """``log p(x|z)`` summed over coordinates: the seed's Example 1 decoder
    ``N(x; mu(z), sigma^2(z))``, integrated over each of 256 pixel bins for images
    (``discretized``, Ho et al. eq. 13, so bits/dim compare with DDPM's) or as a density
    (``gaussian``, continuous data)."""
    if decoder == "discretized":
        return _sum_dims(discretized_gaussian_log_likelihood(x, mean, log_var))
    if decoder == "gaussian":
        return _sum_dims(gaussian_log_likelihood(x, mean, log_var))
    raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")


def reparameterize(mean: Tensor, log_var: Tensor, generator: Generator = None) -> Tensor:
    """``z = mean + sigma * eps``, ``eps ~ N(0, I)`` (Kingma & Welling 2014, eq. 10).
    ``generator``: one (on ``mean``'s device), or a list with one per row, so that an example's
    noise does not depend on the batch it is in."""
    if isinstance(generator, (list, tuple)):
        eps = randn(mean.shape, generator, mean.device, mean.dtype)
    else:
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * log_var) * eps


def kl_to_prior(mean: Tensor, log_var: Tensor) -> Tensor:
    """``KL(N(mean, diag exp(log_var)) || N(0, I))`` per example, in closed form (Prop. 5)."""
    return _sum_dims(gaussian_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(log_var)))


def elbo(vae, x: Tensor, decoder: str, generator=None) -> dict[str, Tensor]:
    """Prop. 1 (eq. 7): ``log p(x) >= E_q[log p(x, z) - log q(z|x)]
    = E_q[log p(x|z)] - KL(q(z|x) || p(z))``, the expectation by one reparameterised sample and
    the KL in closed form (Prop. 5, coordinatewise). Returns ``elbo``, ``reconstruction`` and
    ``kl``, each of shape ``(N,)``. Equality holds when ``q(z|x)`` is the true posterior."""
    mean, log_var = vae.encode(x)
    z = reparameterize(mean, log_var, generator)
    rec = decoder_log_likelihood(x, *cast("tuple[Tensor, Tensor]", vae.decode(z)), decoder)
    kl = kl_to_prior(mean, log_var)
    return {"elbo": rec - kl, "reconstruction": rec, "kl": kl}


def log_importance_weights(
    vae, x: Tensor, num_samples: int, decoder: str, generator=None
) -> Tensor:
    """``log p(x, z_k) - log q(z_k|x)`` for ``z_k ~ q(z|x)``, ``k < num_samples``: shape
    ``(num_samples, N)``."""
    mean, log_var = vae.encode(x)
    out = []
    for _ in range(num_samples):
        z = reparameterize(mean, log_var, generator)
        log_prior = _sum_dims(gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z)))
        log_q = _sum_dims(gaussian_log_likelihood(z, mean, log_var))
        out.append(
            decoder_log_likelihood(x, *cast("tuple[Tensor, Tensor]", vae.decode(z)), decoder)
            + log_prior
            - log_q
        )
    return torch.stack(out)


def bound_from_log_weights(log_weights: Tensor) -> Tensor:
    """Burda et al. (2016) eq. 8 from ``K`` log-weights of shape ``(K, N)``:
    ``log (1/K) sum_k p(x, z_k) / q(z_k|x)``, computed as a log-mean-exp."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def importance_weighted_bound(
    vae, x: Tensor, num_samples: int, decoder: str, generator=None
) -> Tensor:
    """Burda et al. (2016) eq. 8: ``log p(x) >= E[log (1/K) sum_k p(x, z_k) / q(z_k|x)]``,
    ``z_k ~ q(z|x)``. ``K = 1`` is the ELBO; the bound rises with ``K`` and tends to
    ``log p(x)``."""
    return bound_from_log_weights(log_importance_weights(vae, x, num_samples, decoder, generator))


@torch.no_grad()
def draw_vae_samples(
    vae,
    shape: Sequence[int],
    indices: Sequence[int],
    seed: int,
    batch_size: int = 256,
    device="cpu",
    decoder_noise: bool = False,
    clip: bool = True,
    progress: Callable | None = None,
) -> Tensor:
    """Ancestral samples of the seed's Example 1: ``z ~ N(0, I)``, then the decoder's mean
    ``mu(z)`` (or ``x ~ p(x|z)`` with ``decoder_noise``). Sample ``i`` depends only on
    ``(seed, i)``, as for the diffusion samplers; ``clip`` keeps images in [-1, 1]."""
    indices = list(indices)
    out = []
    starts = range(0, len(indices), batch_size)
    for start in progress(starts) if progress else starts:
        gens = sample_generators(seed, indices[start : start + batch_size])
        z = randn((len(gens), *getattr(vae, "latent_shape", (vae.latent_dim,))), gens, device)
        mean, log_var = vae.decode(z)
        x = reparameterize(mean, log_var, gens) if decoder_noise else mean
        out.append((x.clamp(-1, 1) if clip else x).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, *shape))
