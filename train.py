"""Train a diffusion model (or the VAE baseline, ``model=vae``): ``python train.py [hydra overrides]``
(see README.md and conf/)."""

from __future__ import annotations

import inspect

import hydra
import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ddpm.checkpoint import load_checkpoint
from ddpm.cli import fail, user_errors
from ddpm.config import check_run_dir, validate_train
from ddpm.training import NonFiniteLossError
from ddpm.training.checkpoint_io import AtomicCheckpointIO
from ddpm.training.hydra_ddp import is_child_rank
from ddpm.training.run import fit


@user_errors
def build(cfg: DictConfig):
    """Config -> objects. Every check happens here, before any training work."""
    config = OmegaConf.to_container(cfg, resolve=True)
    validate_train(config)
    if not is_child_rank():
        check_run_dir(config["run_dir"], config["ckpt_path"], config["overwrite"])
    if config["ckpt_path"]:
        load_checkpoint(
            config["ckpt_path"]
        )  # refuses unsafe or unreadable files with a clear message
    datamodule = instantiate(cfg.dataset)
    datamodule.check_declared()
    datamodule.check_available()
    info = datamodule.info
    config.update(
        data_shape=list(info.shape),
        data_kind=info.kind,
        data_name=info.name,
        num_classes=info.num_classes,
    )
    model_kwargs = {k: v for k, v in config["model"].items() if k not in ("_target_", "optimizer")}
    module_class = get_class(cfg.model._target_)
    if "schedule" in inspect.signature(module_class).parameters:  # diffusion, not the VAE
        model_kwargs["schedule"] = instantiate(cfg.schedule)
    module = module_class(
        **model_kwargs,
        net=instantiate(cfg.network),
        optimizer=instantiate(cfg.model.optimizer),
        decoder="discretized" if info.is_image else "gaussian",
        run_config=config,
    )
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=instantiate(cfg.logger),
        plugins=[AtomicCheckpointIO()],
    )
    return trainer, module, datamodule, config["ckpt_path"]


@hydra.main(version_base=None, config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer, module, datamodule, ckpt_path = build(cfg)
    try:
        fit(trainer, module, datamodule, ckpt_path)
    except NonFiniteLossError as e:
        fail(e, code=3)
    except SIGTERMException:
        fail(
            f"terminated at step {trainer.global_step}; last.ckpt was saved in {cfg.run_dir}/checkpoints",
            code=143,
        )


if __name__ == "__main__":
    main()
