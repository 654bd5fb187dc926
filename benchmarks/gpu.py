"""The GPU kit: one command that measures what a GPU run needs to know, in one table.

    python benchmarks/gpu.py                 # on a GPU: at most about 8 minutes on one H100
    python benchmarks/gpu.py --tiny          # tiny sizes on the CPU (the test suite runs this)

Rows:
- train steps/s and peak memory of the CIFAR-10 UNet of Ho et al. (35.7 M parameters) at batch
  128 in bf16-mixed, with and without ``torch.compile`` and channels-last; the same for the largest
  network we ship (DiT-XL/2, 675 M, on 32 x 32 x 4 latents, batch 32). Synthetic data; one step is
  forward, noise-prediction loss, backward, gradient clipping, Adam and the EMA update (the
  framework's own overhead on top is ``benchmarks/train_throughput.py``'s figure);
- whether DDP warns "grad strides do not match bucket view strides" for a channels-last UNet (two
  CPU processes, gloo: the warning is about memory layout, not the device);
- sampling images/s at 20 network calls, and the time for 50,000 samples with their Inception
  features (``benchmarks/protocol_throughput.py``'s estimate);
- Ho et al.'s reference: 21 steps/s at batch 128 on a TPU v3-8 (their paper, sec. 4).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import torch
from protocol_throughput import inception, timed  # beside this file
from torch.nn import functional as F

from ddpm.nets import DiT, UNet
from ddpm.training.ema import ema_update

UNET = dict(in_channels=3, image_size=32, ch=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,))
TINY_UNET = dict(in_channels=3, image_size=8, ch=32, ch_mult=(1, 2), attn_resolutions=(4,))
DIT = dict(in_channels=4, image_size=32, patch_size=2, hidden_size=1152, depth=28, num_heads=16)
TINY_DIT = dict(in_channels=4, image_size=8, patch_size=2, hidden_size=64, depth=2, num_heads=2)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_rate(net, shape, batch, device, bf16, compiled, channels_last, steps, warmup):
    """Steps per second and peak memory (GiB; CUDA only) of a synthetic training loop."""
    net = copy.deepcopy(net).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    fn = torch.compile(net) if compiled else net
    x0 = torch.randn(batch, *shape, device=device).contiguous(memory_format=fmt)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def step():
        noise = torch.randn_like(x0)
        k = torch.randint(0, 1000, (batch,), device=device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(fn(x0 + noise, k).float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema_update(ema, net, 0.9999)

    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    rate = steps / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return rate, peak


def _ddp_worker(rank: int, result) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    net = UNet(**TINY_UNET).to(memory_format=torch.channels_last)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ddp(x, torch.zeros(2, dtype=torch.long)).square().mean().backward()
    if rank == 0:
        result.value = int(any("strides do not match" in str(w.message) for w in caught))
    dist.destroy_process_group()


def ddp_stride_warning() -> bool:
    import torch.multiprocessing as mp

    result = mp.get_context("spawn").Value("i", -1)
    mp.spawn(_ddp_worker, args=(result,), nprocs=2, join=True)
    return bool(result.value)


def sample_rate(net, shape, batch, device, bf16, calls: int = 20) -> float:
    net = copy.deepcopy(net).to(device).eval()
    x = torch.randn(batch, *shape, device=device)
    k = torch.full((batch,), 500, device=device)

    @torch.no_grad()
    def call():
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            return net(x, k)

    call()
    sync(device)
    start = time.perf_counter()
    for _ in range(3):
        call()
    sync(device)
    return batch / ((time.perf_counter() - start) / 3 * calls)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tiny", action="store_true", help="tiny sizes (CPU, seconds)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=None, help="measured steps per row")
    a = p.parse_args()
    tiny = a.tiny
    steps, warmup = (a.steps or 2, 1) if tiny else (a.steps or 50, 10)
    bf16 = a.device.startswith("cuda") and torch.cuda.is_bf16_supported()
    unet = UNet(**(TINY_UNET if tiny else UNET))
    dit = DiT(**(TINY_DIT if tiny else DIT))
    unet_shape = (3, 8, 8) if tiny else (3, 32, 32)
    dit_shape = (4, 8, 8) if tiny else (4, 32, 32)
    batch, dit_batch = (4, 2) if tiny else (128, 32)
    millions = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"device {a.device}, {'bf16-mixed' if bf16 else 'fp32'}, torch {torch.__version__}")
    print("| measurement | value |")
    print("|---|---|")
    rows = [("UNet", unet, unet_shape, batch, c, cl) for c in (False, True) for cl in (False, True)]
    rows.append(("DiT-XL/2" if not tiny else "DiT (tiny)", dit, dit_shape, dit_batch, False, False))
    for name, net, shape, b, compiled, cl in rows:
        if compiled and tiny and not a.steps:
            continue  # compiling takes minutes on a CPU; --tiny checks the eager rows
        rate, peak = train_rate(net, shape, b, a.device, bf16, compiled, cl, steps, warmup)
        what = f"{name} ({sum(q.numel() for q in net.parameters()) / 1e6:.1f} M) train, batch {b}"
        what += ", compile" * compiled + ", channels-last" * cl
        memory = f", peak {peak:.1f} GiB" if peak is not None else ""
        print(f"| {what} | {rate:.2f} steps/s{memory} |")
    warned = ddp_stride_warning()
    print(f"| DDP grad-strides warning, channels-last UNet | {'yes' if warned else 'no'} |")
    images = sample_rate(unet, unet_shape, 16 if tiny else 256, a.device, bf16)
    print(f"| UNet ({millions:.1f} M) sampling at 20 calls | {images:.1f} images/s |")
    feature_batch = 2 if tiny else 256
    features = feature_batch / timed(inception(a.device, feature_batch), 1 if tiny else 3, a.device)
    print(f"| Inception features (float64, as evaluate.py) | {features:.1f} images/s |")
    hours = (50_000 / images + 50_000 / features) / 3600
    print(f"| 50,000 samples at 20 calls and their Inception features | {hours:.2f} h |")
    print("| Ho et al. 2020, TPU v3-8, batch 128 | 21 steps/s |")


if __name__ == "__main__":
    main()
