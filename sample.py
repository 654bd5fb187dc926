"""Draw samples from a checkpoint: ``python sample.py ckpt=PATH [sampler=ddim] [num_samples=64] ...``

Writes ``samples.npz``, ``samples.png`` (and ``trajectory.png`` with ``trajectory=true``) into the
run dir. Sample ``i`` depends only on ``(seed, i)``, whatever ``batch_size`` or ``trainer.devices``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ddpm.cli import user_errors
from ddpm.config import ConfigError, validate_sampler
from ddpm.evaluation.distributed import make_fabric
from ddpm.evaluation.runner import (
    build_datamodule,
    dataset_tensors,
    draw_distributed,
    load_model,
    make_labels,
    write_samples,
)
from ddpm.samplers.draw import SamplerSpec


@user_errors
def run(cfg: dict) -> None:
    if not cfg["ckpt"]:
        raise ConfigError("ckpt is required: python sample.py ckpt=path/to/checkpoints/last.ckpt")
    if not isinstance(cfg["num_samples"], int) or cfg["num_samples"] < 1:
        raise ConfigError(
            f"num_samples={cfg['num_samples']!r} is not valid; it must be a positive integer"
        )
    model = load_model(cfg["ckpt"], cfg["use_ema"])
    validate_sampler(cfg, model.schedule.num_timesteps)
    labels = make_labels(model, cfg["class_label"], cfg["num_samples"])
    t = cfg["trainer"]
    fabric = make_fabric(t["accelerator"], t["devices"], t["num_nodes"], t["precision"])
    model.net.to(fabric.device)
    x, info = draw_distributed(
        fabric,
        model,
        SamplerSpec.from_dict(cfg["sampler"]),
        cfg["num_samples"],
        cfg["seed"],
        cfg["batch_size"],
        labels,
        cfg["guidance_scale"],
        cfg["trajectory"],
        cfg["progress"],
    )
    if fabric.global_rank == 0:
        reference = (
            None
            if model.is_image
            else dataset_tensors(build_datamodule(model.config).test_set, 2000)[0]
        )
        write_samples(Path(cfg["run_dir"]), x, model, labels, info["trajectory"], reference)
        print(f"wrote {len(x)} samples ({info['nfe']} network calls each) to {cfg['run_dir']}")


@hydra.main(version_base=None, config_path="conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    run(OmegaConf.to_container(cfg, resolve=True))


if __name__ == "__main__":
    main()
