"""What every path must satisfy, checked against independent references: each path's test module
(tests/test_path_NAME.py) runs these on its own path and adds what only it has."""

from __future__ import annotations

import math

import torch

from ddpm.oracles import GaussianMixture
from ddpm.samplers import Denoiser

M, S = 0.3, 0.5  # the Gaussian data of the checks: N(M, S^2) per coordinate


def check_forward_process(path) -> None:
    """``noise_level`` and ``time_at`` invert each other on the sampling range, ``c_noise`` and
    its inverse too, the level increases with time, and ``d_alpha``, ``d_sigma`` (where the path
    has them) are the derivatives of ``alpha``, ``sigma`` (central differences)."""
    t = torch.linspace(path.t_min, path.t_max, 9, dtype=torch.float64)
    level = path.noise_level(t)
    assert (level.diff() > 0).all() and (path.alpha(t) > 0).all() and (path.sigma(t) > 0).all()
    assert torch.allclose(path.time_at(level), t, rtol=1e-9, atol=1e-12)
    assert torch.allclose(level, path.sigma(t) / path.alpha(t), rtol=1e-12)
    c = path.c_noise(t)
    assert torch.allclose(path.time_from_c_noise(c).double(), t, rtol=1e-5, atol=1e-6)
    assert math.isclose(path.sigma_min, float(level[0]), rel_tol=1e-9)
    assert math.isclose(path.sigma_max, float(level[-1]), rel_tol=1e-9)
    if "velocity" in path.predictions:
        h = 1e-6 * (path.t_max - path.t_min)
        inner = t[1:-1]
        for f, df in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
            numeric = (f(inner + h) - f(inner - h)) / (2 * h)
            assert torch.allclose(df(inner), numeric, rtol=1e-5, atol=1e-7)


def check_exact_network_denoises_to_the_posterior_mean(path, prediction: str) -> None:
    """Through the path's own network seam (``c_in``, ``c_noise``, the ``prediction`` target),
    the exact network's ``x0`` is the posterior mean, written here from Bayes' rule in the
    path's own coordinates: ``E[x0 | x_t] = M + alpha S^2 / (alpha^2 S^2 + sigma^2) (x_t - alpha
    M)``, at levels across the whole range (trained ones on a discrete chain)."""
    g = GaussianMixture.gaussian(torch.tensor([M]), S)
    den = Denoiser(g.network(path, prediction), path, prediction)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    for u in (0.0, 0.2, 0.5, 0.8, 1.0):
        t = torch.tensor([path.t_min + u * (path.t_max - path.t_min)], dtype=torch.float64)
        t = t.round().long() if path.discrete else t
        a, s = float(path.alpha(t)), float(path.sigma(t))
        level = float(path.noise_level(t))
        x_t = a * M + x * math.sqrt(a * a * S * S + s * s)  # states of the marginal's size
        truth = M + a * S * S / (a * a * S * S + s * s) * (x_t - a * M)
        got = den(x_t / a, level).x0  # the denoiser takes x / alpha
        # c_noise is float32 (what networks take): the exact network knows t to ~1e-7, which
        # its output and the conversion amplify up to the level
        assert torch.allclose(got, truth, atol=1e-6 * (1 + level)), (prediction, u)


def check_exact_network_minimises_the_loss(path, prediction: str, n: int = 20_000) -> None:
    """The training loss (Monte Carlo over the path's own training times, data and noise) is
    lower for the exact network than for one perturbed by 10% in either direction or shifted:
    the exact network is its minimiser."""
    g = GaussianMixture.gaussian(torch.tensor([M, -M]), S)
    net = g.network(path, prediction)
    gen = torch.Generator().manual_seed(0)
    x0, _ = g.sample(n, gen)
    t = path.sample_times(n, gen, "cpu")
    t = t.double() if t.is_floating_point() else t
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x_t = path.q_sample(x0, t, noise)
    x_in, c = path.network_input(x_t, t)
    out = net(x_in, c)

    def loss(o):
        return path.losses(o, x0, x_t, t, noise, prediction)["loss"].mean().item()

    best = loss(out)
    for factor in (0.9, 1.1):
        assert loss(out * factor) > best, (prediction, factor)
    assert loss(out + 0.05) > best
