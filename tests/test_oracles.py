"""The exact denoiser of Gaussian mixtures with axis-aligned components, against independent
references: ``torch.distributions`` for the noised density and Bayes' rule on a grid for the
posterior mean."""

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from ddpm.oracles import GaussianMixture

MIX = GaussianMixture(
    torch.tensor([0.3, 0.7], dtype=torch.float64),
    torch.tensor([[-0.6, 0.2], [0.5, -0.3]], dtype=torch.float64),
    torch.tensor([[0.3, 0.05], [0.1, 0.4]], dtype=torch.float64),
)


def noised(data: GaussianMixture, abar: float) -> MixtureSameFamily:
    """``q(x_t)`` by torch.distributions: each component ``N(sqrt(abar) m, abar s^2 + 1 - abar)``."""
    scale = (abar * data.variances + 1 - abar).sqrt()
    comps = Independent(Normal(abar**0.5 * data.means, scale), 1)
    return MixtureSameFamily(Categorical(data.weights), comps)


def test_noised_log_density_matches_torch_distributions():
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for abar in (1.0, 0.7, 0.05):
        ours = MIX.log_prob(x, torch.full((50,), abar, dtype=torch.float64))
        torch.testing.assert_close(ours, noised(MIX, abar).log_prob(x))


def test_posterior_mean_matches_bayes_rule_on_a_grid():
    abar = 0.6
    g = torch.linspace(-2.5, 2.5, 1001, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)  # x_0 candidates
    log_prior = noised(MIX, 1.0).log_prob(grid)
    x_t = torch.tensor([[0.1, 0.4], [-0.5, -0.2], [0.8, 0.0]], dtype=torch.float64)
    lik = Normal(abar**0.5 * grid[None], (1 - abar) ** 0.5).log_prob(x_t[:, None]).sum(-1)
    w = torch.softmax(log_prior[None] + lik, dim=1)  # p(x_0 | x_t) on the grid
    truth = w @ grid
    ours = MIX.posterior_mean(x_t, torch.full((3,), abar, dtype=torch.float64))
    torch.testing.assert_close(ours, truth, atol=1e-6, rtol=0)


def test_diagonal_gaussian_samples_have_its_per_coordinate_spread():
    std = torch.tensor([1.0, 0.1, 0.01], dtype=torch.float64)
    data = GaussianMixture.gaussian(torch.tensor([0.2, 0.0, -0.3]), std)
    x, _ = data.sample(200_000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        x.std(0) / std, torch.ones(3, dtype=torch.float64), atol=0.01, rtol=0
    )
    iso = GaussianMixture.gaussian(torch.zeros(2), 0.5)
    assert iso.stds.shape == (1,) and torch.equal(iso.variances, torch.full((1, 2), 0.25).double())
