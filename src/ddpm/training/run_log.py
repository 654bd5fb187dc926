"""The run's log, ``DIR/train.log``: what train.py says on the terminal (the run directory, the
model and data, stops, where the checkpoint is) and Lightning's own messages, with times. The
terminal keeps its plain lines; a resumed or requeued run appends to the same file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

LOGGER = logging.getLogger("ddpm.run")
LOGGER.propagate = False  # the terminal gets the plain line from say(), not a second copy
LOGGER.setLevel(logging.INFO)
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job log format


def say(message: str, level: int = logging.INFO) -> None:
    """One line on stderr, and in the run's log while :func:`run_log` is active."""
    print(message, file=sys.stderr, flush=True)
    LOGGER.log(level, message)


@contextlib.contextmanager
def run_log(run_dir: str | Path, main: bool = True) -> Iterator[None]:
    """Append this process's run messages and Lightning's to ``run_dir/train.log`` (rank 0)."""
    if not main:
        yield
        return
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(run_dir) / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    loggers = [
        LOGGER,
        logging.getLogger("lightning.pytorch"),
        logging.getLogger("lightning.fabric"),
    ]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
