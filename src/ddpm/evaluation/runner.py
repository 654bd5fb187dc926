"""Sampling and scoring a checkpoint on every device: the library calls behind sample.py and
evaluate.py."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from ddpm.analytic_variance import analytic_log_variance
from ddpm.checkpoint import checkpoint_config, load_checkpoint, load_network, load_schedule
from ddpm.config import ConfigError, is_vae_config, validate_sampler
from ddpm.evaluation.distributed import gather_in_order, make_fabric, shard
from ddpm.evaluation.extractors import (
    ClassifierExtractor,
    FeatureExtractor,
    IdentityExtractor,
    InceptionExtractor,
    classifier_scores,
)
from ddpm.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    mmd_rbf,
    precision_recall,
    sliced_wasserstein,
)
from ddpm.figures import save_image_grid, save_scatter, save_strip, to_uint8
from ddpm.likelihood import nats_to_bits_per_dim
from ddpm.losses import full_vlb
from ddpm.ode_likelihood import ode_bits_per_dim
from ddpm.samplers.draw import SamplerSpec, draw_samples
from ddpm.samplers.steps import sample_generators
from ddpm.schedule import Schedule
from ddpm.vae import (
    bound_from_log_weights,
    draw_vae_samples,
    kl_to_prior,
    log_importance_weights,
)


def progress_bar(description: str, enabled: bool = True):
    """A rich progress bar over an iterable (a no-op wrapper when disabled)."""

    def wrap(items):
        if not enabled:
            return items
        from rich.progress import track

        return track(list(items), description=description, transient=True)

    return wrap


@dataclass
class LoadedModel:
    """A checkpoint turned back into objects."""

    net: nn.Module
    schedule: Schedule
    config: dict
    path: Path
    analytic_gamma: Tensor | None = None

    def variance(self, requested: str) -> str:
        """The reverse variance actually used: a learned-variance network always uses its own
        (unless Analytic-DPM is asked for); otherwise the sampler's choice. A VAE has none."""
        if self.is_vae:
            return requested
        if self.config["model"]["variance"] == "learned_range" and requested != "analytic":
            return "learned_range"
        if requested == "learned_range":
            raise ValueError(
                f"sampler.variance=learned_range needs a learned-variance checkpoint; {self.path} is not one"
            )
        if requested == "analytic" and self.analytic_gamma is None:
            raise ValueError(
                f"sampler.variance=analytic needs Gamma estimates in {self.path}: run "
                f"python -m ddpm.evaluation.analytic {self.path}"
            )
        return requested

    @property
    def prediction(self) -> str | None:
        return self.config["model"].get("prediction")

    @property
    def is_vae(self) -> bool:
        """The VAE baseline (``model=vae``): sampled from its prior, scored by its ELBO."""
        return is_vae_config(self.config)

    @property
    def shape(self) -> list[int]:
        return self.config["data_shape"]

    @property
    def is_image(self) -> bool:
        return self.config.get("data_kind", "image") == "image"

    @property
    def num_classes(self) -> int | None:
        return self.config.get("num_classes") if self.config["model"].get("conditional") else None


def load_model(ckpt_path: str | Path, use_ema: bool = True, device="cpu") -> LoadedModel:
    """Checkpoint -> network (EMA weights by default) + schedule + the run's config."""
    ckpt = load_checkpoint(ckpt_path)
    config = checkpoint_config(ckpt, ckpt_path)
    net = load_network(ckpt, config, use_ema, ckpt_path).to(device)
    return LoadedModel(
        net, load_schedule(config), config, Path(ckpt_path), ckpt.get("analytic_gamma")
    )


