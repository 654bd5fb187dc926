"""The entry points end to end, run as a user would (subprocesses on CPU)."""

import json
import math
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


def test_train_toy2d_writes_everything(tmp_path):
    train_toy(tmp_path, steps=30)
    assert _step(tmp_path / "checkpoints" / "last.ckpt") == 30
    assert (tmp_path / "checkpoints" / "step=20.ckpt").is_file()
    assert (tmp_path / "samples" / "step_0000030.png").is_file()
    assert (tmp_path / "samples" / "forward_noising.png").is_file()
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
    assert (tmp_path / "logs" / "metrics.csv").read_text().count("\n") > 2


def test_resume_continues_step_ema_and_optimizer(tmp_path):
    train_toy(tmp_path, steps=20)
    first = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 20 and first["ema_updates"] == 20
    train_toy(tmp_path, f"ckpt_path={tmp_path}/checkpoints/last.ckpt", steps=35)
    second = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["global_step"] == 35 and second["ema_updates"] == 35
    assert second["optimizer_states"][0]["state"][0]["step"] == 35


def test_a_second_run_never_overwrites_the_first(tmp_path):
    train_toy(tmp_path, steps=10)
    proc = train_toy(tmp_path, steps=10, check=False)
    assert proc.returncode != 0 and "already holds a run" in proc.stderr


def test_cpu_ddp_trains(tmp_path):
    train_toy(tmp_path, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", steps=10)
    assert _step(tmp_path / "checkpoints" / "last.ckpt") == 10


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


def test_wandb_offline_and_tensorboard_write_their_files(tmp_path):
    train_toy(tmp_path / "wb", "logger=wandb", "callbacks.sample_grid.every_n_steps=5", steps=5)
    assert list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    train_toy(
        tmp_path / "tb", "logger=tensorboard", "callbacks.sample_grid.every_n_steps=5", steps=5
    )
    assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))


