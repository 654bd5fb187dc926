"""Score a checkpoint: ``python evaluate.py ckpt=PATH [num_samples=N] [sampler=...] [bpd=true]``.

Samples on every device (``trainer.devices=N``), then writes ``metrics.json`` with FID (and KID,
precision/recall or point-cloud distances), bits/dim with ``bpd=true``, and what was run. A VAE
checkpoint (``model=vae``) is sampled from its prior; its bits/dim are its ELBO and
importance-weighted bound.
"""

from ddpm.cli import run

if __name__ == "__main__":
    run("evaluate", "ddpm.evaluation:evaluate")  # imported once the config is checked
