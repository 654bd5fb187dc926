"""Lightning pieces: the diffusion module, its callbacks, and the training entry function."""

from ddpm.training.errors import NonFiniteLossError
from ddpm.training.module import DiffusionModule

__all__ = ["DiffusionModule", "NonFiniteLossError"]
