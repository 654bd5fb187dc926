"""Features of real and generated data, and the scores computed from them: the extractor is
chosen by the kind of data (Inception for RGB, a digit classifier for grey digits, the
coordinates for points); real features are cached on disk."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from torch import Tensor

from ddpm.checkpoint import atomic_save
from ddpm.data.base import dataset_tensors
from ddpm.evaluation.distributed import gather_in_order, shard
from ddpm.evaluation.extractors import (
    ClassifierExtractor,
    FeatureExtractor,
    IdentityExtractor,
    InceptionExtractor,
    classifier_scores,
)
from ddpm.evaluation.loading import LoadedModel
from ddpm.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    mmd_rbf,
    precision_recall,
    sliced_wasserstein,
)


def make_extractor(
    model: LoadedModel | None, datamodule, weights_path: str | None, cache_dir: Path, device="cpu"
) -> FeatureExtractor:
    """Inception for RGB, a trained digit classifier for labelled 1-channel images (Inception on
    the grey channel repeated when there are no labels to train it on), identity for points.
    ``model`` may be ``None``: the data module's shape decides."""
    info = datamodule.info if model is None else model.recipe.data
    if not info.is_image:
        return IdentityExtractor()
    if info.shape[0] == 3 or not datamodule.info.num_classes:
        return InceptionExtractor(weights_path, device)
    x, y = dataset_tensors(datamodule.train_set)
    num_classes = datamodule.info.num_classes or int(y.max()) + 1
    return ClassifierExtractor(x, y, num_classes, datamodule.info.name, cache_dir)


def _load_cached(path: Path) -> Tensor | None:
    """A cached feature file, or ``None`` (with a warning) when it is corrupt or truncated: the
    features are then computed again and the file rewritten."""
    if not path.is_file():
        return None
    try:
        feats = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(feats, Tensor) and feats.ndim == 2:
            return feats
        problem = "not a feature matrix"
    except Exception as e:  # noqa: BLE001 - any unreadable file is recomputed
        problem = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
    warnings.warn(
        f"ignoring the unreadable feature cache {path} ({problem}); recomputing it", stacklevel=2
    )
    return None


def real_features(
    extractor: FeatureExtractor, datamodule, cache_dir: Path, fabric, split: str = "test"
) -> Tensor:
    """The ``pool`` features of the real split (see :func:`real_feature_spaces`)."""
    return real_feature_spaces(extractor, datamodule, cache_dir, fabric, split)["pool"]


def real_feature_spaces(
    extractor: FeatureExtractor, datamodule, cache_dir: Path, fabric, split: str = "test",
    spaces: tuple[str, ...] = ("pool",), x: Tensor | None = None,
) -> dict[str, Tensor]:  # fmt: skip
    """Features of the real split in each of ``spaces``, cached on disk (float64, written
    atomically) by dataset, split, extractor, space and a digest of the split's data, so a change
    to the data (its scaling, size or seed) is never scored against features of the old data.
    ``x``: the split's images, when the caller has loaded them already."""
    if x is None:
        x, _ = dataset_tensors(getattr(datamodule, f"{split}_set"))
    digest = hashlib.sha1(x.double().numpy().tobytes()).hexdigest()[:12]
    stem = f"features-{datamodule.info.name}-{split}-{extractor.name}"
    paths = {s: cache_dir / f"{stem}{'' if s == 'pool' else '-' + s}-{digest}.pt" for s in spaces}
    cached = {s: _load_cached(p) for s, p in paths.items()}
    found = {s: f for s, f in cached.items() if f is not None and len(f) == len(x)}
    if missing := tuple(s for s in spaces if s not in found):
        computed = extract_in_order(extractor, x, fabric, missing)
        if fabric is None or fabric.global_rank == 0:
            for s in missing:
                atomic_save(computed[s], paths[s])
        found |= computed
    return {s: found[s] for s in spaces}


def extract_in_order(extractor: FeatureExtractor, x: Tensor, fabric, spaces) -> dict[str, Tensor]:
    """``extractor.features`` of ``x``, each rank taking its block, gathered in index order."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(len(x), rank, world)
    local = extractor.features(x[idx.start : idx.stop], spaces)
    return {s: gather_in_order(fabric, f, len(x)) for s, f in local.items()}


class WithDINOv2(FeatureExtractor):
    """The data kind's extractor plus DINOv2's class token as the ``dinov2`` space."""

    def __init__(self, main: FeatureExtractor, dinov2: FeatureExtractor) -> None:
        self.main, self.dinov2 = main, dinov2
        self.name, self.provides = main.name, (*main.provides, "dinov2")
        self.dinov2_name = dinov2.name

    def __call__(self, x: Tensor) -> Tensor:
        return self.main(x)

    def features(self, x: Tensor, spaces=("pool",)) -> dict[str, Tensor]:
        out = self.main.features(x, tuple(s for s in spaces if s != "dinov2"))
        return out | ({"dinov2": self.dinov2(x)} if "dinov2" in spaces else {})


def score_samples(x: Tensor, extractor: FeatureExtractor, real: Tensor, fabric) -> dict:
    """FID (+ KID, precision/recall, or point-cloud distances) of samples against real features."""
    fake = extract_in_order(extractor, x, fabric, ("pool",))["pool"]
    metrics = {
        "fid": frechet_distance(*feature_statistics(fake), *feature_statistics(real)),
        "feature_extractor": extractor.name,
    }
    if isinstance(extractor, IdentityExtractor):
        metrics["sliced_wasserstein"] = sliced_wasserstein(fake, real)
        metrics["mmd"] = mmd_rbf(fake[:2000], real[:2000])
        return metrics
    kid, kid_std = kernel_inception_distance(
        fake, real, subset_size=min(1000, len(fake), len(real))
    )
    prec, rec = precision_recall(real[:5000], fake[:5000])
    metrics.update(kid=kid, kid_std=kid_std, precision=prec, recall=rec)
    if isinstance(extractor, ClassifierExtractor):
        _, probs = extractor.features_and_probs(x)
        metrics.update(classifier_scores(probs, extractor.num_classes))
    return metrics


def real_reference(extractor: FeatureExtractor, datamodule) -> dict:
    """What the same scores give for the real test split (the reference to read samples by)."""
    if not isinstance(extractor, ClassifierExtractor):
        return {}
    x, _ = dataset_tensors(datamodule.test_set)
    _, probs = extractor.features_and_probs(x)
    return {
        "real_confident_share": classifier_scores(probs, extractor.num_classes)["confident_share"]
    }
