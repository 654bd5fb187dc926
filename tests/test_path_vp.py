"""path=vp, continuous-time variance preserving diffusion (Song et al. 2021): the discrete chain in
the limit of many steps, linear or cosine, with every prediction type."""

import math

import pytest
import torch

from conftest import compose
from ddpm.checks import ConfigError
from ddpm.config import parse_train
from ddpm.paths import VPPath
from ddpm.schedule import make_schedule
from path_checks import (
    check_exact_network_denoises_to_the_posterior_mean,
    check_exact_network_minimises_the_loss,
    check_forward_process,
)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_the_process_is_variance_preserving_and_consistent(schedule):
    path = VPPath(schedule)
    check_forward_process(path)
    t = torch.linspace(path.t_min, path.t_max, 50, dtype=torch.float64)
    assert torch.allclose(path.alpha(t) ** 2 + path.sigma(t) ** 2, torch.ones_like(t))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_it_is_the_discrete_chain_in_the_limit(schedule):
    """alpha_bar(t) at t = (k + 1) / T against the discrete schedule of the same name with
    T = 1000 (linear betas 1e-4..0.02, cosine s = 0.008): within 2% in alpha_bar, log-SNR within
    0.05 over the range both share."""
    path, chain = VPPath(schedule), make_schedule(schedule, 1000)
    k = torch.arange(0, 990, 7)
    t = (k + 1).double() / 1000
    abar = path.alpha(t) ** 2
    assert torch.allclose(abar, chain.alphas_cumprod[k], rtol=0.02, atol=1e-4)
    assert (abar.log() - chain.alphas_cumprod[k].log()).abs().max() < 0.1
    assert path.t_max == 1.0 if schedule == "linear" else 0.99 < path.t_max < 1.0
    assert math.isclose(path.sigma_max, VPPath().sigma_max, rel_tol=1e-9)  # cosine stops there


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "velocity"])
def test_the_exact_network_denoises_and_minimises_the_loss(prediction):
    for schedule in ("linear", "cosine"):
        path = VPPath(schedule)
        check_exact_network_denoises_to_the_posterior_mean(path, prediction)
    check_exact_network_minimises_the_loss(VPPath(), prediction)


def test_training_times_are_uniform_from_t_eps():
    path = VPPath(t_eps=1e-3)
    t = path.sample_times(100_000, torch.Generator().manual_seed(0), "cpu")
    assert t.min() >= 1e-3 and t.max() <= 1.0
    assert abs(t.mean().item() - 0.5005) < 4 * math.sqrt(1 / 12 / 100_000)


def test_options_of_the_discrete_chain_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="model.timestep_sampling=importance needs path=ddpm"):
        parse_train(compose("train", "path=vp", "model.timestep_sampling=importance"))
    with pytest.raises(ConfigError, match="path.schedule='sigmoid' is not valid"):
        parse_train(compose("train", "path=vp", "path.schedule=sigmoid"))
