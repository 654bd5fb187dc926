"""A job that a scheduler requeues (SLURM preemption or timeout, submitit's requeue, or
submitit_local's) starts again with the same command, in the same run dir. It resumes from its
own ``last.ckpt`` and finishes at the planned step; a new run into a used dir is still refused.

A run records the scheduler's job id in ``DIR/.job``; a process that finds checkpoints there
under its own job id is that job, requeued."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from lightning.pytorch.callbacks import Callback

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


def preemption_signal() -> int:
    """The signal submitit's handler listens on (``SUBMITIT_PREEMPT_SIGNAL``, ``USR2`` unless set)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper().removeprefix("SIG")
    return getattr(signal, f"SIG{name}", signal.SIGUSR2)


class PreemptionAtStepEnd(Callback):
    """Run the scheduler's preemption handler at the end of a step, not wherever the signal lands.

    submitit's handler requeues the job and raises ``SystemExit`` from inside the signal handler.
    Raised mid-``torch.save``, that exit becomes torch's "unexpected pos" error (and the job exits
    with an error instead of being requeued); raised during a garbage-collection callback, Python
    prints it and drops it (and the job trains on to the end, unrequeued). While installed, the
    signal is only recorded; the handler runs after the current training or validation batch."""

    def __init__(self) -> None:
        self._handler: Callable[[int, FrameType | None], Any] | None = None
        self._pending: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        signum = preemption_signal()
        handler = signal.getsignal(signum)
        if not callable(handler) or threading.current_thread() is not threading.main_thread():
            yield  # no Python handler to defer (or not ours to change)
            return
        self._handler = handler
        signal.signal(signum, self._record)
        try:
            yield
        finally:
            signal.signal(signum, handler)

    def _record(self, signum, frame) -> None:
        self._pending = signum

    def _release(self) -> None:
        if self._pending is not None and self._handler is not None:
            signum, self._pending = self._pending, None
            self._handler(signum, None)

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self._release()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        self._release()
