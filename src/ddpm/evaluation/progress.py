"""Progress users can see: a bar in a terminal, a plain line now and then in a log file."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable


def progress_bar(description: str, enabled: bool = True) -> Callable[[Iterable], Iterable]:
    """Wrap an iterable: a rich progress bar on a terminal; without one (a log file, nohup,
    SLURM) a line ``description: i/n (rate, eta)`` about every 10 seconds and at the end."""

    def wrap(items):
        if not enabled:
            return items
        items = list(items)
        if sys.stderr.isatty():
            from rich.progress import track

            return track(items, description=description, transient=True)
        return _plain(items, description)

    return wrap


def _plain(items: list, description: str, every: float = 10.0):
    n, start, last = len(items), time.monotonic(), time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= every or i == n:
            rate = i / max(now - start, 1e-9)
            eta = (n - i) / rate if rate > 0 else 0.0
            print(f"{description}: {i}/{n} ({rate:.2f}/s, eta {eta:.0f} s)", file=sys.stderr)
            last = now
