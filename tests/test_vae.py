"""The VAE baseline (seed Example 1, Prop. 1): its bounds against a model whose likelihood is known
in closed form, and the train -> sample -> evaluate path it shares with diffusion."""

import json
import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from conftest import QUIET, run_cli
from ddpm.nets import VAE, ConvVAE
from ddpm.vae import draw_vae_samples, elbo, importance_weighted_bound, log_importance_weights


class LinearGaussianVAE(VAE):
    """``z ~ N(0, I_k)``, ``x | z ~ N(W z + b, s2 I_d)``: ``p(x) = N(b, W W^T + s2 I)`` exactly.
    ``W`` has orthogonal columns, so the true posterior is diagonal and an encoder can equal it."""

    def __init__(self, d: int = 5, k: int = 3, s2: float = 0.3, exact_encoder: bool = True):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
        self.W = q * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)[:k]
        self.b = torch.randn(d, generator=g, dtype=torch.float64)
        self.s2, self.latent_dim = s2, k
        wtw = torch.diag(self.W.T @ self.W)  # diagonal by construction
        self.post_var = 1.0 / (1.0 + wtw / s2)
        self.exact = exact_encoder

    def encode(self, x: Tensor):
        mean = (x - self.b) @ self.W / self.s2 * self.post_var
        var = self.post_var.expand_as(mean)
        if not self.exact:  # a deliberately wrong q: shifted and too wide
            mean, var = mean + 0.3, var * 3.0
        return mean, var.log()

    def decode(self, z: Tensor):
        mean = z @ self.W.T + self.b
        return mean, torch.full_like(mean, math.log(self.s2))

    def log_marginal(self, x: Tensor) -> Tensor:
        cov = self.W @ self.W.T + self.s2 * torch.eye(len(self.b), dtype=torch.float64)
        return MultivariateNormal(self.b, cov).log_prob(x)  # the reference, not our code


def _data(vae: LinearGaussianVAE, n: int = 16) -> Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, vae.latent_dim, generator=g, dtype=torch.float64) @ vae.W.T + vae.b


def test_bound_is_tight_with_the_true_posterior():
    """Prop. 1's equality case: with q(z|x) = p(z|x), log p(x, z) - log q(z|x) = log p(x) for
    every z, and the ELBO (closed-form KL, sampled reconstruction) equals log p(x) on average."""
    vae = LinearGaussianVAE()
    x = _data(vae)
    g = torch.Generator().manual_seed(2)
    log_px = vae.log_marginal(x)
    w = log_importance_weights(vae, x, 5, "gaussian", g)
    assert torch.allclose(w, log_px.expand_as(w), atol=1e-9)
    draws = torch.stack([elbo(vae, x, "gaussian", g)["elbo"] for _ in range(4000)])
    stderr = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - log_px).abs() < 4 * stderr + 1e-9).all()


def test_elbo_below_importance_weighted_bound_below_log_likelihood():
    vae = LinearGaussianVAE(exact_encoder=False)
    x = _data(vae)
    g = torch.Generator().manual_seed(3)
    log_px = vae.log_marginal(x)
    draws = torch.stack([elbo(vae, x, "gaussian", g)["elbo"] for _ in range(2000)])
    mean_elbo = draws.mean(0)
    iw1 = torch.stack([importance_weighted_bound(vae, x, 1, "gaussian", g) for _ in range(2000)])
    assert (mean_elbo < log_px - 0.05).all()  # a wrong q leaves a real gap
    stderr = (draws.var(0) / 2000 + iw1.var(0) / 2000).sqrt()
    assert ((iw1.mean(0) - mean_elbo).abs() < 4 * stderr).all()  # K = 1 is the ELBO
    iw10 = torch.stack([importance_weighted_bound(vae, x, 10, "gaussian", g) for _ in range(400)])
    iw10_stderr = iw10.std(0) / math.sqrt(len(iw10))
    assert (iw10.mean(0) > mean_elbo + 4 * iw10_stderr).all()  # more samples, tighter bound
    assert (iw10.mean(0) < log_px + 4 * iw10_stderr).all()  # still a lower bound
    big = importance_weighted_bound(vae, x, 20000, "gaussian", g)
    assert torch.allclose(big, log_px, atol=0.05)  # and K -> inf recovers log p(x)


def test_kl_term_matches_torch_distributions():
    vae = LinearGaussianVAE(exact_encoder=False)
    x = _data(vae)
    mean, log_var = vae.encode(x)
    q = Independent(Normal(mean, (0.5 * log_var).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mean), torch.ones_like(mean)), 1)
    assert torch.allclose(elbo(vae, x, "gaussian")["kl"], kl_divergence(q, p), atol=1e-12)


def test_log_weights_match_densities_by_hand():
    vae = LinearGaussianVAE(exact_encoder=False)
    x = _data(vae, 4)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    w = log_importance_weights(vae, x, 1, "gaussian", g1)[0]
    mean, log_var = vae.encode(x)
    z = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=g2)
    q = Independent(Normal(mean, (0.5 * log_var).exp()), 1).log_prob(z)
    prior = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
    dec_mean, dec_log_var = vae.decode(z)
    lik = Independent(Normal(dec_mean, (0.5 * dec_log_var).exp()), 1).log_prob(x)
    assert torch.allclose(w, lik + prior - q, atol=1e-10)


