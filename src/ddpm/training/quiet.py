"""Silence what is ours to silence: Lightning messages that are wrong or irrelevant for a run of
this framework. Real warnings pass through."""

from __future__ import annotations

import logging
import re
import warnings

# (why it does not apply, the text it is recognised by)
OURS = (
    ("an advertisement", "litlogger"),
    ("the EMA copy is in eval mode on purpose", "module(s) in eval mode"),
    ("runs are counted in steps, not epochs", "is smaller than the logging interval"),
    ("a deprecation inside Lightning itself, not in our code", "LeafSpec"),
    ("a resumed run appends to its own logs", "Experiment logs directory"),
    ("the run's own first line names its devices", "GPU available:"),
    ("the run's own first line names its devices", "TPU available:"),
)


class _DropOurs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for _, text in OURS)


_INSTALLED = False


def silence_known_noise() -> None:
    """Install the filters (once per process)."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    for _, text in OURS:
        warnings.filterwarnings("ignore", message=f".*{re.escape(text)}")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropOurs) for f in logger.filters):
            logger.addFilter(_DropOurs())
