"""The run directory: one run per directory, never overwritten by accident, never shared by two
live runs, and checked writable (with room for a checkpoint) before any training."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ddpm.checkpoint import remove_stale_temporaries
from ddpm.checks import ConfigError

RUN_OUTPUTS = (
    "checkpoints", "samples", "logs", "tensorboard", "wandb", ".wandb_run_id", ".job", "timing.json",
    "ema_snapshots",
)  # fmt: skip


def global_rank() -> int:
    """This process's rank among all processes of the run, from the launcher's environment:
    torchrun (``RANK``), SLURM tasks (``SLURM_PROCID``), LSF (``JSM_NAMESPACE_RANK``), or
    Lightning's own launcher (``LOCAL_RANK``/``NODE_RANK``)."""
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    return local + node  # only its being non-zero matters


def is_child_rank() -> bool:
    """True in every process but the run's first (they must not write or lock run outputs)."""
    return global_rank() > 0


def check_run_dir(run_dir: str | Path, ckpt_path: str | None, overwrite: bool) -> None:
    """A run never trains into another run's directory unless resuming it or told to overwrite."""
    last = Path(run_dir) / "checkpoints"
    if ckpt_path is None and not overwrite and last.is_dir() and any(last.glob("*.ckpt")):
        raise ConfigError(
            f"{Path(run_dir).resolve()} already holds a run's checkpoints; resume it with "
            f"ckpt_path={last / 'last.ckpt'}, choose another hydra.run.dir, or pass overwrite=true"
        )


def clear_previous_run(run_dir: str | Path) -> list[str]:
    """``overwrite=true``: the previous run's checkpoints, sample grids and logs are removed, so
    the new run's files are never mixed with the old one's. Returns what was removed."""
    removed = []
    for name in RUN_OUTPUTS:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold ``DIR/.lock`` for the run: a second run into the same directory is refused while the
    first is alive. The OS releases the lock when the process ends, also after a crash or kill."""
    path = Path(run_dir) / ".lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")  # noqa: SIM115 - held open for the whole run
    except OSError as e:
        raise ConfigError(
            f"cannot write to the run dir {Path(run_dir)}: {e.strerror or e}; choose a writable "
            f"hydra.run.dir"
        ) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip() or "another process"
        f.close()
        raise ConfigError(
            f"{Path(run_dir).resolve()} is in use by a run that is still training (pid {owner}); "
            f"wait for it, or choose another hydra.run.dir"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def check_writable(folder: str | Path, needed_bytes: int) -> None:
    """Create ``folder`` and write a probe file in it, and check it has room for ``needed_bytes``
    (one checkpoint) now, rather than failing at the first save after minutes of training."""
    folder = Path(folder)
    probe = folder / f".probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"cannot write checkpoints to {folder}: {e.strerror or e}; choose a writable "
            f"hydra.run.dir"
        ) from None
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise ConfigError(
            f"{folder} has {free / 2**20:.0f} MiB free, less than one checkpoint of this run "
            f"({needed_bytes / 2**20:.0f} MiB); free some space or choose another hydra.run.dir"
        )
    remove_stale_temporaries(folder)
