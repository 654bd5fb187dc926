"""Networks: denoisers ``net(x_t, k, y=None) -> tensor``, VAEs (``encode``/``decode``) and the
few-step models' discriminators ``D(x, y=None) -> logits`` (on a frozen network's features:
``D(x_in, y, c_noise)``, the network's own inputs). They know nothing of diffusion or of the
bounds they are trained with."""

from ddpm.nets.diffusers_unet import DiffusersUNet
from ddpm.nets.discriminator import Discriminator
from ddpm.nets.dit import DiT
from ddpm.nets.feature_discriminator import FeatureDiscriminator
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
    "Discriminator",
    "FeatureDiscriminator",
    "DiT",
    "HomeworkUNet",
    "MLPVAE",
    "SimpleUNet",
    "UNet",
]
