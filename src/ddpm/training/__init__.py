"""Lightning pieces: the diffusion and VAE modules, their callbacks, and ``train(cfg)``, the
library call behind train.py."""

from ddpm.training.errors import NonFiniteLossError, RunTerminated
from ddpm.training.module import DiffusionModule
from ddpm.training.run import train
from ddpm.training.vae_module import VAEModule

__all__ = ["DiffusionModule", "NonFiniteLossError", "RunTerminated", "VAEModule", "train"]
