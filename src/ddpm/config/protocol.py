"""``protocol=NAME`` of evaluate.py (``conf/protocol/*.yaml``): how many samples, how many seed
sets, which reference, which metrics and which number is the headline, as a paper fixed them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from ddpm.checks import ConfigError, PositiveInt, Range
from ddpm.config.plugin import unknown_keys
from ddpm.config.schema import parse_fields

# Which feature space each metric is computed in (see ddpm.evaluation.extractors).
METRIC_SPACES = {
    "fid": "pool", "kid": "pool", "precision": "pool", "recall": "pool",
    "sfid": "spatial", "is": "logits", "fd_dinov2": "dinov2",
}  # fmt: skip
DINOV2_FILE = "dinov2_vitl14_pretrain.pth"
DINOV2_URL = f"https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/{DINOV2_FILE}"
# Lower is better for these; higher for the others (what "best" of several seed sets means).
LOWER_IS_BETTER = {"fid", "kid", "sfid", "fd_dinov2", "sliced_wasserstein", "mmd"}


@dataclass(frozen=True)
class ProtocolConfig:
    """``name``: the protocol; ``seed_sets``: independent sets of samples (seeds ``seed``,
    ``seed + 1``, ...), each scored; ``reference``: the real data's ``test`` or ``train`` split,
    or a reference batch ``.npz`` (ADM's format); ``metrics``: null for the data kind's default
    set, else a list of ``fid kid precision recall sfid is fd_dinov2``; ``report``: the headline
    of several seed sets, ``best`` (EDM) or ``mean``; ``cap_to_reference``: draw at most as many
    samples as the reference has images (for data smaller than the paper's sample count);
    ``is_split_size``: the Inception Score's block size; ``pr_samples``, ``pr_reference``:
    precision/recall on at most this many samples and reference images (null: all)."""

    name: str = "quick"
    seed_sets: PositiveInt = 1
    reference: str = "test"
    metrics: list[str] | None = None
    report: Literal["best", "mean"] = "mean"
    cap_to_reference: bool = False
    is_split_size: Annotated[int, Range(2)] = 5000
    pr_samples: PositiveInt | None = 5000
    pr_reference: PositiveInt | None = 5000

    @classmethod
    def parse(cls, node: Mapping[str, Any] | None) -> ProtocolConfig:
        node = node or {}
        unknown_keys(node, [f.name for f in fields(cls)], "protocol")
        out = cls(**parse_fields(cls, node, "protocol."))
        if out.metrics is not None:
            bad = [m for m in out.metrics if m not in METRIC_SPACES]
            if bad or not out.metrics:
                raise ConfigError(
                    f"protocol.metrics={list(out.metrics)}: "
                    + (f"{bad[0]} is not a metric" if bad else "the list is empty")
                    + f"; choose from {', '.join(METRIC_SPACES)} (or null for the default set)"
                )
        if out.reference not in ("test", "train") and not out.reference.endswith(".npz"):
            raise ConfigError(
                f"protocol.reference={out.reference} is not valid; it must be test, train or a "
                f"reference batch file REF.npz (python -m ddpm.evaluation.reference writes one)"
            )
        return out

    def check_files(self, dinov2_weights: str | None) -> None:
        """The reference batch and the DINOv2 weights the protocol needs exist (before any work)."""
        if self.reference.endswith(".npz") and not Path(self.reference).expanduser().is_file():
            raise ConfigError(
                f"protocol.reference={self.reference} does not exist; write one with "
                f"python -m ddpm.evaluation.reference dataset=NAME split=train out=REF.npz"
            )
        if "dinov2" in self.spaces() and not (
            dinov2_weights and Path(dinov2_weights).expanduser().is_file()
        ):
            raise ConfigError(missing_dinov2_weights(dinov2_weights))

    def spaces(self) -> tuple[str, ...]:
        """The feature spaces the metrics need (``pool`` always: every protocol reports FID)."""
        wanted = {"pool"} | {METRIC_SPACES[m] for m in self.metrics or ()}
        return tuple(s for s in ("pool", "spatial", "logits", "dinov2") if s in wanted)

    def seeds(self, seed: int) -> list[int]:
        return [seed + i for i in range(self.seed_sets)]


def missing_dinov2_weights(path: str | Path | None) -> str:
    return (
        f"FD-DINOv2 needs DINOv2 ViT-L/14 weights, and fid.dinov2_weights={path or 'null'} is not a file: "
        f"download {DINOV2_URL} and pass fid.dinov2_weights=/path/to/{DINOV2_FILE}"
    )
