"""path=ddpm, the seed's discrete chain as a path: its trained levels, its exact denoiser, its
loss, and checkpoints written before paths existed (tests/fixtures: a toy2d run of that version,
its samples and its state after resuming 10 steps, all written by that version)."""

import pytest
import torch

from conftest import REPO, compose
from ddpm.checks import ConfigError
from ddpm.oracles import GaussianMixture
from ddpm.paths import DDPMPath
from ddpm.samplers import Denoiser, builtin_sampler, sample, step_levels
from ddpm.schedule import make_schedule, respace
from path_checks import (
    check_exact_network_denoises_to_the_posterior_mean,
    check_exact_network_minimises_the_loss,
)

FIXTURES = REPO / "tests" / "fixtures"
LEGACY = FIXTURES / "legacy_toy2d.ckpt"
# the overrides the fixture was trained with (experiment=toy2d, 300 steps)
LEGACY_RUN = (
    "experiment=toy2d", "dataset.size=512", "network.hidden=32", "network.depth=2",
    "network.time_dim=16", "callbacks.sample_grid.every_n_steps=0",
    "callbacks.sample_grid.num_samples=64", "callbacks.checkpoint.every_n_train_steps=150",
    "trainer.val_check_interval=150", "trainer.limit_val_batches=1", "callbacks.progress=null",
)  # fmt: skip


@pytest.fixture(scope="module")
def path():
    return DDPMPath(make_schedule("linear", 1000))


def test_trained_levels_map_to_their_indices_exactly_and_interpolate_between(path):
    ks = torch.tensor([0, 1, 17, 500, 998, 999])
    levels = path.noise_level(ks)
    abar = path.schedule.alphas_cumprod[ks]
    assert torch.allclose(levels, ((1 - abar) / abar).sqrt(), rtol=1e-12)
    assert torch.equal(path.time_at(levels), ks.double())  # snapped: the network sees integers
    c = path.c_noise(path.time_at(levels))
    assert c.dtype == torch.long and torch.equal(c, ks)
    mid = (levels[2] * levels[3]).sqrt()  # between 17 and 500: a real index, increasing
    k_mid = float(path.time_at(mid.reshape(1)))
    assert 17 < k_mid < 500 and k_mid != round(k_mid)
    assert path.c_noise(torch.tensor([k_mid], dtype=torch.float64)).dtype == torch.float32
    assert abs(float(path.noise_level(torch.tensor([k_mid], dtype=torch.float64))) - mid) < 1e-9
    assert (path.sigma_min, path.sigma_max) == (float(levels[0]), float(levels[-1]))


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "mu"])
def test_the_exact_network_denoises_and_minimises_the_loss(path, prediction):
    check_exact_network_denoises_to_the_posterior_mean(path, prediction)
    check_exact_network_minimises_the_loss(path, prediction)


def test_mu_is_refused_between_trained_levels(path):
    g = GaussianMixture.gaussian(torch.tensor([0.0]), 0.5)
    den = Denoiser(g.network(path, "eps"), path, "mu")
    with pytest.raises(ValueError, match="mu is the mean of one step of the chain"):
        den(torch.zeros(2, 1), 0.5 * float(path.levels[10] + path.levels[11]))


def test_step_lists_are_trained_levels_unless_quantize_is_off(path):
    for spacing in ("quadratic", "logsnr", "karras", "trailing"):
        sigmas = step_levels(path, 10, spacing)
        assert len(sigmas) == 11 and sigmas[-1] == 0 and (sigmas[:-1].diff() < 0).all()
        assert all(float(s) in set(path.levels.tolist()) for s in sigmas[:-1])
    exact = step_levels(path, 10, "karras", quantize=False)
    assert exact[0] == pytest.approx(path.sigma_max, rel=1e-12)
    assert exact[-2] == pytest.approx(path.sigma_min, rel=1e-12)
    assert sum(float(s) in set(path.levels.tolist()) for s in exact[1:-2]) == 0


def test_a_respaced_chain_calls_the_network_at_the_indices_it_was_trained_on():
    kept = [0, 9, 99, 499, 999]
    chain = DDPMPath(respace(make_schedule("linear", 1000), kept))
    seen = []

    def net(x, c):
        seen.extend(c.tolist())
        return torch.zeros_like(x)

    sample(net, chain.schedule, torch.randn(3, 2), method="ddim", steps=5)
    assert sorted(set(seen)) == kept and all(isinstance(c, int) for c in seen)
    between = chain.c_noise(torch.tensor([2.5], dtype=torch.float64))  # halfway from 99 to 499
    assert between.dtype == torch.float32 and float(between) == pytest.approx(299.0)


def test_real_valued_levels_may_outnumber_the_trained_ones(path):
    karras = builtin_sampler("euler").updated(steps=1200, spacing="karras")
    karras.check_steps(path, quantize=False)  # levels between the trained ones: allowed
    assert len(karras.step_list(path, quantize=False)) == 1201
    for spec, quantize in ((karras, True), (karras.updated(spacing="quadratic"), False)):
        with pytest.raises(ConfigError, match=r"sampler.steps=1200 is not valid.*\[1, 1000\]"):
            spec.check_steps(path, quantize)


def test_a_checkpoint_of_the_earlier_version_samples_as_it_did(tmp_path):
    import numpy as np

    from ddpm.evaluation import sample

    ref = torch.load(FIXTURES / "legacy_toy2d_samples.pt")
    runs = {"ddim": ["sampler=ddim", "sampler.steps=10", "denoiser.clip_x0=false"], "ddpm": []}
    for name, overrides in runs.items():
        out = tmp_path / name
        cfg = compose("sample", f"ckpt={LEGACY}", "num_samples=16", "progress=false", *overrides,
                      run_dir=out)  # fmt: skip
        sample(cfg)
        got = torch.from_numpy(np.load(out / "samples.npz")["samples"])
        assert (got - ref[name]).abs().max() < 1e-4, name  # float32 rounding of the new scale


def test_a_checkpoint_of_the_earlier_version_resumes_to_the_same_weights(tmp_path):
    """10 more steps from the old checkpoint give the weights the old version gave, bit for bit:
    the same noise, times and loss (the discrete path trains exactly as before)."""
    from ddpm.training import DiffusionModule, train

    (tmp_path / "checkpoints").mkdir()
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(LEGACY.read_bytes())
    train(compose("train", *LEGACY_RUN, "trainer.max_steps=310", f"ckpt_path={ckpt}",
                  "trainer.enable_model_summary=false", run_dir=tmp_path))  # fmt: skip
    got = torch.load(ckpt, weights_only=True)
    expected = torch.load(FIXTURES / "legacy_toy2d_resumed_310.pt", weights_only=True)
    assert got["global_step"] == 310
    for key, value in expected.items():
        assert torch.equal(got["state_dict"][key], value), key
    module = DiffusionModule.load_from_checkpoint(LEGACY)  # Lightning's own loading
    assert module.path == DDPMPath(make_schedule("linear", 1000)) and module.prediction == "eps"
