"""``sample(cfg)`` and ``evaluate(cfg)``: the library calls behind sample.py and evaluate.py."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from ddpm.checkpoint import CheckpointError
from ddpm.config import EvaluateConfig, SampleConfig, parse_evaluate, parse_sample
from ddpm.data.base import dataset_tensors
from ddpm.evaluation.dinov2 import DINOv2Extractor
from ddpm.evaluation.distributed import make_fabric
from ddpm.evaluation.features import (
    WithDINOv2,
    extract_in_order,
    make_extractor,
    real_reference,
    score_samples,
)
from ddpm.evaluation.likelihood import bits_per_dim
from ddpm.evaluation.loading import LoadedModel, load_model
from ddpm.evaluation.outputs import write_metrics, write_samples
from ddpm.evaluation.protocol import aggregate, score_features
from ddpm.evaluation.reference import Reference, from_batch, from_split
from ddpm.evaluation.sampling import draw_distributed, make_labels


def _launch(cfg, loaded: LoadedModel, options=None):
    t = cfg.trainer
    fabric = make_fabric(t.accelerator, t.devices, t.num_nodes, t.precision)
    loaded.net.to(fabric.device)
    if options is not None and options.guidance_model is not None:
        options.guidance_model.net.to(fabric.device)
    return fabric


def _options(cfg):
    """The sampling options of ``cfg``, with the autoguidance model loaded (same EMA choice)."""
    guide = None
    if cfg.guidance.model is not None and cfg.guidance_scale != 1:  # w = 1: the network alone
        try:
            guide = load_model(cfg.guidance.model, cfg.use_ema).model
        except CheckpointError as e:
            raise CheckpointError(
                f"guidance.model: {str(e).replace('ckpt=PATH', 'guidance.model=PATH')}"
            ) from None
    return cfg.denoiser.options(cfg.guidance_scale, cfg.guidance.span(), guide)


def sample(cfg: SampleConfig | Mapping) -> Path:
    """Draw ``cfg.num_samples`` from ``cfg.ckpt`` on every device; write ``samples.npz``,
    ``samples.png`` (and ``trajectory.png``) into ``cfg.run_dir``."""
    if not isinstance(cfg, SampleConfig):
        cfg = parse_sample(cfg)
    loaded = load_model(cast(str, cfg.ckpt), cfg.use_ema)  # parsing requires a ckpt
    options = _options(cfg)
    loaded.model.check_sampling(cfg.sampler, options, cfg.trajectory)
    labels = make_labels(loaded, cfg.class_label, cfg.num_samples)
    fabric = _launch(cfg, loaded, options)
    x, info = draw_distributed(
        fabric, loaded, cfg.sampler, options, cfg.num_samples, cfg.seed, cfg.batch_size, labels,
        cfg.trajectory_frames if cfg.trajectory else 0, cfg.progress,
    )  # fmt: skip
    out = Path(cfg.run_dir)
    if fabric.global_rank == 0:
        reference = None
        if not loaded.is_image:
            reference = dataset_tensors(loaded.datamodule().test_set, 2000)[0]
        write_samples(
            out, x, loaded.is_image, labels, info.get("trajectory"),
            info.get("trajectory_labels"), reference, info.get("latents"),
        )  # fmt: skip
        print(f"wrote {len(x)} samples ({info['nfe']} network calls each) to {out}")
    return out


def evaluate(cfg: EvaluateConfig | Mapping) -> dict:
    """Score ``cfg.ckpt``: samples drawn on every device, FID (and KID, precision/recall or
    point-cloud distances) against the test split, bits/dim with ``cfg.bpd``; writes and returns
    ``metrics.json``'s content."""
    if not isinstance(cfg, EvaluateConfig):
        cfg = parse_evaluate(cfg)
    start = time.perf_counter()
    loaded = load_model(cast(str, cfg.ckpt), cfg.use_ema)  # parsing requires a ckpt
    model = loaded.model
    options = _options(cfg)
    model.check_sampling(cfg.sampler, options)
    likelihood = dict(
        variance=cfg.denoiser.variance, timesteps_per_call=cfg.bpd_timesteps_per_call,
        iw_samples=cfg.iw_samples,
    )  # fmt: skip
    if cfg.bpd:
        model.check_likelihood(cfg.bpd, **likelihood)
    datamodule = loaded.datamodule()
    datamodule.check_available()
    protocol = cfg.protocol
    fabric = _launch(cfg, loaded, options)  # a bad device setting fails before feature work
    cache_dir = Path(cfg.fid.cache_dir).expanduser()
    extractor = _extractor(loaded, datamodule, cfg, cache_dir, fabric.device)
    reference = _reference(protocol, extractor, datamodule, cache_dir, fabric)
    num_samples = cfg.num_samples
    if protocol.cap_to_reference and num_samples > reference.size:
        num_samples = reference.size  # the paper's count is more than the data has
    labels = make_labels(loaded, cfg.class_label, num_samples)
    per_set = []
    for seed in protocol.seeds(cfg.seed):
        x, info = draw_distributed(
            fabric, loaded, cfg.sampler, options, num_samples, seed, cfg.batch_size, labels,
            show_progress=cfg.progress,
        )  # fmt: skip
        per_set.append(_score(x, labels, extractor, reference, protocol, datamodule, fabric))
    metrics, spread = aggregate(per_set, protocol.report)
    if cfg.bpd:
        metrics |= bits_per_dim(
            fabric, loaded, datamodule.test_set, cfg.bpd, cfg.seed, cfg.batch_size,
            cfg.bpd_examples, cfg.progress, **likelihood,
        )  # fmt: skip
    metrics.setdefault("feature_extractor", extractor.name)
    if isinstance(extractor, WithDINOv2):
        metrics["dinov2_extractor"] = extractor.dinov2_name
    metrics |= {
        "protocol": protocol.name,
        "reference": reference.description,
        "num_samples": num_samples,
        "num_samples_requested": cfg.num_samples,
        "seed_sets": protocol.seed_sets,
        "sampler": info["method"],
        "steps": model.steps(cfg.sampler),
        "nfe": info["nfe"],
        "seed": cfg.seed,
        "guidance_scale": cfg.guidance_scale,
        "guidance_model": cfg.guidance.model if cfg.guidance_scale != 1 else None,
        "guidance_interval": cfg.guidance.interval if cfg.guidance_scale != 1 else None,
        "ema_sigma_rel": loaded.ema_sigma_rel,
        "class_label": cfg.class_label,
        "world_size": fabric.world_size,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if protocol.seed_sets > 1:
        metrics["spread"] = spread  # every number: mean, std, min, max, values in seed order
    if fabric.global_rank == 0:
        path = write_metrics(Path(cfg.run_dir), metrics)
        print(summary(metrics) + f" -> {path}", file=sys.stdout)
    return metrics


def _extractor(loaded, datamodule, cfg, cache_dir: Path, device):
    """The data kind's feature extractor, with DINOv2's when the protocol asks for FD-DINOv2."""
    extractor = make_extractor(loaded, datamodule, cfg.fid.weights_path, cache_dir, device)
    if "dinov2" not in cfg.protocol.spaces():
        return extractor
    return WithDINOv2(extractor, DINOv2Extractor(cfg.fid.dinov2_weights, device))


def _reference(protocol, extractor, datamodule, cache_dir, fabric) -> Reference:
    spaces = protocol.spaces()
    if protocol.reference in ("train", "test"):
        return from_split(extractor, datamodule, protocol.reference, cache_dir, fabric, spaces)
    return from_batch(protocol.reference, extractor, fabric, spaces)


def _score(x, labels, extractor, reference, protocol, datamodule, fabric) -> dict:
    """One seed set's numbers: the protocol's metrics, or (``metrics: null``) the data kind's."""
    if protocol.metrics is not None:
        fake = extract_in_order(extractor, x, fabric, protocol.spaces())
        return score_features(fake, reference, protocol.metrics, protocol)
    real = reference.features["pool"]
    metrics = score_samples(x, extractor, real, fabric) | real_reference(extractor, datamodule)
    if labels is not None and "class_histogram" in metrics:
        _, probs = extractor.features_and_probs(x)
        metrics["label_accuracy"] = float((probs.argmax(1) == labels).double().mean())
    return metrics


def summary(metrics: dict) -> str:
    """Every number evaluate.py computed, on one line."""
    skip = {"class_histogram", "feature_extractor", "sampler", "class_label", "world_size"}
    skip |= {"spread", "reference", "num_samples_requested"}
    parts = []
    for key, value in metrics.items():
        if key in skip or value is None:
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return f"{metrics.get('feature_extractor')}, {metrics.get('sampler')}: " + " ".join(parts)
