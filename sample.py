"""Draw samples from a checkpoint: ``python sample.py ckpt=PATH [sampler=ddim] [num_samples=64] ...``

Writes ``samples.npz``, ``samples.png`` (and ``trajectory.png`` with ``trajectory=true``) into the
run dir. Sample ``i`` depends only on ``(seed, i)``, whatever ``batch_size`` or ``trainer.devices``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ddpm.cli import user_errors
from ddpm.evaluation.runner import (
    build_datamodule,
    dataset_tensors,
    draw_distributed,
    launch,
    load_for_sampling,
    write_samples,
)
from ddpm.samplers.draw import SamplerSpec
from ddpm.training.hydra_ddp import isolated_job


@user_errors
def run(cfg: dict) -> None:
    model, labels = load_for_sampling(cfg, "sample.py")
    fabric = launch(cfg, model)
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
    with isolated_job():  # each job of a sweep gets its own process group
        run(OmegaConf.to_container(cfg, resolve=True))


if __name__ == "__main__":
    main()
