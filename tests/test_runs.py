"""The three library calls behind the entry points, run in-process on configs composed exactly as
train.py, sample.py and evaluate.py compose them."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from conftest import compose, train_in_process
from ddpm.checkpoint import CheckpointError
from ddpm.checks import ConfigError
from ddpm.evaluation import evaluate, sample

pytestmark = pytest.mark.slow


def _step(ckpt):
    return torch.load(ckpt, weights_only=True)["global_step"]


def test_train_toy2d_writes_everything(tmp_path):
    train_in_process(tmp_path, "callbacks.sample_grid.every_n_steps=10", steps=30)
    assert _step(tmp_path / "checkpoints" / "last.ckpt") == 30
    assert (tmp_path / "checkpoints" / "step_0000020.ckpt").is_file()
    assert (tmp_path / "samples" / "step_0000030.png").is_file()
    assert (tmp_path / "samples" / "forward_noising.png").is_file()
    assert (tmp_path / "logs" / "metrics.csv").read_text().count("\n") > 2


def test_resume_continues_step_ema_and_optimizer(tmp_path):
    train_in_process(tmp_path, steps=20)
    first = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 20 and first["ema_updates"] == 20
    train_in_process(tmp_path, f"ckpt_path={tmp_path}/checkpoints/last.ckpt", steps=35)
    second = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["global_step"] == 35 and second["ema_updates"] == 35
    assert second["optimizer_states"][0]["state"][0]["step"] == 35


def test_a_second_run_never_overwrites_the_first(tmp_path):
    train_in_process(tmp_path, steps=10)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_in_process(tmp_path, steps=10)


def test_wandb_offline_and_tensorboard_write_their_files(tmp_path):
    train_in_process(
        tmp_path / "wb", "logger=wandb", "callbacks.sample_grid.every_n_steps=5", steps=5
    )
    assert list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    train_in_process(
        tmp_path / "tb", "logger=tensorboard", "callbacks.sample_grid.every_n_steps=5", steps=5
    )
    assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))


def _sample(ckpt, run_dir, *overrides):
    return sample(compose("sample", f"ckpt={ckpt}", "progress=false", *overrides, run_dir=run_dir))


def _evaluate(ckpt, run_dir, *overrides):
    cfg = compose("evaluate", f"ckpt={ckpt}", "progress=false", *overrides, run_dir=run_dir)
    return evaluate(cfg)


def test_sample_is_the_same_for_any_batch_size(toy_ckpt, tmp_path):
    for bs in (7, 64):
        _sample(
            toy_ckpt, tmp_path / str(bs), "num_samples=20", f"batch_size={bs}", "sampler=ddpm",
            "sampler.steps=20",
        )  # fmt: skip
    a, b = (np.load(tmp_path / str(bs) / "samples.npz")["samples"] for bs in (7, 64))
    assert a.shape == (20, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert (tmp_path / "7" / "samples.png").is_file()


def test_sample_digits_images_trajectory_and_class_labels(digits_ckpt, tmp_path):
    _sample(
        digits_ckpt, tmp_path, "num_samples=10", "sampler.steps=5", "trajectory=true",
        "class_label=3", "guidance_scale=2.0",
    )  # fmt: skip
    data = np.load(tmp_path / "samples.npz")
    assert data["samples"].shape == (10, 1, 8, 8) and data["samples"].min() >= -1 - 1e-6
    assert data["images"].shape == (10, 8, 8, 1) and data["images"].dtype == np.uint8
    assert (data["labels"] == 3).all()
    assert (tmp_path / "trajectory.png").is_file()
    with pytest.raises(ConfigError, match=r"class_label=12 is not valid.*0\.\.9"):
        _sample(digits_ckpt, tmp_path / "bad", "class_label=12")
    # no class_label on a conditional checkpoint: every class in turn, guided or not
    _sample(
        digits_ckpt, tmp_path / "all", "num_samples=12", "sampler.steps=2", "guidance_scale=2.0"
    )
    labels = np.load(tmp_path / "all" / "samples.npz")["labels"]
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_sampling_options_a_checkpoint_cannot_honour_are_refused(toy_ckpt, digits_ckpt, tmp_path):
    with pytest.raises(ConfigError, match="guidance_scale=2.0 needs class labels.*unconditional"):
        _sample(toy_ckpt, tmp_path, "guidance_scale=2.0")
    with pytest.raises(ConfigError, match="class_label=1 needs a class-conditional checkpoint"):
        _sample(toy_ckpt, tmp_path, "class_label=1")
    with pytest.raises(ConfigError, match="denoiser.variance=learned_range needs a learned"):
        _sample(toy_ckpt, tmp_path, "denoiser.variance=learned_range")
    with pytest.raises(ConfigError, match="denoiser.variance=analytic needs Gamma estimates"):
        _sample(toy_ckpt, tmp_path, "denoiser.variance=analytic")
    with pytest.raises(ConfigError, match=r"sampler.steps=2000 is not valid.*\[1, 1000\]"):
        _sample(toy_ckpt, tmp_path, "sampler.steps=2000")
    assert not list(tmp_path.iterdir())  # nothing was written


def test_evaluate_bpd_of_trained_is_better_than_untrained(toy_ckpt, tmp_path, capsys):
    untrained = tmp_path / "untrained"
    train_in_process(untrained, steps=1)
    results = {}
    for name, ckpt in [
        ("trained", toy_ckpt),
        ("untrained", untrained / "checkpoints" / "last.ckpt"),
    ]:
        m = _evaluate(
            ckpt, tmp_path / name, "num_samples=50", "sampler.steps=5", "bpd=true",
            "bpd_examples=64", "bpd_timesteps_per_call=50", f"fid.cache_dir={tmp_path / 'cache'}",
        )  # fmt: skip
        assert m == json.loads((tmp_path / name / "metrics.json").read_text())
        printed = capsys.readouterr().out  # every number it computed, not only the FID
        for key in ("fid=", "bpd=", "bpd_stderr=", "sliced_wasserstein=", "mmd=", "nfe=5"):
            assert key in printed, key
        assert m["bpd_method"] == "vlb" and m["bpd_variance"] == "fixed_small"
        assert 0 < m["bpd_stderr"] < abs(m["bpd"]) and m["nfe"] == 5 and m["steps"] == 5
        results[name] = (m["bpd"], m["bpd_stderr"])
    (trained, se_t), (untrained, se_u) = results["trained"], results["untrained"]
    assert np.isfinite(trained) and trained < untrained - 3 * math.hypot(se_t, se_u)


def test_checkpoints_that_are_not_checkpoints_are_named_for_what_they_are(toy_ckpt, tmp_path):
    data = toy_ckpt.read_bytes()
    cases = {
        "dir": (toy_ckpt.parent, "is a directory; pass a .ckpt file, e.g. ckpt="),
        "missing.ckpt": (tmp_path / "missing.ckpt", "does not exist"),
        "random.ckpt": (
            bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
            "is not a checkpoint",
        ),
        "truncated.ckpt": (data[: len(data) // 2], "is truncated or corrupt"),
        "empty.ckpt": (b"", "is empty"),
    }
    for name, (content, message) in cases.items():
        path = content if not isinstance(content, bytes) else tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        with pytest.raises(CheckpointError, match=message) as e:
            _sample(path, tmp_path / "out")
        assert "weights_only=False" not in str(e.value) and "will likely succeed" not in str(
            e.value
        )


def test_checkpoint_of_another_network_is_refused(toy_ckpt, tmp_path):
    ckpt = torch.load(toy_ckpt, weights_only=True)
    ckpt["hyper_parameters"]["run_config"]["network"]["hidden"] = 32
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    with pytest.raises(CheckpointError, match="do not match the network"):
        _sample(other, tmp_path / "out")


def test_images_scalars_and_checkpoints_of_one_moment_carry_one_step(tmp_path):
    """After 10 optimizer steps: the sample grid, the validation loss, the training scalars and
    the checkpoint all say step 10, in TensorBoard and CSV alike; no placeholder hp_metric."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = ["callbacks.sample_grid.every_n_steps=10", "trainer.log_every_n_steps=10"]
    train_in_process(tmp_path / "tb", "logger=tensorboard", *common, steps=20)
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    steps = lambda tag: sorted({e.step for e in events.Scalars(tag)})  # noqa: E731
    assert sorted({e.step for e in events.Images("samples")}) == [10, 20]
    assert steps("val/loss") == [10, 20] and steps("train/loss") == [10, 20]
    assert "hp_metric" not in events.Tags()["scalars"]
    names = sorted(p.name for p in (tmp_path / "tb" / "checkpoints").glob("step_*.ckpt"))
    assert names == ["step_0000010.ckpt", "step_0000020.ckpt"]
    train_in_process(tmp_path / "csv", *common, steps=20)
    with open(tmp_path / "csv" / "logs" / "metrics.csv") as f:
        rows = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert sorted(set(rows)) == ["10", "20"]


