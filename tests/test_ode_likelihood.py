"""Exact likelihood by the probability-flow ODE, on every path, against analytic log-densities."""

import math

import pytest
import torch

from ddpm.ode_likelihood import ode_bits_per_dim, ode_log_likelihood
from ddpm.oracles import GaussianMixture
from ddpm.paths import DDPMPath, EDMPath, FlowPath, VPPath
from ddpm.samplers import Denoiser
from ddpm.schedule import make_schedule

PATHS = {
    "ddpm": lambda: DDPMPath(make_schedule("linear", 1000)),
    "vp": VPPath,
    "edm": EDMPath,
    "flow": FlowPath,
}


@pytest.mark.parametrize("name", sorted(PATHS))
def test_gaussian_with_its_exact_network_matches_the_analytic_log_density(name):
    """Through each path's own network seam (its c_noise, input scaling and native target) the
    ODE likelihood of the exact network is the data's log-density, to the ends of the range: the
    prior at sigma_max and the data at sigma_min are each off by O(sigma_min^2) nats."""
    path = PATHS[name]()
    g = GaussianMixture.gaussian(torch.tensor([0.2, -0.3]), 0.5)
    x0, _ = g.sample(64, torch.Generator().manual_seed(0))
    den = Denoiser(g.network(path), path)
    lp = ode_log_likelihood(den, x0, exact_trace=True, rtol=1e-6, atol=1e-6)
    err = lp - g.log_prob(x0)
    assert err.abs().max() < 0.02 and err.mean().abs() < 0.01, (name, err.abs().max())


def test_hutchinson_is_unbiased_on_a_mixture():
    path = DDPMPath(make_schedule("cosine", 200))
    mix = GaussianMixture(
        torch.tensor([0.4, 0.6]).double(),
        torch.tensor([[-0.5, 0.1], [0.5, -0.2]]).double(),
        torch.tensor([0.2, 0.3]).double(),
    )
    x0, _ = mix.sample(32, torch.Generator().manual_seed(1))
    den = Denoiser(mix.network(path), path)
    exact = ode_log_likelihood(den, x0, exact_trace=True)
    probes = torch.stack(
        [ode_log_likelihood(den, x0, generator=torch.Generator().manual_seed(i)) for i in range(16)]
    )
    se = probes.std(0) / 4  # 16 probes
    assert ((probes.mean(0) - exact).abs() <= 4 * se + 1e-3).all()  # unbiased, per example
    assert (exact - mix.log_prob(x0)).abs().mean() < 0.05


def test_dequantized_bits_per_dim_is_a_finite_positive_code_length():
    path = DDPMPath(make_schedule("linear", 100))
    g = GaussianMixture.gaussian(torch.zeros(4), 0.5)
    x0 = (
        torch.randint(0, 256, (8, 4), generator=torch.Generator().manual_seed(0)).double() / 127.5
        - 1
    )
    den = Denoiser(g.network(path), path)
    bpd = ode_bits_per_dim(den, x0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(bpd).all() and (bpd > 0).all() and (bpd < 12).all()


def test_the_ode_solvers_stop_on_a_non_finite_network_or_a_step_underflow():
    from ddpm.odeint import ODEError, dopri5
    from ddpm.samplers import sample
    from ddpm.schedule import make_schedule

    def nan_net(x, k):
        return torch.full_like(x, float("nan"))

    calls = []

    def counted(x, k):
        calls.append(1)
        return nan_net(x, k)

    with pytest.raises(ODEError, match=r"sampler=ode stopped at noise level sigma=157.*not finite"):
        sample(counted, make_schedule("linear", 1000), torch.randn(4, 2), "ode")
    assert len(calls) <= 7  # the first step's stages, not an endless loop
    # a derivative that oscillates faster than the resolution of t: no step meets the tolerance
    with pytest.raises(ODEError, match="step size underflowed") as e:
        dopri5(lambda t, y: 1e8 * torch.full_like(y, math.sin(1e13 * t)), torch.ones(3, 1),
               0.0, 2.0, 1e-6, 1e-6)  # fmt: skip
    assert e.value.t == 0.0
