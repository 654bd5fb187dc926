"""Score a batch of samples from any framework against a reference batch.

    python -m ddpm.evaluation.score SAMPLES.npz --reference REF.npz [--out metrics.json]

SAMPLES.npz: ``arr_0`` (ADM's format; also ``np.savez(path, images)`` of a diffusers pipeline's
``output_type="np"`` output), or this framework's ``samples.npz``. REF.npz: one of ADM's reference
batches, or one written by ``python -m ddpm.evaluation.reference``. The feature extractor is the
one the reference names (Inception when it names none, as ADM's batches); a digit classifier is
rebuilt from the dataset the reference records. Metrics default to ADM's suite (FID, sFID,
Inception Score, precision, recall), with FD-DINOv2 when ``--dinov2-weights`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ddpm.config.protocol import METRIC_SPACES, ProtocolConfig
from ddpm.data.npz import NpzError, read_batch

ADM_SUITE = ["fid", "sfid", "is", "precision", "recall"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ddpm.evaluation.score",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("samples", type=Path, help="the samples' .npz")
    p.add_argument("--reference", type=Path, required=True, help="the reference batch .npz")
    p.add_argument("--metrics", nargs="+", choices=list(METRIC_SPACES), help="default: ADM's")
    p.add_argument("--inception-weights", help="Inception weights file (offline)")
    p.add_argument("--dinov2-weights", help="DINOv2 ViT-L/14 weights (dinov2_vitl14_pretrain.pth)")
    p.add_argument("--is-split-size", type=int, default=5000, help="Inception Score block size")
    p.add_argument("--pr-reference", type=int, default=None, help="reference images for P/R")
    p.add_argument("--cache-dir", default=str(Path("~/.cache/ddpm")), help="classifier cache")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="write the numbers as JSON here")
    return p


def score(args: argparse.Namespace) -> dict:
    """The numbers ``main`` prints, from parsed arguments."""
    from ddpm.evaluation.dinov2 import DINOv2Extractor
    from ddpm.evaluation.features import WithDINOv2, extract_in_order
    from ddpm.evaluation.protocol import score_features
    from ddpm.evaluation.reference import from_batch

    metrics = args.metrics or ADM_SUITE + (["fd_dinov2"] if args.dinov2_weights else [])
    protocol = ProtocolConfig(
        name="score", reference=str(args.reference), metrics=metrics,
        is_split_size=args.is_split_size, pr_samples=None, pr_reference=args.pr_reference,
    )  # fmt: skip
    samples, ref = read_batch(args.samples), read_batch(args.reference)  # errors name the file
    protocol.check_files(args.dinov2_weights)
    by_classifier = ref.meta.get("feature_extractor", "").startswith("classifier")
    if by_classifier and samples.images.shape[1:] != ref.images.shape[1:]:
        raise ValueError(
            f"{args.samples} holds {tuple(samples.images.shape[1:])} images and {args.reference} "
            f"{tuple(ref.images.shape[1:])}: the classifier scores one size"
        )
    if samples.images.shape[1] != ref.images.shape[1]:
        raise ValueError(
            f"{args.samples} holds {samples.images.shape[1]}-channel images and "
            f"{args.reference} {ref.images.shape[1]}-channel ones"
        )
    extractor = _extractor(ref.meta, args)
    if "dinov2" in protocol.spaces():
        extractor = WithDINOv2(extractor, DINOv2Extractor(args.dinov2_weights, args.device))
    reference = from_batch(args.reference, extractor, None, protocol.spaces(), ref)
    fake = extract_in_order(extractor, samples.data_space(), None, protocol.spaces())
    out = score_features(fake, reference, metrics, protocol)
    return out | {
        "feature_extractor": extractor.name,
        "num_samples": len(samples.images),
        "reference": reference.description,
        "samples": str(args.samples),
    }


def _extractor(meta: dict, args):
    from ddpm.evaluation.extractors import InceptionExtractor

    name = meta.get("feature_extractor", InceptionExtractor.name)
    if name == InceptionExtractor.name:
        return InceptionExtractor(args.inception_weights, args.device)
    if "dataset_config" not in meta:
        raise ValueError(f"{args.reference} names the extractor {name} but not its dataset")
    from ddpm.config.plugin import Plugin
    from ddpm.evaluation.features import make_extractor

    datamodule = Plugin.from_config(json.loads(meta["dataset_config"]), "dataset").build()
    datamodule.check_available()
    extractor = make_extractor(None, datamodule, args.inception_weights, Path(args.cache_dir))
    if extractor.name != name:
        raise ValueError(
            f"{args.reference} was scored by {name}; its dataset gives {extractor.name}"
        )
    return extractor


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.cache_dir = str(Path(args.cache_dir).expanduser())
    try:
        numbers = score(args)
    except (ValueError, NpzError, FileNotFoundError, OSError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    line = " ".join(f"{k}={v:.6g}" for k, v in numbers.items() if isinstance(v, float))
    print(f"{numbers['feature_extractor']}, {numbers['num_samples']} samples: {line}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
