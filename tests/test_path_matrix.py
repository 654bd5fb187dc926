"""Every sampler on every path, through sample.py's and evaluate.py's library calls, with the
network calls counted; a user's sampler written against the seam runs on every path unchanged;
the ancestral sampler on a continuous path samples its SDE."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import compose, train_in_process
from convergence import MIX, check_recovers_the_mixture
from ddpm.evaluation import evaluate, sample
from ddpm.paths import DDPMPath, EDMPath, FlowPath, VPPath
from ddpm.samplers import builtin_sampler_names
from ddpm.samplers import sample as draw
from ddpm.schedule import make_schedule

PATHS = ("ddpm", "vp", "edm", "flow")
STEPS = 4


def user_sampler(denoiser, x_T, sigmas, *, generator=None, callback=None):
    """A user's DDIM (eta = 0) written against the seam: x' = x0 + sigma' eps."""
    x = x_T
    for i in range(len(sigmas) - 1):
        out = denoiser(x, float(sigmas[i]))
        x = out.x0 + float(sigmas[i + 1]) * out.eps
        if callback is not None:
            callback(i, float(sigmas[i + 1]), x, out.x0)
    return x


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = {}
    for name in PATHS:
        run = tmp_path_factory.mktemp(f"toy_{name}")
        train_in_process(run, f"path={name}", "callbacks.checkpoint.every_n_train_steps=50",
                         steps=50)  # fmt: skip
        out[name] = run / "checkpoints" / "last.ckpt"
    return out


def _sampler_overrides(sampler: str) -> list[str]:
    if sampler == "ode":
        return ["sampler=ode", "sampler.rtol=1e-3", "sampler.atol=1e-3"]
    return [f"sampler={sampler}", f"sampler.steps={STEPS}"]


@pytest.mark.parametrize("path", PATHS)
def test_every_sampler_runs_on_every_path_with_its_calls_counted(checkpoints, path, tmp_path):
    for sampler in builtin_sampler_names("diffusion"):
        common = [f"ckpt={checkpoints[path]}", "progress=false", *_sampler_overrides(sampler)]
        sample(compose("sample", *common, "num_samples=8", run_dir=tmp_path / sampler))
        x = np.load(tmp_path / sampler / "samples.npz")["samples"]
        assert x.shape == (8, 2) and np.isfinite(x).all(), (path, sampler)
        m = evaluate(compose("evaluate", *common, "num_samples=16",
                             f"fid.cache_dir={tmp_path / 'cache'}", run_dir=tmp_path / f"e_{sampler}"))  # fmt: skip
        expected = {"heun": 2 * STEPS - 1, "ode": None}.get(sampler, STEPS)
        assert m["nfe"] == expected or (expected is None and m["nfe"] > 2), (path, sampler)
        assert m["steps"] == (None if sampler == "ode" else STEPS)
        assert json.loads((tmp_path / f"e_{sampler}" / "metrics.json").read_text())["fid"] >= 0


