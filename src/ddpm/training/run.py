"""Fit a configured model: the one library call behind train.py."""

from __future__ import annotations

import lightning as L

from ddpm.training import hydra_ddp


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    ckpt_path: str | None = None,
) -> L.Trainer:
    """``trainer.fit`` with what every run needs around it: DDP ranks relaunched correctly under
    Hydra (also inside a multirun), the process group and environment restored afterwards for the
    next job of a sweep, and W&B runs finished between jobs (lightning-hydra-template #289)."""
    hydra_ddp.install()
    with hydra_ddp.isolated_job():
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        finally:
            if any(type(lg).__name__ == "WandbLogger" for lg in trainer.loggers):
                import wandb

                wandb.finish()
    return trainer