def test_bits_per_dim_of_a_learned_variance_model_with_any_variance(tmp_path):
    """A learned-variance network outputs [prediction, v]: every reverse variance reads only
    the prediction half (it once fed both halves in as the prediction)."""
    train_in_process(
        tmp_path / "run", "model.variance=learned_range", "model.loss=hybrid", steps=30
    )
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    bpd = {}
    for variance in ("learned_range", "fixed_small", "fixed_large"):
        m = _evaluate(ckpt, tmp_path / variance, "num_samples=20", "sampler.steps=3", "bpd=true",
                      "bpd_examples=16", "bpd_timesteps_per_call=100", f"denoiser.variance={variance}",
                      f"fid.cache_dir={tmp_path / 'cache'}")  # fmt: skip
        assert m["bpd_variance"] == variance
        bpd[variance] = m["bpd"]
    assert all(0 < b < 20 for b in bpd.values()), bpd


def test_every_logged_training_row_carries_the_diagnostics(tmp_path):
    """Diagnostics are logged only on the steps the loggers write (each ``self.log`` costs time):
    those rows still carry all of them, and no other step gets a training row."""
    train_in_process(tmp_path, "trainer.log_every_n_steps=4", "trainer.val_check_interval=100",
                     steps=12)  # fmt: skip
    with open(tmp_path / "logs" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    assert [int(float(r["step"])) for r in rows] == [4, 8, 12]
    keys = ["train/mse", "train/grad_norm", "train/lr"] + [f"train/mse_q{q}" for q in range(4)]
    for r in rows:
        assert all(r[key] for key in keys[:3]) and any(r[key] for key in keys[3:])
