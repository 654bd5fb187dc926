"""Train a diffusion model (or the VAE baseline, ``model=vae``): ``python train.py [overrides]``.

See README.md and ``python train.py --help``; the config tree is conf/ (root: conf/train.yaml).
"""

from ddpm.cli import run
from ddpm.training import train

if __name__ == "__main__":
    run("train", train)
