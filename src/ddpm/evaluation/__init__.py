"""Scoring and sampling checkpoints: loading (``loading``), drawing on every rank (``sampling``),
features and metrics (``features``, ``extractors``, ``metrics``), likelihood (``likelihood``),
outputs (``outputs``); ``sample(cfg)`` and ``evaluate(cfg)`` are the library calls behind
sample.py and evaluate.py."""

from ddpm.evaluation.commands import evaluate, sample

__all__ = ["evaluate", "sample"]
