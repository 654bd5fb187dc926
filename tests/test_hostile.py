"""What a hostile (or unlucky) user does to a run: resume it, change it, start it twice, fill the
disk, point it at the wrong place. Nothing is lost, nothing is silently accepted."""

import csv
import os
import resource
import signal
import subprocess

import pytest
import torch

from conftest import PYTHON, QUIET, REPO, run_cli, train_in_process
from ddpm.checks import ConfigError
from ddpm.training.run_dir import run_dir_lock

pytestmark = pytest.mark.slow


def _rows(run):
    with open(run / "logs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_resumed_run_appends_to_its_log(tmp_path):
    train_in_process(tmp_path, "trainer.log_every_n_steps=5", steps=20)
    first = _rows(tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    train_in_process(tmp_path, f"ckpt_path={last}", "trainer.log_every_n_steps=5", steps=20)
    assert _rows(tmp_path) == first  # a no-op resume keeps the log whole
    train_in_process(tmp_path, f"ckpt_path={last}", "trainer.log_every_n_steps=5", steps=35)
    steps = [int(r["step"]) for r in _rows(tmp_path) if r["train/loss"]]
    assert steps == [5, 10, 15, 20, 25, 30, 35]


def test_wandb_resumes_the_same_run(tmp_path):
    train_in_process(tmp_path, "logger=wandb", steps=5)
    run_id = (tmp_path / ".wandb_run_id").read_text().strip()
    last = tmp_path / "checkpoints" / "last.ckpt"
    train_in_process(tmp_path, "logger=wandb", f"ckpt_path={last}", steps=10)
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)


def test_changing_the_model_on_resume_is_refused_naming_each_difference(tmp_path):
    train_in_process(tmp_path, steps=5)
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError) as e:
        train_in_process(
            tmp_path, f"ckpt_path={last}", "schedule.num_timesteps=500", "network.hidden=32",
            "model.prediction=v", steps=10,
        )  # fmt: skip
    message = str(e.value)
    for part in ("schedule.num_timesteps=1000 in the checkpoint, 500 now",
                 "network.hidden=64 in the checkpoint, 32 now", "model.prediction='eps'"):  # fmt: skip
        assert part in message
    assert torch.load(last, weights_only=True)["global_step"] == 5  # nothing was trained
    train_in_process(
        tmp_path, f"ckpt_path={last}", "model.lr=1e-4", steps=10
    )  # training settings may change


def test_a_second_run_into_a_live_run_dir_is_refused(tmp_path):
    with (
        run_dir_lock(tmp_path),
        pytest.raises(ConfigError, match="in use by a run that is still training"),
    ):
        train_in_process(tmp_path, steps=5)
    train_in_process(tmp_path, steps=5)  # the lock went with its holder


def test_overwrite_replaces_the_previous_run_and_stale_temporaries_go(tmp_path):
    train_in_process(tmp_path, "callbacks.checkpoint.every_n_train_steps=5", steps=20)
    assert (tmp_path / "checkpoints" / "step_0000015.ckpt").is_file()
    stale = tmp_path / "checkpoints" / ".last.ckpt.tmp-999999"  # a save killed mid-write
    stale.write_bytes(b"x" * 1000)
    train_in_process(
        tmp_path, "overwrite=true", "callbacks.checkpoint.every_n_train_steps=5", steps=10
    )
    names = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "step_0000015.ckpt" not in names and "step_0000010.ckpt" in names
    assert not stale.exists()
    assert max(int(r["step"]) for r in _rows(tmp_path)) == 10


