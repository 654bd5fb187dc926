"""A consistency model (``model=consistency``) as a model family: the network with the consistency
parametrisation on the EDM path (:class:`ddpm.fewstep.consistency.ConsistencyPath`), sampled by
``sampler=consistency`` in one or a few calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ddpm.checks import ConfigError
from ddpm.fewstep.consistency import ConsistencyPath
from ddpm.models.base import Likelihood
from ddpm.models.diffusion import DiffusionModel


@dataclass
class ConsistencyModel(DiffusionModel):
    """``f(x, sigma) = c_skip x + c_out F(c_in x, c_noise)`` with ``f(x, sigma_min) = x``: the
    denoiser every sampler sees is ``f`` itself; only ``sampler=consistency`` uses it as one."""

    family = "consistency model"
    kind: ClassVar[str] = "consistency"

    def __post_init__(self) -> None:
        self.path = ConsistencyPath.of(self.path)

    def likelihood(self, method: str | bool, seed: int, *_: Any, **__: Any) -> Likelihood:
        raise ConfigError(
            f"bpd={method}: {self.where} is a consistency model, a map from noise to data with no "
            f"density or ODE to integrate; score it with FID"
        )
