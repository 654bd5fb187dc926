"""A typed run configuration turned into the objects of a run: data module, network, schedule,
Lightning module, callbacks, logger and trainer. Every check that needs the data happens here,
before training starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import lightning as L
from lightning.pytorch.plugins.environments import SLURMEnvironment

from ddpm.config import TrainConfig, network_kwargs
from ddpm.config.wiring import check_labels, data_module
from ddpm.data.base import DataInfo, dataset_tensors
from ddpm.latents.data import LatentDataModule
from ddpm.repa import build_encoder
from ddpm.training.callbacks import EMASnapshots
from ddpm.training.checkpoint_io import AtomicCheckpointIO
from ddpm.training.init import start_from
from ddpm.training.loggers import resume_options
from ddpm.training.requeue import PreemptionAtStepEnd, scheduler_job_id

RESOLVE_EXAMPLES = 10_000  # training examples a path measures its data options on


def build_datamodule(cfg: TrainConfig):
    datamodule = data_module(cfg.dataset, cfg.latent, cfg.raw, keep_pixels=cfg.repa.enabled)
    datamodule.check_available()
    check_labels(datamodule.info, cfg.conditional)
    return datamodule


def run_config(
    cfg: TrainConfig,
    info: DataInfo,
    net_kwargs: dict[str, Any],
    path_options: dict | None = None,
    latent: tuple[DataInfo, dict] | None = None,
) -> dict:
    """What every checkpoint stores: the resolved config, the network's final arguments, the
    path's options measured on the data, a description of the data (so sample.py and
    evaluate.py need nothing else) and, for a latent model, the latent's shape and the
    autoencoder's factors as numbers (``info`` is then the images')."""
    config = dict(cfg.raw)
    config["network"] = {"_target_": cfg.network.target, **net_kwargs}
    if path_options:
        config["path"] = {**config["path"], **path_options}
    if latent is not None:
        config["latent"] = {**config["latent"], **latent[1]}  # the factors, the path, its digest
        config["latent_shape"] = list(latent[0].shape)
    else:
        config.pop("latent", None)
    config.update(
        data_shape=list(info.shape),
        data_kind=info.kind,
        data_name=info.name,
        num_classes=info.num_classes,
    )
    return config


def build_path(cfg: TrainConfig, datamodule) -> tuple[object | None, dict]:
    """The run's path, with the options it measures on the data resolved (EDM's ``sigma_data:
    auto``, on the real data a batch of samples stands for); returns it and those options."""
    if cfg.path is None:
        return None, {}
    path = cfg.path.build()
    resolve = getattr(path, "resolve", None)
    if resolve is None:
        return path, {}
    real = datamodule.real_data
    return path, resolve(lambda: dataset_tensors(real.train_set, RESOLVE_EXAMPLES)[0])


def build_module(cfg: TrainConfig, datamodule) -> L.LightningModule:
    info = datamodule.info
    kwargs = network_kwargs(
        cfg.network, info, cfg.conditional, cfg.learned_variance, cfg.time_inputs
    )
    net = cfg.network.fn(**kwargs)
    encoder = build_repa_encoder(cfg, datamodule, info)  # before any encoding: it may refuse
    latent = None
    if cfg.latent is not None:  # the factors first: the path's data options read scaled latents
        latent = (info, datamodule.resolve())
        info = datamodule.pixel_info
    path, resolved = build_path(cfg, datamodule)
    config = run_config(cfg, info, kwargs, resolved, latent)
    if encoder is not None:  # what a checkpoint's projector is built with
        config["model"] = {
            **config["model"],
            "repa": {**config["model"]["repa"], "feature_dim": encoder.dim},
        }
    provided = {
        "net": net,
        "path": path,
        "repa_encoder": encoder,
        "decoder": "discretized" if info.is_image and latent is None else "gaussian",
        "run_config": config,
    }
    module = cfg.model.build(**{k: v for k, v in provided.items() if cfg.model.accepts(k)})
    key = getattr(module, "start_key", None)
    if cfg.ckpt_path is None:  # (a resume restores its own state)
        if key is not None and (where := cfg.model.kwargs.get(key)):
            start_from(module, where, f"model.{key}")
        others: dict[str, Callable] = getattr(module, "other_starts", dict)()
        for other, receive in others.items():
            if where := cfg.model.kwargs.get(other):
                start_from(module, where, f"model.{other}", receive)
    return module


def build_repa_encoder(cfg: TrainConfig, datamodule, info: DataInfo):
    """REPA's frozen encoder (``None`` when ``model.repa.encoder`` is null)."""
    repa = cfg.repa
    if not repa.enabled or not cfg.model.accepts("repa_encoder"):
        return None
    pixels = datamodule.data if isinstance(datamodule, LatentDataModule) else datamodule
    return build_encoder(
        cast(str, repa.encoder), repa.weights, repa.image_size,
        lambda: dataset_tensors(pixels.train_set), info.num_classes, repa.cache_dir,
    )  # fmt: skip


def build_logger(cfg: TrainConfig, resume_step: int | None = None, main: bool = True):
    """The configured logger, continuing the run's own logs when resuming."""
    if cfg.logger is None:
        return False
    options = resume_options(cfg.logger.fn, cfg.run_dir, resume_step, main)
    return cfg.logger.build(**{k: v for k, v in options.items() if k not in cfg.logger.kwargs})


def build_trainer(cfg: TrainConfig, resume_step: int | None = None, main: bool = True) -> L.Trainer:
    extra = {"sampler": cfg.sampler, "denoiser": cfg.denoiser}
    callbacks = [
        c.build(**{k: v for k, v in extra.items() if c.accepts(k)}) for c in cfg.callbacks.values()
    ]
    if cfg.ema.kind == "posthoc":
        callbacks.append(EMASnapshots(Path(cfg.run_dir) / "ema_snapshots", cfg.ema.snapshot_every))
    if scheduler_job_id() is not None:
        callbacks.append(PreemptionAtStepEnd())
    plugins: list = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():  # submitit requeues preempted jobs; Lightning must not as well
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return cfg.trainer.build(
        callbacks=callbacks, logger=build_logger(cfg, resume_step, main), plugins=plugins
    )


def checkpoint_dirs(trainer: L.Trainer) -> list[Path]:
    """Every folder the trainer's callbacks write checkpoints to."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from ddpm.training.callbacks import LastCheckpoint

    dirs = {
        Path(cb.dirpath)
        for cb in trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning, not declared
        if isinstance(cb, (ModelCheckpoint, LastCheckpoint)) and cb.dirpath
    }
    return sorted(dirs)
