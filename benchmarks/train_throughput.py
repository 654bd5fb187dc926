"""Training steps per second: train.py's DiffusionModule under Lightning vs a bare PyTorch loop
with the same network, batch, optimizer, gradient clipping and EMA, measured in the same run.

    python benchmarks/train_throughput.py [--steps 100] [--repeats 6] [--experiment digits_v1]

The two alternate, ``--repeats`` times ``--steps`` measured steps each (after ``--warmup`` steps
every time), in turn first (ABBA), so drifts of a shared machine's speed and the first-of-a-pair
slowdown hit both alike, and each rate is one over the
median step time; the last line is the framework overhead of the median repeat,
``1 - framework / bare`` steps per second.
"""

from __future__ import annotations

import argparse
import copy
import statistics
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


def median_rate(ticks: list[float]) -> float:
    """Steps per second from the times each step started (and the last ended): one over the
    median step time, which a burst of a shared machine's load does not move."""
    return 1.0 / statistics.median(b - a for a, b in zip(ticks, ticks[1:]))


class Timer(L.Callback):
    """The wall time at the start of each measured step and at the end (warm-up excluded)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.ticks = warmup, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step >= self.warmup:
            self.ticks.append(time.perf_counter())

    def on_train_end(self, trainer, module) -> None:
        self.ticks.append(time.perf_counter())


class BareLoop:
    """The same training step without Lightning: loss, backward, clipping, Adam, EMA."""

    def __init__(self, cfg, dm, device) -> None:
        ref = build_module(cfg, dm.info)
        self.net, self.sched, self.device = ref.net.to(device), ref.schedule, device
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = ref.optimizer_fn(self.net.parameters(), lr=ref.hparams.lr)
        self.decay, self.clip = ref.hparams.ema_decay, cfg.trainer.kwargs.get("gradient_clip_val")
        self.loader = dm.train_dataloader()
        self.it = iter(self.loader)

    def step(self) -> None:
        try:
            x0, _ = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            x0, _ = next(self.it)
        x0 = x0.to(self.device)
        k = torch.randint(0, self.sched.num_timesteps, (len(x0),), device=self.device)
        noise = torch.randn_like(x0)
        loss = (self.net(q_sample(self.sched, x0, k, noise), k) - noise).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
        self.opt.step()
        ema_update(self.ema, self.net, self.decay)

    def rate(self, steps: int, warmup: int) -> float:
        for _ in range(warmup):
            self.step()
        ticks = [time.perf_counter()]
        for _ in range(steps):
            self.step()
            ticks.append(time.perf_counter())
        return median_rate(ticks)


def framework_rate(cfg, module, dm, steps: int, warmup: int) -> tuple[float, torch.device]:
    """Steps per second of ``Trainer.fit`` on the module train.py builds (a fresh Trainer)."""
    timer = Timer(warmup)
    trainer = L.Trainer(
        max_steps=steps + warmup,
        accelerator=cfg.trainer.kwargs["accelerator"],
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        gradient_clip_val=cfg.trainer.kwargs["gradient_clip_val"],
        precision=cfg.trainer.kwargs.get("precision", "32-true"),
        callbacks=[timer],
    )
    trainer.fit(module, dm)
    return median_rate(timer.ticks), trainer.strategy.root_device


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--experiment", default="digits_v1")  # unconditional, as the bare loop
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        composed = compose("train", overrides=[f"experiment={args.experiment}", *args.overrides])
    cfg = parse_train(plain(composed, run_dir="/tmp/ddpm-bench"))
    dm = cfg.dataset.build()
    L.seed_everything(0, verbose=False)
    module = build_module(cfg, dm)  # exactly as train.py builds it
    device = framework_rate(cfg, module, dm, args.warmup, 1)[1]  # a first fit warms up
    bare = BareLoop(cfg, dm, device)
    rates = {
        "framework": lambda: framework_rate(cfg, module, dm, args.steps, args.warmup)[0],
        "bare": lambda: bare.rate(args.steps, args.warmup),
    }
    rows = []
    for r in range(args.repeats):  # ABBA: whichever runs first in a pair measured ~4% slower here
        order = ["framework", "bare"][:: 1 if r % 2 == 0 else -1]
        rate = {name: rates[name]() for name in order}
        rows.append((rate["framework"], rate["bare"]))
        print(f"repeat {r + 1}: framework {rows[-1][0]:.2f}, bare {rows[-1][1]:.2f} steps/s")
    ratio = statistics.median(fw / b for fw, b in rows)
    fw, b = (statistics.median(col) for col in zip(*rows))
    print(
        f"bare loop: {b:.2f} steps/s; framework: {fw:.2f} steps/s (medians; {args.experiment}, "
        f"batch {dm.batch_size}, {device}, {args.repeats} x {args.steps} steps each)"
    )
    print(
        f"framework overhead: {100 * (1 - ratio):.1f}% (median ratio framework/bare = {ratio:.3f})"
    )


if __name__ == "__main__":
    main()
