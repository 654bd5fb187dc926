"""Training steps per second: train.py's DiffusionModule under Lightning vs a bare PyTorch loop
with the same network, batch, optimizer, gradient clipping and EMA, measured in the same run.

    python benchmarks/train_throughput.py [--steps 200] [--experiment digits_v1]

The last line is the framework overhead: 1 - (framework steps/s) / (bare steps/s).
"""

from __future__ import annotations

import argparse
import copy
import time

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from ddpm.cli.preflight import plain
from ddpm.config import parse_train
from ddpm.diffusion import q_sample
from ddpm.training.build import build_module
from ddpm.training.ema import ema_update

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


class Timer(L.Callback):
    """Wall time between the first measured batch and the end of training (warm-up excluded)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start = warmup, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        self.seconds = time.perf_counter() - self.start


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--experiment", default="digits_v1")  # unconditional, as the bare loop
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        composed = compose("train", overrides=[f"experiment={args.experiment}", *args.overrides])
    cfg = parse_train(plain(composed, run_dir="/tmp/ddpm-bench"))
    dm = cfg.dataset.build()
    batch = next(iter(dm.train_dataloader()))
    total = args.steps + args.warmup

    # --- framework: the module and data module exactly as train.py builds them ----------------------
    L.seed_everything(0, verbose=False)
    module = build_module(cfg, dm.info)
    timer = Timer(args.warmup)
    trainer = L.Trainer(
        max_steps=total,
        accelerator=cfg.trainer.kwargs["accelerator"],
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        gradient_clip_val=cfg.trainer.kwargs["gradient_clip_val"],
        callbacks=[timer],
    )
    trainer.fit(module, dm)
    fw = args.steps / timer.seconds

    # --- bare loop: same network, optimizer, clipping, EMA, loss; data from the same loader ---------
    L.seed_everything(0, verbose=False)
    ref = build_module(cfg, dm.info)
    net, sched, device = ref.net, ref.schedule, trainer.strategy.root_device
    net.to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = ref.optimizer_fn(net.parameters(), lr=ref.hparams.lr)
    loader = dm.train_dataloader()
    it, done = iter(loader), 0
    start = None
    while done < total:
        if done == args.warmup:
            start = time.perf_counter()
        try:
            x0, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x0, _ = next(it)
        x0 = x0.to(device)
        k = torch.randint(0, sched.num_timesteps, (len(x0),), device=device)
        noise = torch.randn_like(x0)
        loss = (net(q_sample(sched, x0, k, noise), k) - noise).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.trainer.kwargs.get("gradient_clip_val"):
            torch.nn.utils.clip_grad_norm_(
                net.parameters(), cfg.trainer.kwargs["gradient_clip_val"]
            )
        opt.step()
        ema_update(ema, net, ref.hparams.ema_decay)
        done += 1
    bare = args.steps / (time.perf_counter() - start)
    del batch
    print(
        f"bare loop: {bare:.2f} steps/s; framework: {fw:.2f} steps/s ({args.experiment}, batch {dm.batch_size}, {device})"
    )
    print(
        f"framework overhead: {100 * (1 - fw / bare):.1f}% (ratio framework/bare = {fw / bare:.3f})"
    )


if __name__ == "__main__":
    main()
