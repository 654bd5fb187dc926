"""Loggers that a resumed run continues instead of restarting.

Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts (a resume kept only its
newest segment, a no-op resume deleted the file); TensorBoard interleaves the events a killed run
wrote after its last checkpoint; W&B starts a new run. :func:`resume_options` says how each
logger continues the run at the checkpoint's step."""

from __future__ import annotations

import csv
import secrets
from pathlib import Path
from typing import Any, cast

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    """Appends to an existing ``metrics.csv`` (its header kept and merged with new keys), after
    dropping the rows logged after ``resume_step`` (a killed run's last, unsaved stretch)."""

    def __init__(self, log_dir: str, resume_step: int | None = None) -> None:
        self._resume_step = resume_step
        super().__init__(log_dir)
        path = Path(self.metrics_file_path)
        if path.is_file() and resume_step is None:  # not this run's: kept aside, never mixed in
            path.replace(path.with_name("metrics.previous.csv"))
        if path.is_file():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
                header = list(rows[0].keys()) if rows else []
            if resume_step is not None:
                kept = [
                    r for r in rows if not r.get("step") or int(float(r["step"])) <= resume_step
                ]
                if len(kept) != len(rows):
                    with open(path, "w", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=header)
                        writer.writeheader()
                        writer.writerows(kept)
            self.metrics_keys = sorted(header)

    def _check_log_dir_exists(self) -> None:
        """Never delete an existing log (Lightning's writer removes ``metrics.csv`` here)."""


class CSVLogger(LightningCSVLogger):
    """Lightning's CSV logger, appending to the run's ``metrics.csv`` when a run is resumed
    (``resume_step``: the checkpoint's step; rows logged after it are replaced)."""

    def __init__(self, *args, resume_step: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self._resume_step)
        return cast(_AppendingWriter, self._experiment)  # only set here


def wandb_run_id(run_dir: str | Path, resuming: bool, main: bool = True) -> str:
    """The W&B run of a run dir: created once by the first process, reused by every resume and
    read by the other ranks (``.wandb_run_id``)."""
    path = Path(run_dir) / ".wandb_run_id"
    if (resuming or not main) and path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    if not main:
        return run_id  # only the first process logs to W&B
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def resume_options(
    logger_cls, run_dir: str | Path, resume_step: int | None, main: bool = True
) -> dict[str, Any]:
    """Keyword arguments that make ``logger_cls`` continue the run at ``resume_step`` (``None``:
    a new run)."""
    if isinstance(logger_cls, type) and issubclass(logger_cls, CSVLogger):
        return {"resume_step": resume_step}
    if isinstance(logger_cls, type) and issubclass(logger_cls, TensorBoardLogger):
        return {} if resume_step is None else {"purge_step": resume_step + 1}
    if isinstance(logger_cls, type) and issubclass(logger_cls, WandbLogger):
        return {"id": wandb_run_id(run_dir, resume_step is not None, main), "resume": "allow"}
    return {}
