"""A job that a scheduler requeues (SLURM preemption or timeout, submitit's requeue, or
submitit_local's) starts again with the same command, in the same run dir. It resumes from its
own ``last.ckpt`` and finishes at the planned step; a new run into a used dir is still refused.

A run records the scheduler's job id in ``DIR/.job``; a process that finds checkpoints there
under its own job id is that job, requeued."""

from __future__ import annotations

import os
from pathlib import Path

JOB_ID_VARIABLES = ("SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID")


def scheduler_job_id() -> str | None:
    """The job id SLURM or submitit gives this process (the same after a requeue)."""
    for name in JOB_ID_VARIABLES:
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    return None


def requeued_checkpoint(run_dir: str | Path) -> Path | None:
    """``DIR/checkpoints/last.ckpt`` when this process is a requeue of the job that wrote it."""
    job = scheduler_job_id()
    marker, last = Path(run_dir) / ".job", Path(run_dir) / "checkpoints" / "last.ckpt"
    if job is None or not marker.is_file() or not last.is_file():
        return None
    return last if marker.read_text().strip() == job else None


def record_job(run_dir: str | Path) -> None:
    """Remember which scheduler job trains into ``run_dir``."""
    job = scheduler_job_id()
    if job is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / ".job").write_text(job + "\n")
