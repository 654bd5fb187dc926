"""Model families: a trained model that generates and scores itself (``generate``,
``likelihood``), so the commands never branch on what a checkpoint is. ``diffusion`` (any path),
its few-step relatives ``consistency`` and ``meanflow``, and ``vae`` (the seed's Example 1); a
training module names its family (``model_family``)."""

from ddpm.models.base import GenerativeModel, Likelihood, SamplingOptions
from ddpm.models.consistency import ConsistencyModel
from ddpm.models.diffusion import DiffusionModel
from ddpm.models.meanflow import MeanFlowModel
from ddpm.models.stats import standard_error
from ddpm.models.vae import VAEModel

__all__ = [
    "ConsistencyModel",
    "DiffusionModel",
    "GenerativeModel",
    "Likelihood",
    "MeanFlowModel",
    "SamplingOptions",
    "VAEModel",
    "standard_error",
]
