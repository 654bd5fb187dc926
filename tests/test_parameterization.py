"""eps / x0 / v / mu (eq. 42) convert to one another exactly."""

import pytest
import torch

from ddpm.diffusion import q_posterior, q_sample
from ddpm.parameterization import PREDICTIONS, convert, from_x0, predict_x0_eps, x0_error_scale
from ddpm.schedule import make_schedule


@pytest.fixture
def setup(gen):
    s = make_schedule("cosine", 100)
    x0 = torch.randn(16, 3, 4, 4, generator=gen, dtype=torch.float64)
    noise = torch.randn(16, 3, 4, 4, generator=gen, dtype=torch.float64)
    k = torch.randint(0, 100, (16,), generator=gen)
    return s, x0, noise, k, q_sample(s, x0, k, noise)


@pytest.mark.parametrize("src", PREDICTIONS)
@pytest.mark.parametrize("dst", PREDICTIONS)
def test_round_trips(setup, src, dst):
    s, x0, noise, k, x_t = setup
    out = from_x0(s, src, x0, x_t, k)
    back = convert(s, convert(s, out, x_t, k, src, dst), x_t, k, dst, src)
    assert torch.allclose(back, out, rtol=1e-7, atol=1e-7)


def test_targets_are_the_right_quantities(setup):
    s, x0, noise, k, x_t = setup
    assert torch.allclose(from_x0(s, "eps", x0, x_t, k), noise, atol=1e-8)
    abar = s.alphas_cumprod[k].reshape(-1, 1, 1, 1)
    assert torch.allclose(
        from_x0(s, "v", x0, x_t, k), abar.sqrt() * noise - (1 - abar).sqrt() * x0, atol=1e-8
    )
    mu, _, _ = q_posterior(s, x0, x_t, k)
    assert torch.allclose(from_x0(s, "mu", x0, x_t, k), mu, atol=1e-10)


def test_clip_x0_keeps_estimates_consistent(setup):
    s, x0, noise, k, x_t = setup
    out = from_x0(s, "eps", 3 * x0, x_t, k)
    x0_hat, eps_hat = predict_x0_eps(s, "eps", out, x_t, k, clip_x0=True)
    assert x0_hat.abs().max() <= 1.0
    assert torch.allclose(from_x0(s, "eps", x0_hat, x_t, k), eps_hat)


@pytest.mark.parametrize("pred", PREDICTIONS)
def test_x0_error_scale(setup, pred):
    s, x0, noise, k, x_t = setup
    delta = 1e-3 * torch.randn_like(x0)
    a = from_x0(s, pred, x0, x_t, k)
    b = from_x0(s, pred, x0 + delta, x_t, k)
    ratio = ((a - b) ** 2).flatten(1).sum(1) / (delta**2).flatten(1).sum(1)
    assert torch.allclose(ratio, x0_error_scale(s, pred, k), rtol=1e-6)


def test_unknown_prediction_lists_options(setup):
    s, x0, noise, k, x_t = setup
    with pytest.raises(ValueError, match="eps, x0, v, mu"):
        from_x0(s, "foo", x0, x_t, k)
