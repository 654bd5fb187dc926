"""Errors the training loop raises on purpose."""


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient became NaN/Inf; the run stops and the last good checkpoint is kept."""
