"""Latent diffusion: an autoencoder maps the data to the space a diffusion model is trained in
(``latent=diffusers_vae`` or ``latent=vae``); samples are decoded back to images."""

from ddpm.latents.base import Autoencoder
from ddpm.latents.checkpoint_vae import CheckpointVAE
from ddpm.latents.diffusers_vae import DiffusersVAE

__all__ = ["Autoencoder", "CheckpointVAE", "DiffusersVAE"]
