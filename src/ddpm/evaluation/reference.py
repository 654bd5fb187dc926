"""The real side of every score: a split of the data, or a reference batch ``.npz``.

``python -m ddpm.evaluation.reference dataset=NAME split=train|test out=REF.npz`` writes a
reference batch in ADM's format for a user's own data: up to ``max_images`` images (10,000, as
ADM's batches keep for precision and recall) and the statistics of the whole split, in the feature
spaces the data kind has (Inception pool and spatial for RGB; the digit classifier's for digits;
DINOv2's with ``dinov2=true``). Any ``dataset.*`` key can be overridden, as in train.py.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from torch import Tensor

from ddpm.data.base import dataset_tensors
from ddpm.data.npz import ImageBatch, NpzError, read_batch, write_reference
from ddpm.evaluation.extractors import FeatureExtractor, IdentityExtractor
from ddpm.evaluation.features import extract_in_order, real_feature_spaces
from ddpm.evaluation.metrics import feature_statistics
from ddpm.figures import to_uint8

if TYPE_CHECKING:
    from ddpm.evaluation.features import WithDINOv2


@dataclass
class Reference:
    """Features of the reference images per space, and the statistics FID-style distances use
    (a batch's stored statistics where it has them: ADM's cover the whole dataset)."""

    description: str
    features: dict[str, Tensor]
    stats: dict[str, tuple[Tensor, Tensor]]
    size: int  # images the statistics describe

    def statistics(self, space: str) -> tuple[Tensor, Tensor]:
        if space not in self.stats:
            self.stats[space] = feature_statistics(self.features[space])
        return self.stats[space]


def from_split(
    extractor: FeatureExtractor, datamodule, split: str, cache_dir: Path, fabric, spaces
) -> Reference:
    feats = real_feature_spaces(extractor, datamodule, cache_dir, fabric, split, spaces)
    n = len(feats["pool"])
    return Reference(f"the {datamodule.info.name} {split} split ({n} images)", feats, {}, n)


def from_batch(
    path: str | Path, extractor: FeatureExtractor, fabric, spaces, batch: ImageBatch | None = None
) -> Reference:
    """A reference batch file (``batch``: its content, when already read); stored statistics are
    used only if they were computed by the same extractor (ADM's batches: Inception)."""
    batch = read_batch(path) if batch is None else batch
    same = batch.meta.get("feature_extractor", "inception-v3-compat") == extractor.name
    stats = {s: v for s, v in batch.stats.items() if s in spaces and (same or s == "dinov2")}
    if "dinov2" in stats and batch.meta.get("dinov2") != getattr(extractor, "dinov2_name", None):
        stats.pop("dinov2")
    feats = extract_in_order(extractor, batch.data_space(), fabric, spaces)
    size = int(batch.meta.get("num_images", len(batch.images))) if stats else len(batch.images)
    return Reference(f"{path} ({len(batch.images)} images)", feats, stats, size)


def reference_batch(
    extractor: FeatureExtractor, datamodule, split: str, cache_dir: Path, spaces, max_images: int
) -> ImageBatch:
    """The split as an ADM-format batch: its first ``max_images`` images and the statistics of
    all of them."""
    if isinstance(extractor, IdentityExtractor):
        raise ValueError(f"{datamodule.info.name} is not image data: reference batches hold images")
    x, _ = dataset_tensors(getattr(datamodule, f"{split}_set"))
    feats = real_feature_spaces(extractor, datamodule, cache_dir, None, split, spaces, x)
    meta = {
        "split": split, "dataset": datamodule.info.name, "feature_extractor": extractor.name,
        "num_images": str(len(x)),
    }  # fmt: skip
    if "dinov2" in spaces:
        meta["dinov2"] = cast("WithDINOv2", extractor).dinov2_name  # the extractor it provides
    stats = {s: feature_statistics(f) for s, f in feats.items() if s != "logits"}
    return ImageBatch(to_uint8(x[:max_images]), stats, meta)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    try:
        cfg = _compose(argv)
        out = cfg.pop("out")
        if not out or not str(out).endswith(".npz"):
            raise ValueError(f"out={out} must name the file to write, e.g. out=REF.npz")
        if not isinstance(cfg["max_images"], int) or cfg["max_images"] < 1:
            raise ValueError(f"max_images={cfg['max_images']} must be a positive integer")
        if cfg["split"] not in ("train", "test"):
            raise ValueError(f"split={cfg['split']} is not valid; choose train or test")
        path = write(cfg, out)
    except (ValueError, FileNotFoundError, NpzError, OSError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def _compose(argv: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ddpm.files import conf_dir

    try:
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            raw = compose("reference", overrides=argv)
        return cast(dict, OmegaConf.to_container(raw, resolve=True))
    except (HydraException, OmegaConfBaseException) as e:
        text = " ".join(str(e).split())
        if m := re.search(
            r"Could not find '(\w+)/([^']+)'.*?Available options in '\w+': (.*?) Config", text
        ):
            group, name, options = m.groups()
            text = f"{group}={name} is not an option; choose from {', '.join(options.split())}"
        raise ValueError(text) from None


def write(cfg: dict, out: str | Path) -> Path:
    from ddpm.config.plugin import Plugin
    from ddpm.evaluation.dinov2 import DINOv2Extractor
    from ddpm.evaluation.features import WithDINOv2, make_extractor

    fid, cache_dir = cfg["fid"], Path(cfg["fid"]["cache_dir"]).expanduser()
    datamodule = Plugin.from_config(cfg["dataset"], "dataset").build()
    datamodule.check_available()
    extractor = make_extractor(None, datamodule, fid["weights_path"], cache_dir, cfg["device"])
    spaces: tuple[str, ...] = tuple(s for s in ("pool", "spatial") if s in extractor.provides)
    if cfg["dinov2"]:
        extractor = WithDINOv2(extractor, DINOv2Extractor(fid["dinov2_weights"], cfg["device"]))
        spaces += ("dinov2",)
    batch = reference_batch(
        extractor, datamodule, cfg["split"], cache_dir, spaces, cfg["max_images"]
    )
    batch.meta["dataset_config"] = json.dumps(cfg["dataset"])
    return write_reference(out, batch)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Reference", "from_batch", "from_split", "main", "reference_batch", "write"]
