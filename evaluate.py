"""Score a checkpoint: ``python evaluate.py ckpt=PATH [num_samples=N] [sampler=...] [bpd=true]``

Samples on every device (``trainer.devices=N``), then writes ``metrics.json`` with FID (and KID,
precision/recall or point-cloud distances), bits/dim with ``bpd=true``, and what was run. A VAE
checkpoint (``model=vae``) is sampled from its prior and its bits/dim are its ELBO and
importance-weighted bound.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ddpm.cli import user_errors
from ddpm.config import ConfigError
from ddpm.evaluation.runner import (
    bits_per_dim,
    build_datamodule,
    draw_distributed,
    launch,
    load_for_sampling,
    make_extractor,
    real_features,
    score_samples,
    vae_bits_per_dim,
    write_metrics,
)
from ddpm.samplers.draw import SamplerSpec
from ddpm.training.hydra_ddp import isolated_job


@user_errors
def run(cfg: dict) -> None:
    start = time.perf_counter()
    bpd = cfg["bpd"]
    if bpd not in (False, True, "vlb", "ode"):
        raise ConfigError(f"bpd={bpd!r} is not valid; choose false, true (= vlb) or ode")
    model, labels = load_for_sampling(cfg, "evaluate.py", min_samples=2)
    if bpd and model.is_vae:  # checked before sampling, which may take long
        if bpd == "ode":
            raise ConfigError("bpd=ode needs a diffusion checkpoint; a VAE is scored by bpd=true")
        k = cfg["iw_samples"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"iw_samples={k!r} is not valid; it must be an integer >= 1")
    datamodule = build_datamodule(model.config)
    datamodule.check_available()
    cache_dir = Path(cfg["fid"]["cache_dir"])
    extractor = make_extractor(model, datamodule, cfg["fid"]["weights_path"], cache_dir)
    fabric = launch(cfg, model)
    spec = SamplerSpec.from_dict(cfg["sampler"])
    real = real_features(extractor, datamodule, cache_dir, fabric)
    x, info = draw_distributed(
        fabric,
        model,
        spec,
        cfg["num_samples"],
        cfg["seed"],
        cfg["batch_size"],
        labels,
        cfg["guidance_scale"],
        show_progress=cfg["progress"],
    )
    metrics = score_samples(x, extractor, real, fabric)
    if labels is not None and "class_histogram" in metrics:
        _, probs = extractor.features_and_probs(x)
        metrics["label_accuracy"] = float((probs.argmax(1) == labels).double().mean())
    if bpd and model.is_vae:
        metrics.update(
            vae_bits_per_dim(
                fabric,
                model,
                datamodule,
                cfg["seed"],
                cfg["batch_size"],
                cfg["bpd_examples"],
                cfg["iw_samples"],
                cfg["progress"],
            )
        )
    elif bpd:
        metrics.update(
            bits_per_dim(
                fabric,
                model,
                datamodule,
                cfg["seed"],
                cfg["batch_size"],
                cfg["bpd_timesteps_per_call"],
                cfg["bpd_examples"],
                cfg["progress"],
                cfg["sampler"]["variance"],
                "ode" if bpd == "ode" else "vlb",
            )
        )
    method = info.get("method", spec.method)
    metrics.update(
        num_samples=cfg["num_samples"],
        sampler=method,
        steps=spec.steps if method in ("ddpm", "ddim", "dpm_solver") else None,
        nfe=info["nfe"],
        seed=cfg["seed"],
        guidance_scale=cfg["guidance_scale"],
        class_label=cfg["class_label"],
        world_size=fabric.world_size,
        seconds=round(time.perf_counter() - start, 2),
    )
    if fabric.global_rank == 0:
        path = write_metrics(Path(cfg["run_dir"]), metrics)
        print(f"fid={metrics['fid']:.4f} ({metrics['feature_extractor']}) -> {path}")


@hydra.main(version_base=None, config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with isolated_job():  # each job of a sweep gets its own process group
        run(OmegaConf.to_container(cfg, resolve=True))


if __name__ == "__main__":
    main()
