"""Checkpoint writing through a temp file and an atomic rename."""

from __future__ import annotations

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ddpm.checkpoint import atomic_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, but a kill during a save can never truncate ``last.ckpt``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        atomic_save(checkpoint, path)
