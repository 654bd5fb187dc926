"""REPA (Yu et al. 2025, "Representation Alignment for Generation"): the tokens of a transformer
at one depth, projected by a small MLP, are aligned with a frozen encoder's patch features of the
clean image by negative cosine similarity, a term added to the diffusion loss."""

from ddpm.repa.encoders import DigitsEncoder, Encoder, TimmEncoder, build_encoder
from ddpm.repa.loss import (
    Projector,
    REPAConfig,
    TokenNetwork,
    alignment_loss,
    resample_features,
)

__all__ = [
    "DigitsEncoder",
    "Encoder",
    "Projector",
    "REPAConfig",
    "TimmEncoder",
    "TokenNetwork",
    "alignment_loss",
    "build_encoder",
    "resample_features",
]
