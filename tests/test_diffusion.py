"""Forward process (eq. 14, 31), posterior (eq. 32-34) against Monte Carlo and Bayes' rule."""

import math

import torch

from ddpm.diffusion import q_mean_variance, q_posterior, q_sample, q_step
from ddpm.schedule import make_schedule


def test_iterated_eq14_matches_closed_form_eq31(gen):
    """Prop. 3: running eq. 14 t times gives N(sqrt(abar_t) x0, (1 - abar_t) I) (Monte Carlo)."""
    s = make_schedule("linear", 50)
    n = 200_000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x = x0
    for k in range(30):
        x = q_step(s, x, torch.full((n,), k), torch.randn(n, 1, generator=gen, dtype=torch.float64))
    kk = torch.full((n,), 29)
    mean, var, log_var = q_mean_variance(s, x0, kk)
    se_mean = math.sqrt(var[0].item() / n)
    assert abs(x.mean().item() - mean[0].item()) < 5 * se_mean
    se_var = var[0].item() * math.sqrt(2 / n)
    assert abs(x.var().item() - var[0].item()) < 5 * se_var
    assert torch.allclose(log_var, var.log())
    # and the one-shot sampler draws from the same law
    y = q_sample(s, x0, kk, torch.randn(n, 1, generator=gen, dtype=torch.float64))
    assert abs(y.mean().item() - mean[0].item()) < 5 * se_mean


def test_posterior_matches_bayes_rule_on_a_grid():
    """Prop. 4: q(x_{t-1}|x_t,x0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x0), normalised numerically."""
    s = make_schedule("cosine", 20)
    x0, xt = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[-0.4]], dtype=torch.float64)
    grid = torch.linspace(-12, 12, 400_001, dtype=torch.float64)
    dx = grid[1] - grid[0]
    for k in [1, 5, 19]:
        beta, abar_prev = s.betas[k], s.alphas_cumprod_prev[k]
        log_lik = -0.5 * (xt[0, 0] - (1 - beta).sqrt() * grid) ** 2 / beta
        log_prior = -0.5 * (grid - abar_prev.sqrt() * x0[0, 0]) ** 2 / (1 - abar_prev)
        w = torch.exp(log_lik + log_prior - (log_lik + log_prior).max())
        w = w / (w.sum() * dx)
        m = (grid * w).sum() * dx
        v = ((grid - m) ** 2 * w).sum() * dx
        mean, var, log_var = q_posterior(s, x0, xt, torch.tensor([k]))
        assert abs(mean.item() - m.item()) < 1e-8
        assert abs(var.item() - v.item()) < 1e-8 * max(1.0, v.item()) + 1e-10
        assert abs(log_var.item() - math.log(v.item())) < 1e-6


def test_posterior_at_first_step_is_x0():
    s = make_schedule("linear", 10)
    x0, xt = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    mean, var, log_var = q_posterior(s, x0, xt, torch.zeros(4, dtype=torch.long))
    assert torch.allclose(mean, x0) and (var == 0).all() and torch.isfinite(log_var).all()