def test_a_checkpoint_dir_that_cannot_be_written_is_found_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    run = blocker / "run"
    with pytest.raises(ConfigError, match=f"cannot write to the run dir {run}: Not a directory"):
        train_in_process(run, steps=5)
    checkpoints = tmp_path / "run" / "checkpoints"
    with pytest.raises(ConfigError, match=f"cannot write checkpoints to {blocker}"):
        train_in_process(tmp_path / "run", f"callbacks.checkpoint.dirpath={blocker}", steps=5)
    assert not checkpoints.exists() and not (tmp_path / "run" / "samples").exists()


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-size write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_names_the_path_and_leaves_no_partial_file(tmp_path):
    """Writes beyond a size limit fail as on a full disk: the run stops with one line naming
    the checkpoint, and no half-written temporary file is left behind."""
    proc = subprocess.run(
        [
            PYTHON, str(REPO / "train.py"), "experiment=toy2d", "trainer.max_steps=10",
            f"hydra.run.dir={tmp_path}", "network.hidden=512", "dataset.size=512",
            "callbacks.checkpoint.every_n_train_steps=5", "callbacks.sample_grid.every_n_steps=0",
            "trainer.limit_val_batches=0", *QUIET,
        ],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=300, preexec_fn=_limit_file_size(2 * 2**20),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: could not save checkpoint to ") and "File too large" in last
    assert "Traceback" not in proc.stderr
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if ".tmp" in p.name]


def test_progress_without_a_terminal_and_no_noise(tmp_path):
    """Piped to a file, a run reports steps toward max_steps with rate and ETA as it goes, and
    none of the messages that do not apply to it."""
    proc = run_cli(
        "train.py", "experiment=toy2d", "trainer.max_steps=40", f"hydra.run.dir={tmp_path}",
        "dataset.size=512", "callbacks.progress.every_n_steps=20", "trainer.log_every_n_steps=50",
        "callbacks.sample_grid.every_n_steps=0", env={"PYTHONWARNINGS": "default"},
    )  # fmt: skip
    err = proc.stderr
    assert (
        "step 20/40 (50%)" in err and "steps/s | eta" in err and "training done: step 40/40" in err
    )
    assert "MLP: 0." in err and "M parameters" in err  # the one-line summary
    for noise in (
        "litlogger",
        "LeafSpec",
        "in eval mode",
        "Total FLOPs",
        "logging interval",
        "Epoch ",
    ):
        assert noise not in err + proc.stdout, noise


@pytest.mark.parametrize(
    "env,child",
    [({}, False), ({"SLURM_PROCID": "1"}, True), ({"SLURM_PROCID": "0"}, False),
     ({"RANK": "3", "LOCAL_RANK": "0"}, True), ({"LOCAL_RANK": "1"}, True), ({"GROUP_RANK": "1"}, True)],
)  # fmt: skip
def test_only_the_first_process_of_a_run_locks_and_writes_the_run_dir(monkeypatch, env, child):
    """SLURM tasks and multi-node torchrun set neither LOCAL_RANK nor NODE_RANK on every rank."""
    from ddpm.training.run_dir import is_child_rank

    for key in (
        "RANK",
        "SLURM_PROCID",
        "JSM_NAMESPACE_RANK",
        "LOCAL_RANK",
        "NODE_RANK",
        "GROUP_RANK",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_child_rank() == child


def test_other_ranks_read_the_wandb_run_id_and_never_write_it(tmp_path):
    from ddpm.training.loggers import wandb_run_id

    first = wandb_run_id(tmp_path, resuming=False, main=True)
    assert wandb_run_id(tmp_path, resuming=False, main=False) == first
    assert (tmp_path / ".wandb_run_id").read_text().strip() == first
    assert wandb_run_id(tmp_path, resuming=True, main=True) == first


def test_ddp_ranks_are_relaunched_with_the_jobs_search_path(tmp_path):
    """A user's config dir must reach the other ranks too, or sampler=MINE fails there."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from ddpm.cli.hydra_ddp import hydra_job_command

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(
            "train", [f"hydra.searchpath=[file://{tmp_path}]", "seed=3"], return_hydra_config=True
        )
    cfg.hydra.runtime.output_dir = str(tmp_path / "run")
    HydraConfig.instance().set_config(cfg)
    command, _ = hydra_job_command(1)
    assert f"hydra.searchpath=[file://{tmp_path}]" in command and "seed=3" in command
