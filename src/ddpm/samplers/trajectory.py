"""The reverse chain as a few frames: what ``trajectory=true`` shows, never the whole chain."""

from __future__ import annotations

import torch
from torch import Tensor


class Trajectory:
    """A step callback that keeps ``frames`` states of the chain, evenly spaced from ``x_T`` to
    ``x_0``, for the first ``rows`` samples (CPU copies). ``ks`` is the sampler's step list: the
    state after step ``i`` sits at ``ks[i + 1]`` (``x_0`` after the last step), so every frame is
    labelled with its paper time ``t = k + 1`` (``t = 0`` for ``x_0``).

    An adaptive sampler reports only its last step (``i = len(ks) - 1``), so its trajectory is
    ``x_T`` and ``x_0``."""

    def __init__(self, ks: Tensor, x_T: Tensor, frames: int = 10, rows: int | None = 8) -> None:
        self.ks, self.rows = [int(k) for k in ks], rows
        n_states = len(self.ks) + 1
        picks = torch.linspace(0, n_states - 1, min(frames, n_states)).round().long()
        self.keep = set(picks.tolist())
        self.frames: list[Tensor] = []
        self.times: list[int] = []
        self._add(0, x_T)

    def _add(self, state: int, x: Tensor) -> None:
        if state in self.keep:
            self.frames.append(x[: self.rows].detach().float().cpu())
            self.times.append(self.ks[state] + 1 if state < len(self.ks) else 0)

    def __call__(self, i: int, k: int, x: Tensor, x0_hat: Tensor) -> None:
        self._add(min(i + 1, len(self.ks)), x)

    @property
    def labels(self) -> list[str]:
        return [f"t={t}" for t in self.times]
