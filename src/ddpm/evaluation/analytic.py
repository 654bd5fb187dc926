"""Estimate Analytic-DPM's Gamma_n for a checkpoint and store it in the checkpoint.

    python -m ddpm.evaluation.analytic path/to/last.ckpt [--num-examples 256] [--seed 0]

Afterwards ``sampler.variance=analytic`` works in sample.py and evaluate.py (ddpm and ddim
samplers, and ``bpd=true``). The checkpoint is rewritten atomically with one extra tensor,
``analytic_gamma`` (T values), so it still loads with ``weights_only=True``.
"""

from __future__ import annotations

import argparse

import torch

from ddpm.analytic_variance import estimate_gamma
from ddpm.checkpoint import load_checkpoint
from ddpm.cli import user_errors
from ddpm.evaluation.runner import build_datamodule, dataset_tensors, load_model, progress_bar
from ddpm.training.callbacks import atomic_torch_save


@user_errors
def run(ckpt_path: str, num_examples: int, seed: int, batch_size: int, device: str) -> torch.Tensor:
    model = load_model(ckpt_path, use_ema=True, device=device)
    if model.is_vae:
        raise ValueError(f"{ckpt_path} is a VAE; Analytic-DPM applies to diffusion checkpoints")
    if model.prediction == "mu":
        raise ValueError(
            "Analytic-DPM needs a noise estimate; mu-prediction checkpoints are not supported"
        )
    x, _ = dataset_tensors(build_datamodule(model.config).train_set, num_examples)
    g = torch.Generator().manual_seed(seed)
    batches = [x[i : i + batch_size].to(device) for i in range(0, len(x), batch_size)]
    gamma = estimate_gamma(
        model.schedule,
        lambda xt, k: model.net(xt, k, None),
        batches,
        model.prediction,
        generator=g,
        progress=progress_bar("Gamma_n"),
    )
    ckpt = load_checkpoint(ckpt_path)
    ckpt["analytic_gamma"] = gamma
    ckpt["analytic_gamma_examples"] = len(x)
    atomic_torch_save(ckpt, ckpt_path)
    return gamma


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("ckpt")
    p.add_argument(
        "--num-examples", type=int, default=256, help="training examples to average over"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    gamma = run(a.ckpt, a.num_examples, a.seed, a.batch_size, a.device)
    print(
        f"stored Gamma_n (min {gamma.min():.4f}, max {gamma.max():.4f}) from {a.num_examples} examples in {a.ckpt}"
    )


if __name__ == "__main__":
    main()
