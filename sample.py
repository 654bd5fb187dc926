"""Draw samples from a checkpoint: ``python sample.py ckpt=PATH [sampler=ddim] [num_samples=64]``.

Writes ``samples.npz``, ``samples.png`` (and ``trajectory.png`` with ``trajectory=true``) into the
run dir. Sample ``i`` depends only on ``(seed, i)``, whatever ``batch_size`` or ``trainer.devices``.
"""

from ddpm.cli import run

if __name__ == "__main__":
    run("sample", "ddpm.evaluation:sample")  # imported once the config is checked
