"""The run directory: one run per directory, never overwritten by accident."""

from __future__ import annotations

import os
from pathlib import Path

from ddpm.checks import ConfigError


def is_child_rank() -> bool:
    """True in the ranks Lightning's launcher started (they must not write run outputs)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def check_run_dir(run_dir: str | Path, ckpt_path: str | None, overwrite: bool) -> None:
    """A run never trains into another run's directory unless resuming it or told to overwrite."""
    last = Path(run_dir) / "checkpoints"
    if ckpt_path is None and not overwrite and last.is_dir() and any(last.glob("*.ckpt")):
        raise ConfigError(
            f"{Path(run_dir).resolve()} already holds a run's checkpoints; resume it with "
            f"ckpt_path={last / 'last.ckpt'}, choose another hydra.run.dir, or pass overwrite=true"
        )