@pytest.mark.parametrize("path", PATHS)
def test_a_users_sampler_runs_on_every_path_unchanged(checkpoints, path, tmp_path):
    """Its yaml names a function of the user's module; on every path it gives the samples of
    our ddim at eta = 0 (the same step)."""
    node = {"_target_": f"{__name__}.user_sampler", "steps": 6, "spacing": "trailing"}
    common = [f"ckpt={checkpoints[path]}", "progress=false", "num_samples=8"]
    cfg = compose("sample", *common, run_dir=tmp_path / "mine") | {"sampler": node}
    sample(cfg)
    sample(compose("sample", *common, "sampler=ddim", "sampler.steps=6",
                   "sampler.spacing=trailing", run_dir=tmp_path / "ours"))  # fmt: skip
    mine, ours = (np.load(tmp_path / d / "samples.npz")["samples"] for d in ("mine", "ours"))
    assert np.allclose(mine, ours, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_the_probability_flow_likelihood_on_every_path_and_the_vlb_on_the_chain(
    checkpoints, path, tmp_path
):
    """bpd=ode scores every path; bpd=true (the VLB) is the discrete chain's, refused elsewhere
    in one line before any work."""
    from ddpm.checks import ConfigError

    common = [f"ckpt={checkpoints[path]}", "progress=false", "num_samples=8", "sampler.steps=4",
              f"fid.cache_dir={tmp_path / 'cache'}", "bpd_examples=6"]  # fmt: skip
    m = evaluate(compose("evaluate", *common, "bpd=ode", run_dir=tmp_path / "ode"))
    assert m["bpd_method"] == "ode" and math.isfinite(m["bpd"]) and m["bpd_num_examples"] == 6
    if path == "ddpm":
        m = evaluate(compose("evaluate", *common, "bpd=true", run_dir=tmp_path / "vlb"))
        assert m["bpd_method"] == "vlb" and math.isfinite(m["bpd"])
    else:
        with pytest.raises(ConfigError, match="bpd=true is the discrete chain's VLB.*bpd=ode"):
            evaluate(compose("evaluate", *common, "bpd=true", run_dir=tmp_path / "vlb"))
        assert not (tmp_path / "vlb").exists()


@pytest.mark.parametrize(
    "path",
    [VPPath(), EDMPath(), FlowPath(), DDPMPath(make_schedule("linear", 1000))],
    ids=["vp", "edm", "flow", "ddpm"],
)
def test_ancestral_sampling_recovers_the_mixture_on_every_path(path):
    """Algorithm 1's step with the posterior variance is the exact reverse-SDE sampler between
    visited levels on any path: weights within 4 binomial SE, means within 4 SE + 0.01, stds
    within 10%, 100 steps."""
    n = 4000
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = draw(
        MIX.network(path), path, x_T, "ddpm", steps=100, spacing="logsnr",
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    check_recovers_the_mixture(x, path.name)


USER_PATH = '''
import math

import torch

from ddpm.paths import Path


class GVPPath(Path):
    """SiT's generalized VP interpolant (Ma et al. 2024): x_t = cos(pi t / 2) x_0 + sin(pi t / 2)
    eps, velocity prediction; the network receives 1000 t."""

    name = "gvp"
    predictions = ("velocity", "x0", "eps")

    def __init__(self, t_min: float = 1e-3, t_max: float = 0.999):
        self.t_min, self.t_max = t_min, t_max

    def alpha(self, t):
        return torch.cos(0.5 * math.pi * t)

    def sigma(self, t):
        return torch.sin(0.5 * math.pi * t)

    def d_alpha(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def d_sigma(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def time_at(self, level):
        return torch.atan(torch.as_tensor(level, dtype=torch.float64)) * 2 / math.pi

    def sample_times(self, n, generator, device):
        return torch.rand(n, generator=generator, device=device)

    def c_noise(self, t):
        return 1000 * t.float()

    def time_from_c_noise(self, c):
        return c.double() / 1000
'''


@pytest.mark.slow
def test_a_users_path_from_outside_the_package_trains_samples_and_is_a_path(tmp_path):
    """One module and one yaml in the user's own dirs: path=gvp trains with train.py, samples with
    every kind of sampler through sample.py, and passes the checks every path of ours passes."""
    import importlib
    import sys

    from conftest import QUIET, run_cli
    from path_checks import (
        check_exact_network_denoises_to_the_posterior_mean,
        check_forward_process,
    )

    (tmp_path / "my_paths.py").write_text(USER_PATH)
    (tmp_path / "conf" / "path").mkdir(parents=True)
    (tmp_path / "conf" / "path" / "gvp.yaml").write_text("_target_: my_paths.GVPPath\n")
    env, search = {"PYTHONPATH": str(tmp_path)}, f"hydra.searchpath=[file://{tmp_path}/conf]"
    run = tmp_path / "run"
    run_cli("train.py", "experiment=toy2d", "path=gvp", search, "trainer.max_steps=20",
            "callbacks.sample_grid.num_samples=50", "dataset.size=256", f"hydra.run.dir={run}",
            *QUIET, env=env)  # fmt: skip
    stored = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["hyper_parameters"]["run_config"]["model"]["prediction"] == "velocity"
    for sampler in ("dpm_solver", "heun", "dpm_solver_sde"):
        run_cli("sample.py", f"ckpt={run}/checkpoints/last.ckpt", f"sampler={sampler}",
                "sampler.steps=5", "num_samples=8", f"hydra.run.dir={tmp_path / sampler}",
                "progress=false", env=env)  # fmt: skip
        assert np.isfinite(np.load(tmp_path / sampler / "samples.npz")["samples"]).all()
    sys.path.insert(0, str(tmp_path))
    try:
        path = importlib.import_module("my_paths").GVPPath()
    finally:
        sys.path.remove(str(tmp_path))
    check_forward_process(path)
    check_exact_network_denoises_to_the_posterior_mean(path, "velocity")


def test_resume_compares_the_path_and_lets_training_only_options_change(checkpoints, tmp_path):
    from ddpm.checks import ConfigError

    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(checkpoints["flow"].read_bytes())
    with pytest.raises(ConfigError, match="path._target_='ddpm.paths.flow.FlowPath' in the check"):
        train_in_process(tmp_path, "path=edm", f"ckpt_path={last}", steps=55)
    with pytest.raises(ConfigError, match="path.t_max=0.999 in the checkpoint, 0.99 now"):
        train_in_process(tmp_path, "path=flow", "path.t_max=0.99", f"ckpt_path={last}", steps=55)
    train_in_process(tmp_path, "path=flow", "path.time_sampling=logit_normal",
                     f"ckpt_path={last}", steps=55)  # fmt: skip
    assert torch.load(last, weights_only=True)["global_step"] == 55


@pytest.mark.slow
def test_class_conditioning_guidance_and_trajectories_on_edm_and_flow(tmp_path):
    """The digits default (class-conditional, auto) on the continuous paths: guided samples of
    the class asked for, the reverse chain's frames labelled in the path's own time."""
    from PIL import Image

    from conftest import QUIET
    from ddpm.training import train

    for path, label in (("edm", "σ=80"), ("flow", "t=0.999")):
        run = tmp_path / path
        train(compose("train", f"path={path}", "trainer.max_steps=3", "trainer.limit_val_batches=0",
                      "callbacks.sample_grid.num_samples=10", "sampler.steps=3", *QUIET,
                      run_dir=run))  # fmt: skip
        stored = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert stored["hyper_parameters"]["run_config"]["model"]["conditional"] is True
        out = tmp_path / f"{path}_sampled"
        sample(compose("sample", f"ckpt={run}/checkpoints/last.ckpt", "class_label=3",
                       "guidance_scale=2.0", "trajectory=true", "sampler=unipc", "sampler.steps=4",
                       "num_samples=4", "progress=false", run_dir=out))  # fmt: skip
        data = np.load(out / "samples.npz")
        assert (data["labels"] == 3).all() and np.isfinite(data["samples"]).all()
        assert Image.open(out / "trajectory.png").size[0] > 0
        assert (run / "samples" / "forward_noising.png").is_file()
        from ddpm.evaluation.loading import load_model
        from ddpm.samplers import Trajectory, step_levels

        loaded = load_model(run / "checkpoints" / "last.ckpt")
        sigmas = step_levels(loaded.model.path, 4, "logsnr")
        traj = Trajectory(sigmas, torch.zeros(1, 1, 8, 8), loaded.model.path, frames=5)
        assert traj.labels[0] == label