def load_for_sampling(
    cfg: dict, script: str, min_samples: int = 1
) -> tuple[LoadedModel, Tensor | None]:
    """What sample.py and evaluate.py check before any work: the checkpoint (loaded safely), the
    sampler against its schedule, the sample count and the class labels."""
    if not cfg["ckpt"]:
        raise ConfigError(f"ckpt is required: python {script} ckpt=path/to/checkpoints/last.ckpt")
    n = cfg["num_samples"]
    if isinstance(n, bool) or not isinstance(n, int) or n < min_samples:
        raise ConfigError(f"num_samples={n!r} is not valid; it must be an integer >= {min_samples}")
    model = load_model(cfg["ckpt"], cfg["use_ema"])
    validate_sampler(cfg, model.schedule.num_timesteps)
    cfg["sampler"]["variance"] = model.variance(cfg["sampler"].get("variance", "fixed_small"))
    return model, make_labels(model, cfg["class_label"], n)


def launch(cfg: dict, model: LoadedModel) -> L.Fabric:
    """Start one process per device of ``cfg["trainer"]`` and move the network there."""
    t = cfg["trainer"]
    fabric = make_fabric(t["accelerator"], t["devices"], t["num_nodes"], t["precision"])
    model.net.to(fabric.device)
    return fabric


def check_labels(model: LoadedModel, class_label) -> None:
    if class_label is None:
        return
    if model.num_classes is None:
        raise ValueError(
            f"class_label={class_label} needs a class-conditional checkpoint (model.conditional=true); {model.path} is unconditional"
        )
    labels = class_label if isinstance(class_label, (list, tuple)) else [class_label]
    for c in labels:
        if not isinstance(c, int) or not 0 <= c < model.num_classes:
            raise ValueError(
                f"class_label={c!r} is not valid; the checkpoint's dataset has classes 0..{model.num_classes - 1}"
            )


def make_labels(model: LoadedModel, class_label, n: int) -> Tensor | None:
    """One label per sample: a single class, a list cycled over the samples, or ``None``."""
    check_labels(model, class_label)
    if class_label is None:
        return None
    labels = class_label if isinstance(class_label, (list, tuple)) else [class_label]
    return torch.tensor(labels, dtype=torch.long).repeat(n // len(labels) + 1)[:n]


def draw_distributed(
    fabric: L.Fabric | None,
    model: LoadedModel,
    spec: SamplerSpec,
    num_samples: int,
    seed: int,
    batch_size: int,
    labels: Tensor | None = None,
    guidance_scale: float = 1.0,
    trajectory: bool = False,
    show_progress: bool = True,
) -> tuple[Tensor, dict]:
    """All ``num_samples`` samples, each rank drawing its block of indices; identical on every rank
    and for any world size or batch size."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(num_samples, rank, world)
    device = fabric.device if fabric else "cpu"
    bar = progress_bar(
        f"sampling ({'vae' if model.is_vae else spec.method})", show_progress and rank == 0
    )
    if model.is_vae:
        decoder_noise = model.config["model"].get("decoder_noise", False)
        local = draw_vae_samples(
            model.net,
            model.shape,
            idx,
            seed,
            batch_size,
            device,
            decoder_noise,
            model.is_image,
            bar,
        )
        return gather_in_order(fabric, local, num_samples), {
            "nfe": 1, "trajectory": None, "method": "vae_prior"
        }  # fmt: skip
    local, info = draw_samples(
        model.net,
        model.schedule,
        model.shape,
        idx,
        seed,
        spec,
        model.prediction,
        batch_size,
        labels[idx.start : idx.stop] if labels is not None else None,
        guidance_scale,
        device,
        analytic_gamma=model.analytic_gamma,
        return_trajectory=trajectory and rank == 0,
        progress=bar,
    )
    return gather_in_order(fabric, local, num_samples), info


def write_samples(
    out_dir: Path,
    x: Tensor,
    model: LoadedModel,
    labels: Tensor | None = None,
    trajectory: list[Tensor] | None = None,
    reference: Tensor | None = None,
) -> None:
    """``samples.npz`` (``samples`` float32 in data space, ``images`` uint8 NHWC for images,
    ``labels``), ``samples.png`` and ``trajectory.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"samples": x.float().numpy()}
    if model.is_image:
        arrays["images"] = to_uint8(x).permute(0, 2, 3, 1).numpy()
    if labels is not None:
        arrays["labels"] = labels.numpy()
    np.savez(out_dir / "samples.npz", **arrays)
    if model.is_image:
        save_image_grid(x[:256], out_dir / "samples.png")
    else:
        save_scatter(x, out_dir / "samples.png", reference)
    if trajectory:
        picks = np.linspace(0, len(trajectory) - 1, min(10, len(trajectory))).round().astype(int)
        frames = [trajectory[i][: 8 if model.is_image else len(trajectory[i])] for i in picks]
        save_strip(frames, out_dir / "trajectory.png", [f"step {i}" for i in picks], reference)


