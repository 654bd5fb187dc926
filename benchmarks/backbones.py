"""Training steps per second of the digits default's UNet against DiT-S/2 on pixels, with REPA
and on a VAE's latents, measured in the same run (docs/results.md, "Transformers on the digits"
table turns the rates into seconds for the default's 2300 steps).

    python benchmarks/backbones.py --vae RUN/checkpoints/last.ckpt [--steps 60] [--repeats 2]

Each configuration is built as train.py builds it and timed under ``Trainer.fit`` (median step
time after ``--warmup`` steps); the configurations alternate, ``--repeats`` rounds, so a drift
of the machine's speed hits all alike. The last lines are each rate and its ratio to the UNet's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import lightning as L
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import framework_rate  # noqa: E402

from ddpm.cli.preflight import plain  # noqa: E402
from ddpm.config import parse_train  # noqa: E402
from ddpm.training.build import build_datamodule, build_module  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def configs(vae: str, cache: str) -> dict[str, list[str]]:
    dit = ["network=dit_s_2", "trainer.precision=bf16-mixed"]
    return {
        "unet (default)": [],
        "dit_s_2": dit,
        "dit_s_2 + REPA": [
            *dit,
            "model.repa.encoder=digits",
            "model.repa.depth=4",
            f"model.repa.cache_dir={cache}",
        ],  # fmt: skip
        "dit_s_2 on VAE latents": [
            *dit,
            "latent=vae",
            f"latent.ckpt={vae}",
            f"latent.cache_dir={cache}/latents",
        ],  # fmt: skip
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--vae", required=True, help="a checkpoint of experiment=digits_latent_ae")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "ddpm"))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args()
    runs = {}
    for name, overrides in configs(args.vae, args.cache).items():
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
            composed = compose("train", overrides=overrides)
        cfg = parse_train(plain(composed, run_dir="/tmp/ddpm-bench"))
        L.seed_everything(0, verbose=False)
        dm = build_datamodule(cfg)
        runs[name] = (cfg, build_module(cfg, dm), dm)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.repeats):
        for name in list(runs)[:: 1 if r % 2 == 0 else -1]:
            cfg, module, dm = runs[name]
            rates[name].append(framework_rate(cfg, module, dm, args.steps, args.warmup)[0])
            print(f"repeat {r + 1}: {name}: {rates[name][-1]:.2f} steps/s", flush=True)
    base = statistics.median(rates["unet (default)"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(
            f"{name}: {rate:.2f} steps/s, {2300 / rate:.0f} s for 2300 steps, {rate / base:.3f}x the UNet's rate"
        )


if __name__ == "__main__":
    main()
