"""path=flow (flow matching / rectified flow): the linear interpolant, its velocity target, its
training times, the minibatch OT coupling, and Euler in noise levels as the flow's own Euler."""

import itertools
import math

import pytest
import torch

from conftest import compose
from ddpm.checks import ConfigError
from ddpm.config import parse_train
from ddpm.oracles import GaussianMixture
from ddpm.paths import FlowPath
from ddpm.paths.coupling import ot_pairs
from ddpm.samplers import Denoiser, sample, step_levels
from path_checks import (
    check_exact_network_denoises_to_the_posterior_mean,
    check_exact_network_minimises_the_loss,
    check_forward_process,
)


@pytest.mark.parametrize("prediction", ["velocity", "x0", "eps"])
def test_the_exact_network_denoises_and_minimises_the_loss(prediction):
    path = FlowPath()
    check_forward_process(path)
    check_exact_network_denoises_to_the_posterior_mean(path, prediction)
    check_exact_network_minimises_the_loss(path, prediction)


def test_the_interpolant_and_its_velocity_target():
    path = FlowPath()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    t = torch.rand(5, generator=g)
    x_t = path.q_sample(x0, t, eps)
    assert torch.allclose(x_t, (1 - t[:, None]) * x0 + t[:, None] * eps)
    assert torch.allclose(path.target(x0, eps, x_t, t, "velocity"), eps - x0)
    assert torch.allclose(path.x0(eps - x0, x_t, t, "velocity"), x0, atol=1e-6)
    assert torch.allclose(path.noise_level(t.double()), t.double() / (1 - t.double()))


def test_euler_in_noise_levels_is_the_flows_euler_in_t():
    """Our ``euler`` (and ``ddim``) on the flow path, over the levels of a time grid, equals
    ``x <- x + (t' - t) v(x, t)`` on the path's own scale, the flow matching sampler."""
    path = FlowPath()
    mix = GaussianMixture.gaussian(torch.tensor([0.3, -0.2]), 0.4)
    net = mix.network(path, "velocity")
    x = x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = step_levels(path, 8, "trailing")
    ts = path.time_at(sigmas).tolist()
    x = x_T
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * net(x, torch.full((64,), 1000.0 * t))
    for method in ("euler", "ddim"):
        got = sample(net, path, x_T, method, steps=8, spacing="trailing")
        assert torch.allclose(got, x, atol=1e-6), method
    span = path.t_max - path.t_min  # trailing: evenly spaced from t_max, t_min + span / 8 last
    assert ts[0] == pytest.approx(path.t_max) and ts[-2] == pytest.approx(path.t_min + span / 8)


def test_logit_normal_times_and_the_resolution_shift():
    n = 100_000
    g = torch.Generator().manual_seed(0)
    t = FlowPath("logit_normal", m=0.5, s=0.8).sample_times(n, g, "cpu").double()
    logit = (t / (1 - t)).log()
    assert abs(logit.mean().item() - 0.5) < 4 * 0.8 / math.sqrt(n)
    assert abs(logit.std().item() / 0.8 - 1) < 4 / math.sqrt(2 * n)
    shifted = FlowPath(shift=3.0).sample_times(n, g, "cpu")
    # t' = 3 t / (1 + 2 t) with t uniform: P(t' <= 3/4) = P(t <= 1/2) = 1/2
    assert abs((shifted <= 0.75).double().mean().item() - 0.5) < 4 * 0.5 / math.sqrt(n)
    assert shifted.min() >= 0 and shifted.max() <= 1


def test_ot_coupling_is_the_optimal_assignment_within_each_class():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)

    def cost(perm):
        return ((x0 - noise[list(perm)]) ** 2).sum().item()

    best = min(itertools.permutations(range(6)), key=cost)
    assert cost(ot_pairs(x0, noise).tolist()) == pytest.approx(cost(best))
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    perm = ot_pairs(x0, noise, labels)
    assert (labels[perm] == labels).all()  # each example keeps a partner of its class
    assert sorted(perm.tolist()) == list(range(6))
    path = FlowPath(coupling="ot")
    paired = path.couple(x0, noise)
    assert cost(range(6)) >= ((x0 - paired) ** 2).sum().item()
    assert torch.equal(FlowPath().couple(x0, noise), noise)


def test_the_denoiser_of_the_flow_is_its_velocity_network():
    """``x0 = x_t - t v`` through the denoiser (on the x / (1 - t) scale), at t = 0.5."""
    path = FlowPath()
    v = torch.randn(4, 2, dtype=torch.float64)
    den = Denoiser(lambda x, c: v, path, "velocity")
    x_t = torch.randn(4, 2, dtype=torch.float64)
    assert torch.allclose(den(x_t / 0.5, 1.0).x0, x_t - 0.5 * v)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.prediction=mu"], "model.prediction=mu is not defined on path=flow; choose auto"),
        (["denoiser.variance=fixed_large"], "fixed_large is a reverse variance of the discrete"),
        (["path.t_max=1.0"], r"path.t_max=1.0 is not valid; it must be a number in \(0, 1\)"),
        (["sampler.steps=null"], "sampler.steps=null walks every trained level of path=ddpm"),
        (["path.coupling=sinkhorn"], "path.coupling='sinkhorn' is not valid; choose one of"),
        (["path.t_min=0.9", "path.t_max=0.5"], "path.t_min=0.9 is not valid; it must be below"),
        (["model.loss=hybrid", "model.variance=learned_range"], "needs path=ddpm"),
    ],
)
def test_what_the_flow_does_not_have_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse_train(compose("train", "path=flow", *overrides))