def test_conv_vae_discretized_bounds_are_ordered():
    """On images with the 256-bin decoder: E[ELBO] <= importance-weighted bound <= 0 (log of a
    probability of a discrete image)."""
    torch.manual_seed(0)
    vae = ConvVAE(latent_dim=4, ch=8)
    x = torch.randint(0, 256, (6, 1, 8, 8)).float() / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mean_elbo = torch.stack([elbo(vae, x, "discretized", g)["elbo"] for _ in range(200)]).mean(
            0
        )
        iw = importance_weighted_bound(vae, x, 200, "discretized", g)
    assert (iw > mean_elbo).all() and (iw < 0).all()


def test_vae_samples_depend_only_on_seed_and_index():
    torch.manual_seed(0)
    vae = ConvVAE(latent_dim=4, ch=8).eval()
    a = draw_vae_samples(vae, (1, 8, 8), range(10), seed=3, batch_size=10)
    b = draw_vae_samples(vae, (1, 8, 8), range(10), seed=3, batch_size=3)
    c = draw_vae_samples(vae, (1, 8, 8), range(5, 10), seed=3, batch_size=4)
    # equal up to float rounding of batched kernels; a different z would differ by O(1)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a[5:], c, atol=1e-5)
    d = draw_vae_samples(vae, (1, 8, 8), range(10), seed=4, batch_size=10)
    assert (a - d).abs().amax() > 1e-2
    assert a.abs().max() <= 1 and a.shape == (10, 1, 8, 8)


class NotAVAE(nn.Module):
    pass


def test_vae_module_refuses_a_denoiser():
    from ddpm.training import VAEModule

    with pytest.raises(TypeError, match="conv_vae"):
        VAEModule(NotAVAE())


@pytest.mark.slow
def test_vae_trains_samples_and_is_scored_by_the_same_scripts(tmp_path):
    run = tmp_path / "vae"
    run_cli(
        "train.py",
        "experiment=digits_vae",
        "trainer.max_steps=40",
        f"hydra.run.dir={run}",
        "callbacks.checkpoint.every_n_train_steps=20",
        "callbacks.sample_grid.every_n_steps=20",
        "callbacks.sample_grid.num_samples=16",
        "trainer.val_check_interval=20",
        "trainer.limit_val_batches=1",
        *QUIET,
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 40
    assert (run / "samples" / "step_0000040.png").is_file()
    assert not (run / "samples" / "forward_noising.png").exists()

    run_cli("sample.py", f"ckpt={ckpt}", "num_samples=12", f"hydra.run.dir={tmp_path / 's'}")
    npz = __import__("numpy").load(tmp_path / "s" / "samples.npz")
    assert npz["samples"].shape == (12, 1, 8, 8) and npz["images"].dtype.name == "uint8"

    out = tmp_path / "e"
    run_cli(
        "evaluate.py",
        f"ckpt={ckpt}",
        "num_samples=60",
        "bpd=true",
        "bpd_examples=20",
        "iw_samples=32",
        f"hydra.run.dir={out}",
        f"fid.cache_dir={tmp_path / 'cache'}",
        "progress=false",
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["sampler"] == "vae_prior" and m["nfe"] == 1 and m["steps"] is None
    assert m["bpd_method"] == "elbo" and m["bpd_iw_samples"] == 32
    assert 0 < m["bpd_iw"] < m["bpd"] < 8  # the tighter bound, in bits of a 256-level pixel
    assert math.isfinite(m["fid"])

    proc = run_cli("evaluate.py", f"ckpt={ckpt}", "bpd=ode", f"hydra.run.dir={out}", check=False)
    assert proc.returncode != 0 and "bpd=ode needs a diffusion checkpoint" in proc.stderr
    proc = run_cli(
        "sample.py", f"ckpt={ckpt}", "class_label=3", f"hydra.run.dir={out}", check=False
    )
    assert proc.returncode != 0 and "class-conditional" in proc.stderr


def test_per_example_generators_make_the_bound_independent_of_the_batch():
    """evaluate.py draws each test example's z from its own generator, so bits/dim are the same
    for any batch size or number of devices."""
    from ddpm.random import sample_generators

    vae = LinearGaussianVAE(exact_encoder=False)
    x = _data(vae, 6)
    whole = importance_weighted_bound(vae, x, 4, "gaussian", sample_generators(0, range(6)))
    parts = torch.cat(
        [
            importance_weighted_bound(vae, x[:2], 4, "gaussian", sample_generators(0, range(2))),
            importance_weighted_bound(vae, x[2:], 4, "gaussian", sample_generators(0, range(2, 6))),
        ]
    )
    assert torch.allclose(whole, parts, atol=1e-12)
    other = importance_weighted_bound(vae, x, 4, "gaussian", sample_generators(1, range(6)))
    assert not torch.allclose(whole, other)
