"""A preempted job that its scheduler requeues resumes from its own checkpoint and finishes at
the planned step; a new run into a used dir is still refused."""

import os
import signal
import subprocess
import time

import pytest
import torch

from conftest import PYTHON, QUIET, REPO

pytestmark = pytest.mark.slow


def _step(path):
    return torch.load(path, weights_only=True)["global_step"]


def test_a_preempted_submitit_job_resumes_and_both_jobs_finish(tmp_path):
    """A 2-job sweep through submitit_local; job 0 gets SIGUSR2 (how submitit signals preemption
    and timeouts) after its first checkpoint: submitit requeues it, and it resumes."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    steps = 400  # long enough that the signal lands mid-run on an idle machine too
    cmd = [
        PYTHON, str(REPO / "train.py"), "-m", "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=30", f"hydra.sweep.dir={tmp_path}", "experiment=toy2d",
        "seed=0,1", f"trainer.max_steps={steps}", "dataset.size=512", "network.hidden=64",
        "callbacks.checkpoint.every_n_train_steps=10", "callbacks.sample_grid.every_n_steps=0",
        "trainer.limit_val_batches=0", *QUIET,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    last, lock = tmp_path / "0" / "checkpoints" / "last.ckpt", tmp_path / "0" / ".lock"
    deadline = time.time() + 300
    while not (last.is_file() and lock.is_file() and lock.read_text().strip()):
        assert sweep.poll() is None and time.time() < deadline, sweep.stdout.read()
        time.sleep(0.2)
    pid = int(lock.read_text())
    os.kill(pid, signal.SIGUSR2)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, out[-3000:]
    for job in ("0", "1"):
        assert _step(tmp_path / job / "checkpoints" / "last.ckpt") == steps
    logs = "".join(p.read_text() for p in (tmp_path / ".submitit").rglob("*_log.err"))
    assert "requeued job: resuming from" in logs
    rows = (tmp_path / "0" / "logs" / "metrics.csv").read_text().splitlines()
    assert len(rows) > 2  # the log survived the requeue


def test_a_new_run_into_a_used_dir_is_still_refused(tmp_path):
    from conftest import train_in_process
    from ddpm.checks import ConfigError

    train_in_process(tmp_path, steps=5)
    (tmp_path / ".job").write_text("SLURM_JOB_ID=1\n")
    with pytest.raises(ConfigError, match="already holds a run"):
        train_in_process(tmp_path, steps=5)  # no scheduler job here: not a requeue
    os.environ["SLURM_JOB_ID"] = "2"
    try:
        with pytest.raises(ConfigError, match="already holds a run"):
            train_in_process(tmp_path, steps=5)  # another job
        os.environ["SLURM_JOB_ID"] = "1"
        train_in_process(tmp_path, steps=10)  # the same job, requeued: resumes
    finally:
        del os.environ["SLURM_JOB_ID"]
    assert _step(tmp_path / "checkpoints" / "last.ckpt") == 10


def test_the_preemption_handler_runs_between_steps_not_where_the_signal_lands():
    """submitit's handler raises SystemExit; landing mid-save or in a garbage-collection callback,
    that exit is garbled or dropped. Installed, the signal is recorded and the handler runs at the
    end of the batch; afterwards the scheduler's own handler is back."""
    from ddpm.training.requeue import PreemptionAtStepEnd

    calls = []

    def submitit_like(signum, frame):
        calls.append(signum)
        raise SystemExit(144)

    previous = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        deferred = PreemptionAtStepEnd()
        with deferred.installed():
            deferred.on_train_batch_end()  # nothing pending: nothing runs
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.05)
            assert calls == []
            with pytest.raises(SystemExit):
                deferred.on_train_batch_end()
            assert calls == [signal.SIGUSR2]
            deferred.on_validation_batch_end()  # handled once
        assert signal.getsignal(signal.SIGUSR2) is submitit_like
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == [signal.SIGUSR2]