def test_sample_is_the_same_for_any_batch_size(toy_ckpt, tmp_path):
    for bs in (7, 64):
        run_cli(
            "sample.py",
            f"ckpt={toy_ckpt}",
            "num_samples=20",
            f"batch_size={bs}",
            "sampler=ddpm",
            "sampler.steps=20",
            f"hydra.run.dir={tmp_path / str(bs)}",
            "progress=false",
        )
    a, b = (np.load(tmp_path / str(bs) / "samples.npz")["samples"] for bs in (7, 64))
    assert a.shape == (20, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert (tmp_path / "7" / "samples.png").is_file()


def test_sample_digits_images_trajectory_and_class_labels(digits_ckpt, tmp_path):
    run_cli(
        "sample.py",
        f"ckpt={digits_ckpt}",
        "num_samples=10",
        "sampler.steps=5",
        "trajectory=true",
        "class_label=3",
        "guidance_scale=2.0",
        f"hydra.run.dir={tmp_path}",
        "progress=false",
    )
    data = np.load(tmp_path / "samples.npz")
    assert data["samples"].shape == (10, 1, 8, 8) and data["samples"].min() >= -1 - 1e-6
    assert data["images"].shape == (10, 8, 8, 1) and data["images"].dtype == np.uint8
    assert (data["labels"] == 3).all()
    assert (tmp_path / "trajectory.png").is_file()
    bad = run_cli(
        "sample.py",
        f"ckpt={digits_ckpt}",
        "class_label=12",
        f"hydra.run.dir={tmp_path}/bad",
        check=False,
    )
    assert bad.returncode != 0 and "class_label=12" in bad.stderr and "0..9" in bad.stderr


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


def test_bpd_of_trained_is_better_than_untrained(toy_ckpt, tmp_path):
    untrained = tmp_path / "untrained"
    train_toy(untrained, steps=1)
    results = {}
    for name, ckpt in [
        ("trained", toy_ckpt),
        ("untrained", untrained / "checkpoints" / "last.ckpt"),
    ]:
        run_cli(
            "evaluate.py",
            f"ckpt={ckpt}",
            "num_samples=50",
            "sampler.steps=5",
            "bpd=true",
            "bpd_examples=64",
            "bpd_timesteps_per_call=50",
            f"hydra.run.dir={tmp_path / name}",
            f"fid.cache_dir={tmp_path / 'cache'}",
            "progress=false",
        )
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        assert m["bpd_method"] == "vlb" and m["bpd_variance"] == "fixed_small"
        assert 0 < m["bpd_stderr"] < abs(m["bpd"])
        results[name] = (m["bpd"], m["bpd_stderr"])
    (trained, se_t), (untrained, se_u) = results["trained"], results["untrained"]
    assert np.isfinite(trained) and trained < untrained - 3 * math.hypot(se_t, se_u)


BAD_TRAIN = [
    (["schedule=nope"], "schedule"),
    (["model.prediction=foo"], "model.prediction='foo'"),
    (["model.loss=bar"], "model.loss='bar'"),
    (["sampler=nope"], "sampler"),
    (["sampler.steps=-1"], "sampler.steps=-1"),
    (["sampler.eta=2"], "sampler.eta=2"),
    (["model.ema_decay=1.5"], "model.ema_decay=1.5"),
    (["network.ch_mult=[1,2,2,2,2]"], "not divisible"),
    (["dataset=cifar10", "dataset.data_dir=/nonexistent"], "cifar-10-batches-py"),
    (
        ["dataset=image_folder", "dataset.root=/nonexistent", "network=simple_unet"],
        "does not exist",
    ),
    (["ckpt_path=/nonexistent.ckpt"], "does not exist"),
    (["model=vae"], "network=conv_vae"),
    (["network=conv_vae"], "train it with model=vae"),
    (["experiment=digits_vae", "network.ch_mult=[1,2,2,2]"], "not divisible by 2^4"),
]


@pytest.mark.parametrize("overrides,message", BAD_TRAIN)
def test_bad_train_config_fails_before_work_with_one_message(tmp_path, overrides, message):
    proc = run_cli("train.py", *overrides, f"hydra.run.dir={tmp_path}", check=False, timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("script", ["sample.py", "evaluate.py"])
def test_missing_ckpt_is_named(script, tmp_path):
    proc = run_cli(script, f"hydra.run.dir={tmp_path}", check=False)
    assert (
        proc.returncode != 0
        and "ckpt is required" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    proc = run_cli(script, "ckpt=/nope.ckpt", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "/nope.ckpt does not exist" in proc.stderr


def test_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, evil)
    for script in ("sample.py", "evaluate.py"):
        proc = run_cli(script, f"ckpt={evil}", f"hydra.run.dir={tmp_path / script}", check=False)
        assert (
            proc.returncode != 0 and "refusing to load" in proc.stderr and str(evil) in proc.stderr
        )
    proc = train_toy(tmp_path / "resume", f"ckpt_path={evil}", check=False)
    assert proc.returncode != 0 and "refusing to load" in proc.stderr
    assert not marker.exists()


def test_checkpoint_of_another_network_is_refused(toy_ckpt, tmp_path):
    ckpt = torch.load(toy_ckpt, weights_only=True)
    ckpt["hyper_parameters"]["run_config"]["network"]["hidden"] = 32
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    proc = run_cli("sample.py", f"ckpt={other}", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "do not match the network" in proc.stderr


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
    train_toy(
        tmp_path, f"ckpt_path={ckpt}", "callbacks.checkpoint.every_n_train_steps=5", steps=target
    )
    assert _step(ckpt) == target


def test_sigterm_saves_last_checkpoint_before_exiting(tmp_path):
    """No periodic checkpoint is due, so a last.ckpt can only come from the SIGTERM handler."""
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    proc = _spawn_train(tmp_path, 100_000, "callbacks.checkpoint.every_n_train_steps=100000")
    started = tmp_path / "samples" / "forward_noising.png"  # written when training starts
    deadline = time.time() + 180
    while not started.is_file():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated at step" in err
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
    good = torch.load(ckpt, weights_only=True)
    assert good["global_step"] == 10
    assert all(
        torch.isfinite(v).all() for v in good["state_dict"].values() if v.is_floating_point()
    )
