"""Scoring and sampling checkpoints: loading (``loading``), drawing on every rank (``sampling``),
features and metrics (``features``, ``extractors``, ``metrics``), likelihood (``likelihood``),
outputs (``outputs``); ``sample(cfg)`` and ``evaluate(cfg)`` are the library calls behind
sample.py and evaluate.py."""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names are, for readers and type checkers
    from ddpm.evaluation.commands import evaluate, sample

__all__ = ["evaluate", "sample"]


def __getattr__(name: str):
    # imported on first use, so ``python -m ddpm.evaluation.reference`` (which commands
    # imports) runs as a script without a second copy of itself in sys.modules
    if name in __all__:
        return getattr(importlib.import_module("ddpm.evaluation.commands"), name)
    raise AttributeError(f"module 'ddpm.evaluation' has no attribute {name!r}")