def build_datamodule(config: dict):
    from hydra.utils import instantiate

    return instantiate(config["dataset"])


def dataset_tensors(ds, limit: int | None = None) -> tuple[Tensor, Tensor]:
    n = len(ds) if limit is None else min(limit, len(ds))
    items = [ds[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def make_extractor(
    model: LoadedModel, datamodule, weights_path: str | None, cache_dir: Path, device="cpu"
) -> FeatureExtractor:
    """Inception for RGB, a trained digit classifier for 1-channel images, identity for points."""
    if not model.is_image:
        return IdentityExtractor()
    if model.shape[0] == 3:
        return InceptionExtractor(weights_path, device)
    x, y = dataset_tensors(datamodule.train_set)
    num_classes = datamodule.info.num_classes or int(y.max()) + 1
    return ClassifierExtractor(x, y, num_classes, datamodule.info.name, cache_dir)


def real_features(
    extractor: FeatureExtractor, datamodule, cache_dir: Path, fabric, split: str = "test"
) -> Tensor:
    """Features of the real split, cached on disk (float64) by dataset, split, extractor and a
    digest of the split's data, so a change to the data (its scaling, size or seed) is never
    scored against features of the old data."""
    x, _ = dataset_tensors(getattr(datamodule, f"{split}_set"))
    digest = hashlib.sha1(x.double().numpy().tobytes()).hexdigest()[:12]
    path = cache_dir / f"features-{datamodule.info.name}-{split}-{extractor.name}-{digest}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(len(x), rank, world)
    feats = gather_in_order(fabric, extractor(x[idx.start : idx.stop]), len(x))
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(feats, path)
    return feats


def score_samples(x: Tensor, extractor: FeatureExtractor, real: Tensor, fabric) -> dict:
    """FID (+ KID, precision/recall, or point-cloud distances) of samples against real features."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(len(x), rank, world)
    fake = gather_in_order(fabric, extractor(x[idx.start : idx.stop]), len(x))
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


def _per_example(fabric, x: Tensor, batch_size: int, fn, width: int, show_progress: bool) -> Tensor:
    """``fn(batch, start) -> (n, width)`` over this rank's share of ``x``, gathered in order on
    every rank: float64 of shape ``(len(x), width)``."""
    rank, world = (fabric.global_rank, fabric.world_size) if fabric else (0, 1)
    idx = shard(len(x), rank, world)
    device = fabric.device if fabric else "cpu"
    bar = progress_bar("bits/dim", show_progress and rank == 0)
    rows = [
        fn(x[start : min(start + batch_size, idx.stop)].to(device), start).double().cpu()
        for start in bar(range(idx.start, idx.stop, batch_size))
    ]
    local = torch.cat(rows) if rows else torch.zeros(0, width, dtype=torch.float64)
    return gather_in_order(fabric, local, len(x))


def standard_error(values: Tensor) -> float:
    """The standard error of the mean of per-example estimates: ``std / sqrt(n)``. It covers the
    spread of the test examples and the Monte Carlo noise of each example's estimate together,
    so two bits/dim that differ by less than a few of these are not told apart (0 for n = 1)."""
    n = len(values)
    return float(values.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0


def bits_per_dim(
    fabric,
    model: LoadedModel,
    datamodule,
    seed: int,
    batch_size: int,
    timesteps_per_call: int = 10,
    limit: int | None = None,
    show_progress: bool = True,
    variance: str | None = None,
    method: str = "vlb",
) -> dict:
    """The full VLB (Prop. 2) in bits/dim on the test split (Ho et al. Table 2 protocol), split
    over devices by example, with the model's reverse variance or ``variance`` (fixed_small,
    fixed_large, analytic). ``method="ode"``: the exact likelihood of the probability-flow ODE
    instead (Hutchinson trace, dequantized images; :mod:`ddpm.ode_likelihood`)."""
    x, _ = dataset_tensors(datamodule.test_set, limit)
    decoder = "discretized" if model.is_image else "gaussian"
    variance = model.variance(variance or model.config["model"]["variance"])
    table = (
        analytic_log_variance(model.schedule, model.analytic_gamma)
        if variance == "analytic"
        else None
    )
    net = lambda xt, k: model.net(xt, k, None)  # noqa: E731

    def batch_bpd(xb: Tensor, start: int) -> Tensor:
        if method == "ode":
            g = torch.Generator().manual_seed(seed * 7919 + start)
            return ode_bits_per_dim(model.schedule, net, xb, model.prediction, model.is_image, g)[
                :, None
            ]
        g = sample_generators(seed, range(start, start + len(xb)))  # per example: any world size
        res = full_vlb(
            model.schedule,
            net,
            xb,
            model.prediction,
            variance,
            decoder,
            table,
            timesteps_per_call=timesteps_per_call,
            generator=g,
        )
        return torch.stack([res["total"], res["prior"], res["decoder"]], 1)

    width = 1 if method == "ode" else 3
    allv = _per_example(fabric, x, batch_size, batch_bpd, width, show_progress)
    if method == "ode":
        return {
            "bpd_method": "ode",
            "bpd": float(allv[:, 0].mean()),
            "bpd_stderr": standard_error(allv[:, 0]),
            "bpd_num_examples": len(x),
        }
    return {
        "bpd_method": "vlb",
        "bpd_variance": variance,
        "bpd": float(allv[:, 0].mean()),
        "bpd_stderr": standard_error(allv[:, 0]),
        "bpd_prior": float(allv[:, 1].mean()),
        "bpd_decoder": float(allv[:, 2].mean()),
        "bpd_num_examples": len(x),
    }


@torch.no_grad()
def vae_bits_per_dim(
    fabric,
    model: LoadedModel,
    datamodule,
    seed: int,
    batch_size: int,
    limit: int | None = None,
    iw_samples: int = 256,
    show_progress: bool = True,
) -> dict:
    """The VAE's bounds on the test split in bits/dim, from the same ``iw_samples`` draws of
    ``z ~ q(z|x)`` per example: ``bpd`` from the ELBO (Prop. 1, eq. 7, the counterpart of the
    diffusion VLB; the mean of the log-weights) and ``bpd_iw`` from the importance-weighted
    bound (their log-mean-exp, Burda et al. 2016, never looser); ``bpd_kl`` is the ELBO's KL term
    in closed form. Each example's noise comes from its own generator, so the numbers do not
    depend on the batch size or the devices."""
    x, _ = dataset_tensors(datamodule.test_set, limit)
    decoder = "discretized" if model.is_image else "gaussian"

    def batch_bounds(xb: Tensor, start: int) -> Tensor:
        g = sample_generators(seed, range(start, start + len(xb)))  # per example: any world size
        w = log_importance_weights(model.net, xb, iw_samples, decoder, g)
        iw = bound_from_log_weights(w)
        return torch.stack([-w.mean(0), -iw, kl_to_prior(*model.net.encode(xb))], 1)

    allv = nats_to_bits_per_dim(
        _per_example(fabric, x, batch_size, batch_bounds, 3, show_progress), x[0].numel()
    )
    return {
        "bpd_method": "elbo",
        "bpd": float(allv[:, 0].mean()),
        "bpd_stderr": standard_error(allv[:, 0]),
        "bpd_iw": float(allv[:, 1].mean()),
        "bpd_iw_stderr": standard_error(allv[:, 1]),
        "bpd_iw_samples": iw_samples,
        "bpd_kl": float(allv[:, 2].mean()),
        "bpd_num_examples": len(x),
    }


def write_metrics(out_dir: Path, metrics: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path
