"""Networks: denoisers ``net(x_t, k, y=None) -> tensor`` and VAEs (``encode``/``decode``). They
know nothing of diffusion or of the bounds they are trained with."""

from ddpm.nets.diffusers_unet import DiffusersUNet
from ddpm.nets.dit import DiT
from ddpm.nets.homework_unet import HomeworkUNet
from ddpm.nets.mlp import MLP
from ddpm.nets.simple_unet import SimpleUNet
from ddpm.nets.unet import UNet
from ddpm.nets.vae import MLPVAE, VAE, ConvVAE

__all__ = [
    "MLP",
    "VAE",
    "ConvVAE",
    "DiffusersUNet",
    "DiT",
    "HomeworkUNet",
    "MLPVAE",
    "SimpleUNet",
    "UNet",
]
