"""Prop. 5 (Gaussian KL), the discretized decoder, Prop. 2 and the exact-optimum VLB."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from ddpm.diffusion import q_step
from ddpm.likelihood import (
    discretized_gaussian_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
    isotropic_gaussian_kl,
)
from ddpm.losses import LOSS_TYPES, full_vlb, prior_bpd, training_losses
from ddpm.oracles import GaussianMixture
from ddpm.parameterization import from_x0
from ddpm.schedule import make_schedule


def test_gaussian_kl_matches_torch_distributions(gen):
    m1, m2 = torch.randn(100, generator=gen), torch.randn(100, generator=gen)
    lv1, lv2 = torch.randn(100, generator=gen), torch.randn(100, generator=gen)
    ref = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(gaussian_kl(m1, lv1, m2, lv2), ref, atol=1e-5)


def test_isotropic_kl_prop5_matches_multivariate_normal(gen):
    d = 5
    mu1, mu2 = (
        torch.randn(d, generator=gen, dtype=torch.float64),
        torch.randn(d, generator=gen, dtype=torch.float64),
    )
    v1, v2 = torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.7, dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    ref = kl_divergence(MultivariateNormal(mu1, v1 * eye), MultivariateNormal(mu2, v2 * eye))
    assert isotropic_gaussian_kl(mu1, v1, mu2, v2).item() == pytest.approx(ref.item(), rel=1e-10)


def test_discretized_decoder_sums_to_one_over_256_bins(gen):
    x = torch.linspace(-1, 1, 256, dtype=torch.float64)
    for mean, log_var in [(0.0, -2.0), (0.9, -9.0), (-1.2, 1.0), (0.33, -14.0)]:
        logp = discretized_gaussian_log_likelihood(
            x, torch.full_like(x, mean), torch.full_like(x, log_var)
        )
        assert torch.isfinite(logp).all()
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_discretized_decoder_matches_density_times_bin_width_when_narrow():
    # a wide Gaussian is almost flat over one bin: P(bin) ≈ density × width
    x = torch.tensor([0.0], dtype=torch.float64)
    logp = discretized_gaussian_log_likelihood(
        x, torch.tensor([0.1]).double(), torch.tensor([0.0]).double()
    )
    approx = gaussian_log_likelihood(
        x, torch.tensor([0.1]).double(), torch.tensor([0.0]).double()
    ) + math.log(2 / 255)
    assert logp.item() == pytest.approx(approx.item(), abs=1e-4)


def _perturbed_mu_model(s, gmm):
    exact = gmm.model_fn(s, "x0")

    def fn(x_t, k):
        x0 = exact(x_t, k) + 0.2 * torch.sin(3 * x_t)  # deliberately imperfect
        return from_x0(s, "mu", x0, x_t, k)

    return fn


def test_prop2_decomposition_equals_direct_vlb(gen):
    """eq. 23 (direct, sampled along whole forward chains) == eq. 25 (L_T + sum L_{t-1} + L_0)."""
    T, n = 4, 100_000
    s = make_schedule("linear", T)
    gmm = GaussianMixture(
        torch.tensor([0.3, 0.7]).double(),
        torch.tensor([[-0.8], [0.5]]).double(),
        torch.tensor([0.1, 0.3]).double(),
    )
    model = _perturbed_mu_model(s, gmm)
    log_var = s.fixed_large_log_variance
    x0, _ = gmm.sample(n, gen)
    # direct: E_q[-log p(x_T) - sum_t log p(x_{t-1}|x_t) / q(x_t|x_{t-1})]
    xs = [x0]
    for k in range(T):
        xs.append(
            q_step(
                s,
                xs[-1],
                torch.full((n,), k),
                torch.randn(n, 1, generator=gen, dtype=torch.float64),
            )
        )
    direct = -gaussian_log_likelihood(xs[T], torch.zeros_like(x0), torch.zeros_like(x0))
    for k in range(T):
        kk = torch.full((n,), k)
        mean = model(xs[k + 1], kk)
        log_p = gaussian_log_likelihood(xs[k], mean, torch.full_like(x0, log_var[k].item()))
        b = s.betas[k]
        log_q = gaussian_log_likelihood(
            xs[k + 1], (1 - b).sqrt() * xs[k], torch.full_like(x0, b.log().item())
        )
        direct = direct - (log_p - log_q)
    direct = direct.squeeze(1) / math.log(2)
    dec = full_vlb(s, model, x0, "mu", "fixed_large", decoder="gaussian", generator=gen)["total"]
    se = math.sqrt(direct.var().item() / n + dec.var().item() / n)
    assert abs(direct.mean().item() - dec.mean().item()) < 5 * se


def test_exact_optimum_vlb_matches_analytic_bound(gen):
    """Data N(m, s^2 I): with the exact eps-model and sigma^2 = beta_tilde every term of the VLB
    is known in closed form; the sampled bound must agree within Monte Carlo error, and it must
    lie above the true NLL."""
    T, n = 20, 20_000
    m, sd = torch.tensor([0.3, -0.5], dtype=torch.float64), 0.4
    s = make_schedule("cosine", T)
    gmm = GaussianMixture.gaussian(m, sd)
    x0, _ = gmm.sample(n, gen)
    got = full_vlb(
        s,
        gmm.model_fn(s, "eps"),
        x0,
        "eps",
        "fixed_small",
        decoder="gaussian",
        timesteps_per_call=5,
        generator=gen,
    )

    abar, c1 = s.alphas_cumprod, s.posterior_mean_coef1
    vpost = gmm.posterior_variance(abar)  # Var[x0 | x_t] per coordinate
    var = s.posterior_log_variance_clipped.exp()
    terms = c1**2 * vpost / (2 * var)  # k >= 1: sigma^2 = beta_tilde, only the mean gap remains
    terms[0] = 0.5 * math.log(2 * math.pi * var[0]) + vpost[0] / (2 * var[0])  # L_0
    aT = abar[-1]
    prior = 0.5 * ((1 - aT) + aT * ((m**2).mean() + sd**2) - 1 - torch.log(1 - aT))
    analytic = (terms.sum() + prior) / math.log(2)
    est = got["total"]
    assert abs(est.mean().item() - analytic.item()) < 5 * est.std().item() / math.sqrt(n)
    assert torch.allclose(got["prior"].mean(), prior / math.log(2), rtol=0.05)
    true_nll = (0.5 * math.log(2 * math.pi * sd**2) + 0.5) / math.log(2)
    assert analytic.item() > true_nll


def test_prior_term_is_small_for_a_good_schedule():
    s = make_schedule("linear", 1000)
    x0 = torch.rand(8, 3, 4, 4) * 2 - 1
    assert (prior_bpd(s, x0) < 1e-4).all()


@pytest.mark.parametrize("loss", LOSS_TYPES)
@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "mu"])
def test_training_losses_are_per_example_and_zero_at_the_target(loss, prediction, gen):
    s = make_schedule("linear", 100)
    x0 = torch.rand(6, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    k = torch.randint(1, 100, (6,), generator=gen)
    from ddpm.diffusion import q_sample

    x_t = q_sample(s, x0, k, noise)
    perfect = from_x0(s, prediction, x0, x_t, k)
    out = training_losses(s, perfect, x0, k, noise, x_t, prediction, loss)
    assert out["loss"].shape == (6,)
    assert torch.allclose(out["mse"], torch.zeros(6, dtype=torch.float64), atol=1e-12)
    worse = training_losses(s, perfect + 0.1, x0, k, noise, x_t, prediction, loss)
    assert (worse["loss"] > out["loss"]).all()


def test_hybrid_vlb_term_does_not_train_the_mean(gen):
    s = make_schedule("linear", 100)
    x0 = torch.rand(4, 1, 4, 4, generator=gen) * 2 - 1
    noise = torch.randn(x0.shape, generator=gen)
    k = torch.randint(1, 100, (4,), generator=gen)
    out = torch.randn(4, 2, 4, 4, generator=gen, requires_grad=True)
    terms = training_losses(
        s, out, x0, k, noise, prediction="eps", loss="hybrid", variance="learned_range"
    )
    terms["vlb"].sum().backward()
    assert out.grad[:, :1].abs().max() == 0  # mean half: stop-gradient
    assert out.grad[:, 1:].abs().max() > 0  # variance half: trained


def test_full_vlb_with_per_example_generators_does_not_depend_on_the_batch(gen):
    """evaluate.py gives every test example its own generator, so bits/dim are the same for any
    batch size and any number of devices."""
    from ddpm.random import sample_generators

    s = make_schedule("linear", 30)
    gmm = GaussianMixture.gaussian(torch.tensor([0.3, -0.5], dtype=torch.float64), 0.4)
    x0, _ = gmm.sample(7, gen)

    def vlb(x, ids, seed=0):
        return full_vlb(
            s, gmm.model_fn(s, "eps"), x, "eps", "fixed_small", "gaussian",
            timesteps_per_call=4, generator=sample_generators(seed, ids),
        )["terms"]  # fmt: skip

    whole = vlb(x0, range(7))
    parts = torch.cat([vlb(x0[:3], range(3)), vlb(x0[3:], range(3, 7))])
    assert torch.allclose(whole, parts, atol=1e-12)
    assert not torch.allclose(whole, vlb(x0, range(7), seed=1))


def test_bpd_standard_error_matches_the_spread_of_repeated_estimates():
    """``bpd_stderr`` is calibrated: over many independent test sets of the same size, the
    means scatter by what one set's standard error predicts (Monte Carlo reference)."""
    from ddpm.models import standard_error

    g = torch.Generator().manual_seed(0)
    sets = 3.0 + 2.0 * torch.randn(2000, 50, generator=g, dtype=torch.float64)
    predicted = float(torch.tensor([standard_error(s) for s in sets]).mean())
    observed = float(sets.mean(1).std())
    assert predicted == pytest.approx(2.0 / math.sqrt(50), rel=0.03)
    assert observed == pytest.approx(predicted, rel=0.05)
    assert standard_error(torch.ones(1, dtype=torch.float64)) == 0.0


