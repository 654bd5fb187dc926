"""A typed run configuration turned into the objects of a run: data module, network, schedule,
Lightning module, callbacks, logger and trainer. Every check that needs the data happens here,
before training starts."""

from __future__ import annotations

from typing import Any

import lightning as L

from ddpm.checks import ConfigError
from ddpm.config import TrainConfig, network_kwargs
from ddpm.data.base import DataInfo
from ddpm.training.checkpoint_io import AtomicCheckpointIO


def build_datamodule(cfg: TrainConfig):
    datamodule = cfg.dataset.build()
    datamodule.check_available()
    info: DataInfo = datamodule.info
    if cfg.conditional and not info.num_classes:
        raise ConfigError(
            f"model.conditional=true needs a labelled dataset; {info.name} has no class labels"
        )
    return datamodule


def run_config(cfg: TrainConfig, info: DataInfo, net_kwargs: dict[str, Any]) -> dict:
    """What every checkpoint stores: the resolved config, the network's final arguments and a
    description of the data (so sample.py and evaluate.py need nothing else)."""
    config = dict(cfg.raw)
    config["network"] = {"_target_": cfg.network.target, **net_kwargs}
    config.update(
        data_shape=list(info.shape),
        data_kind=info.kind,
        data_name=info.name,
        num_classes=info.num_classes,
    )
    return config


def build_module(cfg: TrainConfig, info: DataInfo) -> L.LightningModule:
    kwargs = network_kwargs(cfg.network, info, cfg.conditional, cfg.learned_variance)
    net = cfg.network.fn(**kwargs)
    provided = {
        "net": net,
        "schedule": cfg.schedule.build(),
        "decoder": "discretized" if info.is_image else "gaussian",
        "run_config": run_config(cfg, info, kwargs),
    }
    return cfg.model.build(**{k: v for k, v in provided.items() if cfg.model.accepts(k)})


def build_trainer(cfg: TrainConfig) -> L.Trainer:
    extra = {"sampler": cfg.sampler, "denoiser": cfg.denoiser}
    callbacks = [
        c.build(**{k: v for k, v in extra.items() if c.accepts(k)}) for c in cfg.callbacks.values()
    ]
    return cfg.trainer.build(
        callbacks=callbacks,
        logger=cfg.logger.build() if cfg.logger is not None else False,
        plugins=[AtomicCheckpointIO()],
    )
