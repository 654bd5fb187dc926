"""The entry points as a user runs them (subprocesses): exit codes and one-line errors, signals,
several processes (CPU DDP, sweeps), and a sampler plugged in from outside the package."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from conftest import PYTHON, QUIET, REPO, run_cli, train_toy

pytestmark = pytest.mark.slow


def _step(ckpt):
    return torch.load(ckpt, weights_only=True)["global_step"]


BAD = [
    ("train.py", ["trainer.max_steps=abc"], "trainer.max_steps='abc' is not valid"),
    ("train.py", ["trainer.log_every_n_steps=abc"], "trainer.log_every_n_steps='abc' is not valid"),
    ("train.py", ["seed=abc"], "seed='abc' is not valid; it must be an integer"),
    ("train.py", ["dataset.batch_size=0"], "dataset.batch_size=0 is not valid"),
    ("train.py", ["schedule=nope"], "schedule=nope is not an option of schedule"),
    ("train.py", ["schedul=cosine"], "did you mean schedule?"),
    ("train.py", ["dataset=toy2d"], "use a network for points, e.g. network=mlp"),
    ("train.py", ["-m", "seed=0,abc"], "seed='abc' is not valid"),
    ("train.py", ["dataset=cifar10", "dataset.data_dir=/nonexistent"], "cifar-10-batches-py"),
    ("train.py", ["ckpt_path=/nonexistent.ckpt"], "does not exist"),
    ("sample.py", ["ckpt=x.ckpt", "use_ema=maybe"], "use_ema='maybe' is not valid"),
    ("sample.py", [], "ckpt is required"),
    ("sample.py", ["ckpt=/nope.ckpt"], "/nope.ckpt does not exist"),
    ("evaluate.py", ["ckpt=x.ckpt", "bpd_examples=0"], "bpd_examples=0 is not valid"),
]


@pytest.mark.parametrize("script,overrides,message", BAD)
def test_bad_input_exits_2_with_one_error_line_before_any_work(
    tmp_path, script, overrides, message
):
    start = time.time()
    proc = run_cli(script, *overrides, f"hydra.run.dir={tmp_path}", check=False, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists() and time.time() - start < 60


@pytest.mark.parametrize("script", ["sample.py", "evaluate.py"])
def test_help_lists_only_what_the_script_takes(script):
    out = run_cli(script, "--help").stdout
    assert "sampler: " in out and "ddpm*" in out and "ddim" in out and "Exit codes" in out
    assert "dataset:" not in out and "network:" not in out


def test_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, evil)
    for script in ("sample.py", "evaluate.py"):
        proc = run_cli(script, f"ckpt={evil}", f"hydra.run.dir={tmp_path / script}", check=False)
        assert proc.returncode == 2 and "refusing to load" in proc.stderr
        assert str(evil) in proc.stderr and "weights_only=False" not in proc.stderr
    proc = train_toy(tmp_path / "resume", f"ckpt_path={evil}", check=False)
    assert proc.returncode == 2 and "refusing to load" in proc.stderr
    assert not marker.exists()


def test_cpu_ddp_trains_a_flow_model_scored_the_same_on_any_device_count(tmp_path):
    run = tmp_path / "run"
    train_toy(run, "path=flow", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
              "ema=posthoc", "ema.snapshot_every=5", steps=10)  # fmt: skip
    assert _step(run / "checkpoints" / "last.ckpt") == 10
    # post-hoc EMA under DDP: rank 0 wrote each snapshot once, and they rebuild last.ckpt's EMA
    assert sorted(p.name for p in (run / "ema_snapshots").iterdir()) == [
        "step_0000005.pt", "step_0000010.pt",
    ]  # fmt: skip
    proc = run_cli("-m", "ddpm.posthoc_ema", str(run), "--sigma-rel", "0.05")
    assert "profile fit error 0.00e+00" in proc.stdout
    fids = []
    for devices in (1, 2):
        run_cli("evaluate.py", f"ckpt={run}/checkpoints/last.ckpt", "num_samples=200",
                "sampler=unipc", "sampler.steps=5", "trainer.accelerator=cpu",
                f"trainer.devices={devices}", f"hydra.run.dir={tmp_path / str(devices)}",
                f"fid.cache_dir={tmp_path / 'cache'}", "progress=false", "batch_size=32")  # fmt: skip
        fids.append(json.loads((tmp_path / str(devices) / "metrics.json").read_text())["fid"])
    assert fids[0] == pytest.approx(fids[1], rel=1e-9, abs=1e-12)


def test_multirun_with_ddp_inside_each_job(tmp_path):
    run_cli(
        "train.py",
        "-m",
        "experiment=toy2d",
        "schedule=linear,cosine",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_steps=6",
        f"hydra.sweep.dir={tmp_path}",
        "dataset.size=256",
        "network.hidden=32",
        "callbacks.sample_grid.every_n_steps=0",
        "callbacks.sample_grid.num_samples=50",
        "trainer.limit_val_batches=0",
        *QUIET,
        timeout=400,
    )
    for job, name in [("0", "linear"), ("1", "cosine")]:
        ckpt = torch.load(tmp_path / job / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == 6
        assert ckpt["hyper_parameters"]["run_config"]["schedule"]["name"] == name
    assert not (tmp_path / "2").exists()  # the children did not restart the sweep


def test_evaluate_fid_and_bpd_are_the_same_on_one_and_two_devices(toy_ckpt, tmp_path):
    fids, bpds = [], []
    for devices in (1, 2):
        out = tmp_path / f"d{devices}"
        run_cli(
            "evaluate.py",
            f"ckpt={toy_ckpt}",
            "num_samples=300",
            "sampler=dpm_solver",
            "sampler.steps=10",
            "trainer.accelerator=cpu",
            f"trainer.devices={devices}",
            f"hydra.run.dir={out}",
            f"fid.cache_dir={tmp_path / 'cache'}",
            "progress=false",
            "batch_size=64",
            "bpd=true",
            "bpd_examples=30",
            "bpd_timesteps_per_call=100",
        )
        m = json.loads((out / "metrics.json").read_text())
        assert m["feature_extractor"] == "identity" and m["nfe"] == 10 and m["num_samples"] == 300
        fids.append(m["fid"])
        bpds.append(m["bpd"])
    assert fids[0] == pytest.approx(fids[1], rel=1e-9, abs=1e-12)
    assert bpds[0] == pytest.approx(bpds[1], rel=1e-6)  # per-example noise; float32 batching


USER_SAMPLER = '''
def my_ddim(denoiser, x_T, sigmas, *, generator=None, callback=None):
    """DDIM with eta = 0 through the denoiser seam (Song et al. 2021, eq. 12, on the x / alpha
    scale): x' = x0 + sigma' eps."""
    x = x_T
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        out = denoiser(x, sigma)
        x = out.x0 + sigma_next * out.eps
        if callback is not None:
            callback(i, sigma_next, x, out.x0)
    return x
'''


def test_a_sampler_from_outside_the_package_runs_through_sample_py(toy_ckpt, tmp_path):
    """A user's module on PYTHONPATH and its yaml in a hydra.searchpath dir: sampler=my_ddim
    gives exactly the samples of sampler=ddim, with no edit to the package."""
    (tmp_path / "my_samplers.py").write_text(USER_SAMPLER)
    (tmp_path / "conf" / "sampler").mkdir(parents=True)
    (tmp_path / "conf" / "sampler" / "my_ddim.yaml").write_text(
        "_target_: my_samplers.my_ddim\nsteps: 12\nspacing: trailing\n"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    common = [f"ckpt={toy_ckpt}", "num_samples=16", "seed=3", "progress=false"]
    run_cli(
        "sample.py", *common, "sampler=my_ddim", f"hydra.searchpath=[file://{tmp_path}/conf]",
        f"hydra.run.dir={tmp_path / 'mine'}", env=env,
    )  # fmt: skip
    run_cli(
        "sample.py", *common, "sampler=ddim", "sampler.steps=12", "sampler.spacing=trailing",
        f"hydra.run.dir={tmp_path / 'ours'}",
    )  # fmt: skip
    mine, ours = (np.load(tmp_path / d / "samples.npz")["samples"] for d in ("mine", "ours"))
    np.testing.assert_allclose(mine, ours, atol=1e-6)


def _spawn_train(run_dir, steps, *extra):
    cmd = [
        PYTHON,
        str(REPO / "train.py"),
        "experiment=toy2d",
        f"trainer.max_steps={steps}",
        f"hydra.run.dir={run_dir}",
        "callbacks.checkpoint.every_n_train_steps=5",
        "callbacks.sample_grid.every_n_steps=0",
        "callbacks.sample_grid.num_samples=50",
        "dataset.size=512",
        "network.hidden=64",
        "trainer.limit_val_batches=0",
        *QUIET,
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _wait_for_step(ckpt, step, proc, timeout=180):
    start = time.time()
    while time.time() - start < timeout:
        if ckpt.is_file():
            try:
                if _step(ckpt) >= step:
                    return
            except Exception:  # noqa: BLE001 - mid-rename; try again
                pass
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    raise TimeoutError(f"{ckpt} never reached step {step}")


def test_sigkill_then_resume_reaches_the_same_step(tmp_path):
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    proc = _spawn_train(tmp_path, 100_000)
    _wait_for_step(ckpt, 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _step(ckpt)  # the atomic write left a complete file
    assert killed_at >= 10
    target = killed_at + 15
    proc = train_toy(
        tmp_path, f"ckpt_path={ckpt}", "callbacks.checkpoint.every_n_train_steps=5", steps=target
    )
    assert _step(ckpt) == target
    lines = proc.stderr.splitlines()  # where the run lives, first and last; no device banner
    assert f"run directory: {tmp_path.resolve()}" in lines
    assert f"done: {ckpt.resolve()} (sample grids in {(tmp_path / 'samples').resolve()})" in lines
    assert not any("GPU available" in line or "TPU available" in line for line in lines)


@pytest.mark.parametrize(
    "sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_sigterm_and_ctrl_c_save_last_checkpoint_before_exiting(tmp_path, sig, code, word):
    """No periodic checkpoint is due, so a last.ckpt can only come from the signal's handling."""
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    proc = _spawn_train(tmp_path, 100_000, "callbacks.checkpoint.every_n_train_steps=100000")
    started = tmp_path / "samples" / "forward_noising.png"  # written when training starts
    deadline = time.time() + 180
    while not started.is_file():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    assert f"error: {word} " in err and "Traceback" not in err
    assert ckpt.is_file() and _step(ckpt) > 0


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """Forward 13 returns NaN: the run stops at step 12 naming it; last.ckpt from step 10 stays."""
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    proc = train_toy(
        tmp_path,
        "network._target_=nan_net.NaNAfter",
        "+network.nan_after=12",
        "callbacks.checkpoint.every_n_train_steps=5",
        steps=1000,
        check=False,
        env={"PYTHONPATH": str(REPO / "tests")},
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "non-finite loss (nan) at step 12" in proc.stderr and "Traceback" not in proc.stderr
    assert "(step 10) is kept" in proc.stderr and "gradient_clip_val" not in proc.stderr
    good = torch.load(ckpt, weights_only=True)
    assert good["global_step"] == 10
    assert all(
        torch.isfinite(v).all() for v in good["state_dict"].values() if v.is_floating_point()
    )
