"""The REPA term (Yu et al. 2025, eq. 3 and sec. 3.2): ``-1/N sum_n cos(y*_n, h_phi(h_t^[n]))``
over the ``N`` patches, ``h_phi`` a three-layer MLP with SiLU, added to the diffusion loss with
weight ``lambda`` (``model.repa.weight``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn
from torch.nn import functional as F

from ddpm.checks import ConfigError


class TokenNetwork(Protocol):
    """The network seam REPA reads (``ddpm.nets.DiT`` has it; a user's network may too): the
    block whose output tokens ``(N, T, token_dim)`` are aligned, and their grid."""

    token_dim: int

    @property
    def token_grid(self) -> tuple[int, int]: ...

    def token_block(self, depth: int) -> nn.Module: ...


@dataclass(frozen=True)
class REPAConfig:
    """``model.repa``: ``encoder`` (null: off | digits | a timm model name), its ``weights`` file,
    the 1-based ``depth`` whose tokens are aligned, the loss ``weight`` and the projector's
    hidden width."""

    encoder: str | None = None
    weights: str | None = None
    depth: int = 8
    weight: float = 0.5
    projector_dim: int = 2048
    image_size: int | None = None  # the size images are resized to for the encoder (timm)
    cache_dir: str = "~/.cache/ddpm"  # where the digits encoder is kept once trained

    @classmethod
    def parse(cls, node: Mapping[str, Any] | None, check_files: bool = True) -> REPAConfig:
        """``model.repa`` checked (and the timm weights file, unless ``check_files`` is false:
        a checkpoint's projector loads without the encoder)."""
        node = {k: v for k, v in (node or {}).items() if k != "feature_dim"}
        unknown = sorted(set(node) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"model.repa.{unknown[0]} is not a REPA option; the options are "
                f"{', '.join(cls.__dataclass_fields__)}"
            )
        out = cls(**node)
        for key, value, low in (("depth", out.depth, 1), ("projector_dim", out.projector_dim, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(
                    f"model.repa.{key}={value!r} is not valid; it must be an integer >= {low}"
                )
        if not isinstance(out.weight, (int, float)) or out.weight < 0:
            raise ConfigError(
                f"model.repa.weight={out.weight!r} is not valid; it must be a number >= 0"
            )
        if check_files:
            out.check_weights()
        return out

    def check_weights(self) -> None:
        """A timm encoder's weights file is given and exists (checked before any work)."""
        if self.enabled and self.encoder != "digits":
            if not self.weights:
                raise ConfigError(
                    f"model.repa.encoder={self.encoder} needs model.repa.weights=FILE: its weights "
                    f"(model.safetensors or a .pth state dict), downloaded by you; nothing is "
                    f"downloaded here"
                )
            if not Path(self.weights).expanduser().is_file():
                raise ConfigError(
                    f"model.repa.weights={self.weights} is not a file; provide the weights of "
                    f"{self.encoder} (e.g. model.safetensors of timm/{self.encoder} from the Hugging "
                    f"Face hub)"
                )

    @property
    def enabled(self) -> bool:
        return self.encoder is not None


class Projector(nn.Module):
    """``h_phi``: tokens ``(N, T, hidden)`` to the encoder's feature width (three linears, SiLU)."""

    def __init__(self, hidden: int, width: int, features: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(hidden, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, features),
        )  # fmt: skip

    def forward(self, tokens: Tensor) -> Tensor:
        return self.mlp(tokens)


def resample_features(features: Tensor, grid: tuple[int, int]) -> Tensor:
    """Patch features ``(N, C, h, w)`` on the network's token grid, as tokens ``(N, rows*cols, C)``
    (area averaging when the encoder's map is finer, bilinear when coarser)."""
    if tuple(features.shape[-2:]) != tuple(grid):
        fine = features.shape[-2] >= grid[0] and features.shape[-1] >= grid[1]
        features = (
            F.adaptive_avg_pool2d(features, grid) if fine
            else F.interpolate(features, size=grid, mode="bilinear", align_corners=False)
        )  # fmt: skip
    return features.flatten(2).transpose(1, 2)


def alignment_loss(projected: Tensor, target: Tensor) -> Tensor:
    """Per example: minus the mean over tokens of the cosine similarity (eq. 3)."""
    return -F.cosine_similarity(projected.float(), target.float(), dim=-1).mean(dim=1)
