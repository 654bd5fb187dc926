"""Our UNet (Ho et al.) against diffusers' ``UNet2DModel`` of the same architecture, step for step.

    pip install -e '.[bench]'                              # diffusers
    python benchmarks/unet_step.py [--config digits|cifar10] [--batch N] [--repeats R] [--steps S]

The diffusers model is built by ``ddpm.export``'s :func:`unet_config` (the same network block for
block) and loaded with our weights by :func:`unet_state_dict`, so both compute the same function:
the script prints the largest difference of their outputs before timing. Timed: a training step
(forward, MSE to a fixed target, backward; no optimizer, identical for both) and an inference
forward under ``torch.no_grad``. Each repeat runs ``steps`` of one model then the other, the
order reversed every repeat (ABBA: whichever runs first on a busy machine measures slower), and
a rate is one over the median step time. ``ours / diffusers`` above 1 means ours is faster (the
target: at least 1). Unconditional networks: diffusers' UNet2DModel takes no class labels the
way ours does, and the class embedding is one addition to the time embedding.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from ddpm.cli.preflight import plain
from ddpm.config import network_kwargs, parse_train
from ddpm.data.info import DataInfo
from ddpm.export.diffusers_unet import unet_config, unet_state_dict
from ddpm.nets import UNet

REPO = Path(__file__).resolve().parents[1]
# the digits default's network and Ho et al.'s CIFAR-10 network, as their experiments train them
CONFIGS = {
    "digits": ("digits_fast", DataInfo("digits", (1, 8, 8), 10, "image")),
    "cifar10": ("cifar10_ddpm", DataInfo("cifar10", (3, 32, 32), 10, "image")),
}
BATCH = {"digits": 128, "cifar10": 8}


def unet_kwargs(config: str) -> dict:
    """The UNet arguments experiment ``CONFIGS[config]`` trains (its yaml, unconditional)."""
    experiment, info = CONFIGS[config]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        composed = compose("train", overrides=[f"experiment={experiment}", "network=unet"])
    cfg = parse_train(plain(composed, run_dir="/tmp/ddpm-bench"))
    return network_kwargs(cfg.network, info)


def models(kwargs: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(ours, theirs)`` with the same weights (ours randomly initialised, nothing zeroed)."""
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    ours = UNet(**kwargs)
    for p in ours.parameters():  # zero-initialised layers, or near-uniform attention (small
        torch.nn.init.normal_(p, std=0.1)  # weights), would hide a mismatch
    theirs = UNet2DModel(**unet_config(kwargs, conditional=False))
    theirs.load_state_dict(unet_state_dict(ours.state_dict(), kwargs))
    return ours, theirs


def calls(ours, theirs, channels_last: bool = False):
    """The two networks behind one signature ``fn(x, k) -> eps``; with ``channels_last`` ours
    gets its input in channels-last memory format (``denoiser.channels_last``)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {
        "ours": lambda x, k: ours(x.contiguous(memory_format=fmt), k),
        "diffusers": lambda x, k: theirs(x, k).sample,
    }


def train_step(net, fn, x, k, target) -> None:
    net.zero_grad(set_to_none=True)
    F.mse_loss(fn(x, k), target).backward()


def infer_step(net, fn, x, k, target) -> None:
    with torch.no_grad():
        fn(x, k)


def time_steps(step, net, fn, inputs, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        step(net, fn, *inputs)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", choices=list(CONFIGS), default="digits")
    p.add_argument("--batch", type=int, default=None, help="default: 128 digits, 8 cifar10")
    p.add_argument("--repeats", type=int, default=6, help="runs of each (even: whole ABBA)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per run")
    p.add_argument("--channels-last", action="store_true", help="ours on channels-last input")
    args = p.parse_args()
    kwargs, batch = unet_kwargs(args.config), args.batch or BATCH[args.config]
    ours, theirs = models(kwargs)
    nets = {"ours": ours, "diffusers": theirs}
    fns = calls(ours, theirs, args.channels_last)
    g = torch.Generator().manual_seed(1)
    shape = (batch, kwargs["in_channels"], kwargs["image_size"], kwargs["image_size"])
    x, target = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    k = torch.randint(0, 1000, (batch,), generator=g)
    with torch.no_grad():
        ours.eval(), theirs.eval()
        diff = (fns["ours"](x, k) - fns["diffusers"](x, k)).abs().max().item()
    params = sum(p.numel() for p in ours.parameters())
    print(f"{args.config}: {params / 1e6:.2f}M parameters, batch {batch}, "
          f"ours {'channels-last' if args.channels_last else 'contiguous'}, "
          f"threads {torch.get_num_threads()}; max |ours - diffusers| = {diff:.1e}")  # fmt: skip
    for kind, step, train in [("train step", train_step, True), ("inference", infer_step, False)]:
        for name, net in nets.items():  # mode, and a warm-up of two steps each
            net.train(train)
            time_steps(step, net, fns[name], (x, k, target), 2)
        times: dict[str, list[float]] = {name: [] for name in nets}
        for r in range(args.repeats):
            for name in list(nets)[:: 1 if r % 2 == 0 else -1]:
                times[name] += time_steps(step, nets[name], fns[name], (x, k, target), args.steps)
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        print(f"{kind}: ours {ms['ours']:.1f} ms, diffusers {ms['diffusers']:.1f} ms, "
              f"ours / diffusers speed {ms['diffusers'] / ms['ours']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
