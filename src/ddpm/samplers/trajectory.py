"""The reverse chain as a few frames: what ``trajectory=true`` shows, never the whole chain."""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.paths import Path


class Trajectory:
    """A step callback that keeps ``frames`` states of the chain, evenly spaced from ``x_T`` to
    ``x_0``, for the first ``rows`` samples (CPU copies, on the path's own scale). ``sigmas`` is
    the sampler's step list: the state after step ``i`` sits at ``sigmas[i + 1]``, so every frame
    is labelled with its time (:meth:`ddpm.paths.Path.describe`: ``t = k + 1`` on the discrete
    chain, ``t=0`` for ``x_0``).

    An adaptive sampler reports only its last step, so its trajectory is ``x_T`` and ``x_0``."""

    def __init__(
        self, sigmas: Tensor, x_T: Tensor, path: Path, frames: int = 10, rows: int | None = 8
    ) -> None:
        self.sigmas, self.path, self.rows = [float(s) for s in sigmas], path, rows
        n_states = len(self.sigmas)
        picks = torch.linspace(0, n_states - 1, min(frames, n_states)).round().long()
        self.keep = set(picks.tolist())
        self.frames: list[Tensor] = []
        self.levels: list[float] = []
        self._add(0, x_T)

    def _add(self, state: int, x: Tensor) -> None:
        if state in self.keep:
            level = self.sigmas[state]
            self.frames.append(x[: self.rows].detach().float().cpu() * self.path.scale_at(level))
            self.levels.append(level)

    def __call__(self, i: int, sigma: float, x: Tensor, x0_hat: Tensor) -> None:
        self._add(min(i + 1, len(self.sigmas) - 1), x)

    @property
    def labels(self) -> list[str]:
        return [self.path.describe(level) for level in self.levels]
