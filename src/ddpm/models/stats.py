"""Summaries of per-example estimates."""

from __future__ import annotations

import math

from torch import Tensor


def standard_error(values: Tensor) -> float:
    """The standard error of the mean of per-example estimates: ``std / sqrt(n)``. It covers the
    spread of the test examples and the Monte Carlo noise of each example's estimate together,
    so two bits/dim that differ by less than a few of these are not told apart (0 for n = 1)."""
    n = len(values)
    return float(values.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0
