"""Lightning pieces: the diffusion and VAE modules, their callbacks, and the training entry
function."""

from ddpm.training.errors import NonFiniteLossError
from ddpm.training.module import DiffusionModule
from ddpm.training.vae_module import VAEModule

__all__ = ["DiffusionModule", "NonFiniteLossError", "VAEModule"]
