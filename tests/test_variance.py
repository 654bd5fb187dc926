"""Reverse variances: learned interpolation (Nichol & Dhariwal) and Analytic-DPM (Bao et al.)."""

import math

import pytest
import torch

from ddpm.analytic_variance import analytic_log_variance, estimate_gamma, optimal_reverse_variance
from ddpm.diffusion import learned_range_log_variance
from ddpm.losses import full_vlb
from ddpm.oracles import GaussianMixture
from ddpm.samplers import sample
from ddpm.schedule import make_schedule, respace


def test_learned_range_interpolates_between_beta_tilde_and_beta():
    s = make_schedule("linear", 100)
    k = torch.arange(1, 100)
    lo, hi = s.posterior_log_variance_clipped[k], s.betas[k].log()
    for v, expect in [(-1.0, lo), (1.0, hi), (0.0, (lo + hi) / 2)]:
        got = learned_range_log_variance(s, torch.full((99, 1), v, dtype=torch.float64), k)[:, 0]
        assert torch.allclose(got, expect)


@pytest.fixture(scope="module")
def gaussian_setup():
    s = make_schedule("cosine", 50)
    gauss = GaussianMixture.gaussian(torch.tensor([0.2, -0.3]), 0.5)
    x0, _ = gauss.sample(4000, torch.Generator().manual_seed(0))
    gamma = estimate_gamma(
        s, gauss.model_fn(s, "eps"), [x0], generator=torch.Generator().manual_seed(1)
    )
    return s, gauss, gamma


def test_analytic_variance_equals_the_closed_form_for_gaussian_data(gaussian_setup):
    """For Gaussian data the true reverse kernel is Gaussian with variance
    beta_tilde + c1^2 Var[x0 | x_t] (total variance); Analytic-DPM must recover it."""
    s, gauss, gamma = gaussian_setup
    truth = s.posterior_variance + s.posterior_mean_coef1**2 * gauss.posterior_variance(
        s.alphas_cumprod
    )
    got = analytic_log_variance(s, gamma).exp()
    assert torch.allclose(got[1:], truth[1:], rtol=0.03)
    assert got[0].item() == pytest.approx(truth[0].item(), rel=0.03)  # the decoder: Var[x0 | x_1]


def test_analytic_variance_respects_its_bounds(gaussian_setup):
    s, _, gamma = gaussian_setup
    var = analytic_log_variance(s, gamma).exp()[1:]
    lo, beta = s.posterior_variance[1:], s.betas[1:]
    # Bao et al. Theorem 2: beta_tilde <= sigma*^2 <= beta / alpha (which exceeds beta by 1/alpha,
    # and the optimum does use that room at some steps here)
    assert (var >= lo * (1 - 1e-12)).all() and (var <= beta / s.alphas[1:] * (1 + 1e-12)).all()
    # Theorem 2's extremes: Gamma = 1 gives lambda^2, Gamma = 0 the upper bound beta / alpha
    a, ap = s.alphas_cumprod[10], s.alphas_cumprod_prev[10]
    lam2 = s.posterior_variance[10]
    assert optimal_reverse_variance(a, ap, torch.tensor(1.0).double(), lam2) == pytest.approx(
        lam2.item()
    )
    assert optimal_reverse_variance(
        a, ap, torch.tensor(0.0).double(), lam2
    ).item() == pytest.approx((s.betas[10] / s.alphas[10]).item(), rel=1e-9)


def test_analytic_variance_gives_the_tightest_bound(gaussian_setup):
    """The KL-optimal variance per step: its VLB is below fixed-small's and fixed-large's, and for
    Gaussian data (exact reverse kernels) it is tight: equal to the NLL within Monte Carlo error."""
    s, gauss, gamma = gaussian_setup
    x0, _ = gauss.sample(8000, torch.Generator().manual_seed(5))
    fn = gauss.model_fn(s, "eps")
    bpd = {}
    for v in ("fixed_small", "fixed_large", "analytic"):
        table = analytic_log_variance(s, gamma) if v == "analytic" else None
        bpd[v] = full_vlb(
            s,
            fn,
            x0,
            "eps",
            v,
            "gaussian",
            table,
            timesteps_per_call=10,
            generator=torch.Generator().manual_seed(6),
        )["total"]
    assert (
        bpd["analytic"].mean() < bpd["fixed_small"].mean()
        and bpd["analytic"].mean() < bpd["fixed_large"].mean()
    )
    gap = bpd["analytic"] - (-gauss.log_prob(x0) / (2 * math.log(2)))
    assert abs(gap.mean().item()) < 4 * gap.std().item() / math.sqrt(len(gap))


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_samplers_use_the_analytic_variance_on_respaced_chains(gaussian_setup, method):
    s, gauss, gamma = gaussian_setup
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    stds = {}
    for variance in ("analytic", "fixed_small"):
        x = sample(
            gauss.model_fn(s),
            s,
            x_T,
            method,
            steps=10,
            variance=variance,
            analytic_gamma=gamma,
            generator=torch.Generator().manual_seed(3),
            **({"eta": 1.0} if method == "ddim" else {}),
        )
        stds[variance] = x.std(0).mean().item()
    # few steps: the analytic variance keeps the right spread (0.5), where beta_tilde does not
    assert abs(stds["analytic"] - 0.5) < 0.03
    assert abs(stds["fixed_small"] - 0.5) > 2 * abs(stds["analytic"] - 0.5)
    with pytest.raises(ValueError, match="Gamma"):
        sample(gauss.model_fn(s), s, x_T, method, steps=10, variance="analytic")
    assert respace(s, [0, 10, 49]).num_timesteps == 3