def test_image_bits_per_dim_with_the_discretized_decoder_against_torch_distributions():
    """``full_vlb`` on 256-level images against every term rebuilt from ``torch.distributions``
    (Normal KLs of Prop. 2, the decoder as CDF differences over the pixel bins, the prior KL),
    with the same per-example noise draws."""
    from torch.distributions import Normal

    from ddpm.random import sample_generators

    s = make_schedule("cosine", 6)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (3, 1, 2, 2), generator=g).double() / 127.5 - 1  # pixel levels

    def model(x_t, k):  # any fixed network: eps = 0.3 x_t + 0.05 k
        return 0.3 * x_t + 0.05 * k.double()[:, None, None, None]

    got = full_vlb(
        s, model, x0, "eps", "fixed_small", "discretized", generator=sample_generators(7, range(3))
    )
    gens = sample_generators(7, range(3))
    abar, abar_prev = s.alphas_cumprod, s.alphas_cumprod_prev
    total = torch.zeros(3, dtype=torch.float64)
    for k in reversed(range(s.num_timesteps)):  # the order full_vlb draws its noise in
        noise = torch.stack(
            [torch.randn(x0.shape[1:], generator=gi, dtype=torch.float64) for gi in gens]
        )
        a, ap, beta = abar[k], abar_prev[k], s.betas[k]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        x0_hat = (x_t - (1 - a).sqrt() * model(x_t, torch.full((3,), k))) / a.sqrt()
        mean_p = beta * ap.sqrt() / (1 - a) * x0_hat + (1 - ap) * (1 - beta).sqrt() / (1 - a) * x_t
        var_p = s.posterior_variance[1] if k == 0 else beta * (1 - ap) / (1 - a)  # beta_tilde
        p = Normal(mean_p, var_p.sqrt())
        if k == 0:
            upper = torch.where(x0 > 0.999, torch.inf, x0 + 1 / 255)
            lower = torch.where(x0 < -0.999, -torch.inf, x0 - 1 / 255)
            nats = -(p.cdf(upper) - p.cdf(lower)).log()
        else:
            mean_q = beta * ap.sqrt() / (1 - a) * x0 + (1 - ap) * (1 - beta).sqrt() / (1 - a) * x_t
            nats = kl_divergence(Normal(mean_q, var_p.sqrt()), p)
        total += nats.mean((1, 2, 3)) / math.log(2)
    aT = abar[-1]
    prior = kl_divergence(Normal(aT.sqrt() * x0, (1 - aT).sqrt()), Normal(0.0, 1.0))
    total += prior.mean((1, 2, 3)) / math.log(2)
    assert torch.allclose(got["total"], total, rtol=1e-6)
    assert got["total"].min() > 0  # bits of a discrete image
