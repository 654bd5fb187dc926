"""Networks: ``net(x_t, k, y=None) -> tensor``. They know nothing of diffusion."""

from ddpm.nets.mlp import MLP
from ddpm.nets.simple_unet import SimpleUNet
from ddpm.nets.unet import UNet

__all__ = ["MLP", "SimpleUNet", "UNet"]
