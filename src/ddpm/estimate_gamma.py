"""Estimate Analytic-DPM's Gamma_n for a checkpoint and store it in the checkpoint.

    python -m ddpm.estimate_gamma path/to/last.ckpt [--num-examples 256] [--seed 0]

Afterwards ``denoiser.variance=analytic`` works in sample.py and evaluate.py (the ddpm and ddim
samplers, and ``bpd=true``). The checkpoint is rewritten atomically with one extra tensor,
``analytic_gamma`` (T values), so it still loads with ``weights_only=True``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ddpm.analytic_variance import estimate_gamma
from ddpm.checkpoint import CheckpointError, atomic_save, load_checkpoint
from ddpm.checks import ConfigError
from ddpm.data.base import dataset_tensors
from ddpm.evaluation.loading import load_model
from ddpm.evaluation.progress import progress_bar


def run(ckpt_path: str, num_examples: int, seed: int, batch_size: int, device: str) -> torch.Tensor:
    loaded = load_model(ckpt_path, use_ema=True, device=device)
    model = loaded.model.diffusion("Analytic-DPM (python -m ddpm.estimate_gamma)")
    if model.latent is not None:
        raise ConfigError(
            f"{ckpt_path} models latents; Analytic-DPM's Gamma estimates read the test images "
            f"through a network of the data (a pixel model)"
        )
    if not model.path.discrete:
        raise ConfigError(
            f"Analytic-DPM's Gammas are per step of the discrete chain; {ckpt_path} is on "
            f"path={model.path.name}"
        )
    if model.prediction == "mu":
        raise ConfigError(
            "Analytic-DPM needs a noise estimate; mu-prediction checkpoints are not supported"
        )
    x, _ = dataset_tensors(loaded.datamodule().train_set, num_examples)
    g = torch.Generator().manual_seed(seed)
    batches = [x[i : i + batch_size].to(device) for i in range(0, len(x), batch_size)]
    gamma = estimate_gamma(
        model.path.schedule,
        model.net_fn(),
        batches,
        model.prediction,
        generator=g,
        progress=progress_bar("Gamma_n"),
    )
    ckpt = load_checkpoint(ckpt_path)
    ckpt["analytic_gamma"] = gamma
    ckpt["analytic_gamma_examples"] = len(x)
    atomic_save(ckpt, ckpt_path)
    return gamma


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m ddpm.estimate_gamma",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ckpt")
    p.add_argument(
        "--num-examples", type=int, default=256, help="training examples to average over"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    for name in ("num_examples", "batch_size"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    try:
        with torch.no_grad():
            gamma = run(a.ckpt, a.num_examples, a.seed, a.batch_size, a.device)
    except (ConfigError, CheckpointError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"stored Gamma_n (min {gamma.min():.4f}, max {gamma.max():.4f}) from "
        f"{a.num_examples} examples in {a.ckpt}"
    )


if __name__ == "__main__":
    main()
