"""A trained model as the commands use it: it generates and scores itself, so sample.py,
evaluate.py, export and the figures never ask which family a checkpoint is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from ddpm.checks import ConfigError
from ddpm.data.info import DataInfo


@dataclass(frozen=True)
class SamplingOptions:
    """How a network becomes the denoiser samplers see (``denoiser.*``), and guidance."""

    clip_x0: bool = True  # clamp the x0 estimate to the data range [-1, 1]
    variance: str | None = None  # null: the model's own (learned, else fixed_small)
    channels_last: bool = False  # run the network on channels-last images (a speed choice)
    quantize: bool = True  # discrete chains: visit trained levels only
    guidance_scale: float = 1.0
    guidance_interval: tuple[float, float] | None = None  # guide only at these noise levels
    guidance_model: Any = None  # autoguidance: the weaker model guided away from (same path)


@dataclass(frozen=True)
class Likelihood:
    """Per-example scores of a test set: ``batch(x, first_index) -> (n, len(columns))`` and
    ``summary(values) -> metrics`` of the gathered values (float64)."""

    columns: tuple[str, ...]
    batch: Callable[[Tensor, int], Tensor]
    summary: Callable[[Tensor], dict]


class GenerativeModel(ABC):
    """What every model family offers: ``generate`` and ``likelihood`` (where defined), and the
    refusals of what it cannot do (before any work)."""

    family: ClassVar[str] = "model"
    net: nn.Module
    data: DataInfo
    where: str  # the checkpoint, for messages

    @property
    def num_classes(self) -> int | None:
        """The classes a conditional model can draw (``None`` when unconditional)."""
        return None

    @abstractmethod
    def check_sampling(self, sampler, options: SamplingOptions, trajectory: bool = False) -> None:
        """Refuse sampler or denoiser settings this model cannot honour."""

    @abstractmethod
    def generate(
        self,
        sampler,
        options: SamplingOptions,
        indices: Sequence[int],
        seed: int,
        batch_size: int,
        labels: Tensor | None = None,
        device="cpu",
        trajectory_frames: int = 0,
        progress: Callable | None = None,
    ) -> tuple[Tensor, dict[str, Any]]:
        """Samples ``indices`` (sample ``i`` seeded by ``(seed, i)``) and ``info``: ``nfe``,
        ``method`` and the trajectory frames when asked."""

    @abstractmethod
    def likelihood(self, method: str | bool, seed: int, **options) -> Likelihood:
        """Bits/dim of test examples by ``method`` (``True``: the family's own bound)."""

    def check_likelihood(self, method: str | bool, **options) -> None:
        self.likelihood(method, 0, **options)

    def steps(self, sampler) -> int | None:
        """The sampler's steps as reported in metrics (``None`` when it takes none)."""
        return None

    def diffusion(self, what: str):
        """The model as a diffusion model, for tools that need one (``what`` names the tool)."""
        raise ConfigError(f"{what} needs a diffusion checkpoint; {self.where} is a {self.family}")
