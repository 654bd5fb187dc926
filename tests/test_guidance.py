"""Guidance in the denoiser seam: classifier-free, autoguidance (a weaker network of the same
task) and the guidance interval, on every path against Bayes' rule for Gaussian data, and from
sample.py and evaluate.py with every sampler."""

import numpy as np
import pytest
import torch

from conftest import QUIET, compose
from ddpm.checks import ConfigError
from ddpm.evaluation import evaluate, sample
from ddpm.oracles import GaussianMixture
from ddpm.paths import DDPMPath, EDMPath, FlowPath, VPPath
from ddpm.samplers import Denoiser, Guidance, builtin_sampler_names
from ddpm.schedule import make_schedule

PATHS = {
    "ddpm": lambda: DDPMPath(make_schedule("linear", 1000)),
    "vp": VPPath,
    "edm": EDMPath,
    "flow": FlowPath,
}
GOOD = (torch.tensor([0.3, -0.2]), 0.5)  # N(mean, std^2 I): the network guided
BAD = (torch.tensor([0.0, 0.1]), 0.8)  # the one guided away from


def posterior_mean(mean: torch.Tensor, std: float, x: torch.Tensor, level) -> torch.Tensor:
    """E[x_0 | x = x_0 + level eps] for x_0 ~ N(mean, std^2 I), by Bayes' rule."""
    level = torch.as_tensor(level, dtype=x.dtype).reshape(-1, 1)
    return mean + std**2 / (std**2 + level**2) * (x - mean)


def _denoiser(path, scale, interval=None):
    good, bad = (GaussianMixture.gaussian(m, s).network(path) for m, s in (GOOD, BAD))
    return Denoiser(good, path, guidance=Guidance(scale, bad, interval))


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("scale", [0.0, 2.5])
def test_the_guided_denoiser_is_the_weaker_one_plus_w_times_the_difference(name, scale):
    path = PATHS[name]()
    den = _denoiser(path, scale)
    x = 2 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for level in (0.05, 1.0, 20.0):
        good, bad = posterior_mean(*GOOD, x, level), posterior_mean(*BAD, x, level)
        got = den(x, level).x0
        assert torch.allclose(got, bad + scale * (good - bad), rtol=1e-4, atol=1e-5), level
    assert den.nfe == 6  # two networks per call


def test_the_interval_guides_only_at_its_levels_and_counts_the_calls_made():
    path = EDMPath()
    den = _denoiser(path, 3.0, interval=(0.5, 2.0))
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    levels = torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64)  # below, inside, above
    got = den(x, levels).x0
    good, bad = posterior_mean(*GOOD, x, levels), posterior_mean(*BAD, x, levels)
    want = torch.where(torch.tensor([[False], [True], [False]]), bad + 3.0 * (good - bad), good)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    assert den.nfe == 2  # the guided row needed the second network
    den(x, 5.0)
    assert den.nfe == 3  # outside the interval: one call


@pytest.fixture(scope="module")
def early(digits_ckpt):
    """An earlier snapshot of the same run: the weaker model of autoguidance."""
    return digits_ckpt.parent / "step_0000010.ckpt"


def test_autoguidance_and_the_interval_run_with_every_sampler(digits_ckpt, early, tmp_path):
    for sampler in builtin_sampler_names("diffusion"):
        steps = [] if sampler == "ode" else ["sampler.steps=3"]
        if sampler == "ode":
            steps = ["sampler.rtol=1e-2", "sampler.atol=1e-2"]
        common = [f"ckpt={digits_ckpt}", f"sampler={sampler}", *steps, "progress=false"]
        auto = [f"guidance.model={early}", "guidance_scale=1.5"]
        sample(compose("sample", *common, *auto, "num_samples=4", run_dir=tmp_path / sampler))
        assert np.isfinite(np.load(tmp_path / sampler / "samples.npz")["samples"]).all()
        cfg = [*common, "guidance_scale=2.0", "guidance.interval=[0.5,5.0]", "num_samples=4"]
        sample(compose("sample", *cfg, run_dir=tmp_path / f"cfg_{sampler}"))
        m = evaluate(compose("evaluate", *common, *auto, "guidance.interval=[0.5,5.0]",
                             "num_samples=8", f"fid.cache_dir={tmp_path / 'cache'}",
                             run_dir=tmp_path / f"e_{sampler}"))  # fmt: skip
        assert m["guidance_model"] == str(early) and m["guidance_interval"] == [0.5, 5.0]
        calls = {"heun": 5}.get(sampler, 3)
        if sampler not in ("ode", "consistency"):  # (consistency's 3 levels: none inside)
            assert calls < m["nfe"] < 2 * calls, sampler  # one network, two inside the interval


def test_guidance_needs_a_weaker_model_of_the_same_path_and_a_real_interval(digits_ckpt, tmp_path):
    common = [f"ckpt={digits_ckpt}", "num_samples=2", "sampler.steps=2", "progress=false"]
    with pytest.raises(ConfigError, match=r"guidance.interval=\[2.0, 1.0\] is not valid"):
        sample(compose("sample", *common, "guidance.interval=[2.0,1.0]", run_dir=tmp_path))
    from ddpm.training import train

    edm = tmp_path / "edm"
    train(compose("train", "path=edm", "trainer.max_steps=2", "trainer.limit_val_batches=0",
                  "callbacks.sample_grid.every_n_steps=0", *QUIET, run_dir=edm))  # fmt: skip
    with pytest.raises(ConfigError, match=r"differs from .* in its path \(edm vs ddpm\)"):
        sample(compose("sample", *common, "guidance_scale=2",
                       f"guidance.model={edm / 'checkpoints' / 'last.ckpt'}",
                       run_dir=tmp_path / "s"))  # fmt: skip
