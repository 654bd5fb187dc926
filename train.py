"""Train a diffusion model (or the VAE baseline, ``model=vae``): ``python train.py [overrides]``.

See README.md and ``python train.py --help``; the config tree is conf/ (root: conf/train.yaml).
"""

from ddpm.cli import run

if __name__ == "__main__":
    run("train", "ddpm.training:train")  # imported once the config is checked
