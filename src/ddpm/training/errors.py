"""Errors the training loop raises on purpose."""

from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient became NaN/Inf at ``step``; the run stops, and a checkpoint written
    before it is kept (the weights may be poisoned, so none is written now)."""

    exit_code = 3

    def __init__(self, what: str, step: int) -> None:
        super().__init__(f"{what} at step {step}")
        self.what, self.step = what, step


class RunTerminated(RuntimeError):
    """The run was stopped by SIGTERM after saving ``last.ckpt`` (exit 143 = 128 + 15)."""

    exit_code = 143


class RunInterrupted(RunTerminated):
    """The run was stopped by Ctrl-C (SIGINT) after saving ``last.ckpt`` (exit 130 = 128 + 2)."""

    exit_code = 130
