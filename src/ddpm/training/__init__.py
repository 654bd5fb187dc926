"""Lightning pieces: the diffusion module and its few-step relatives (consistency, MeanFlow,
progressive distillation), the VAE module, their callbacks, and ``train(cfg)``, the
library call behind train.py."""

from ddpm.training.consistency import ConsistencyModule
from ddpm.training.distill import ProgressiveDistillModule
from ddpm.training.errors import NonFiniteLossError, RunTerminated
from ddpm.training.meanflow import MeanFlowModule
from ddpm.training.module import DiffusionModule
from ddpm.training.run import train
from ddpm.training.vae_module import VAEModule

__all__ = [
    "ConsistencyModule",
    "DiffusionModule",
    "MeanFlowModule",
    "NonFiniteLossError",
    "ProgressiveDistillModule",
    "RunTerminated",
    "VAEModule",
    "train",
]
