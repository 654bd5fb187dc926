"""Callbacks: sample grids from the EMA weights, the forward-noising figure, safe last checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from ddpm.checkpoint import atomic_save
from ddpm.checks import NonNegativeInt, PositiveInt, Range
from ddpm.config.schema import DenoiserConfig
from ddpm.data.base import dataset_tensors
from ddpm.figures import save_image_grid, save_scatter, save_strip
from ddpm.samplers import SamplerSpec
from ddpm.training.errors import NonFiniteLossError


def _log_image(trainer: L.Trainer, key: str, path: Path, step: int) -> None:
    """Send a saved PNG to image-capable loggers (TensorBoard, W&B); CSV has no images."""
    import numpy as np
    from PIL import Image

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            arr = np.asarray(Image.open(path).convert("RGB"))
            logger.experiment.add_image(key, arr, step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=step)


def _reference_points(trainer: L.Trainer, n: int = 2000) -> torch.Tensor | None:
    dm = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning, not declared
    ds = dm.test_set
    return dataset_tensors(ds, n)[0]


class SampleGrid(Callback):
    """Every ``every_n_steps`` (and at the end of training) draw ``num_samples`` with the EMA
    weights, the same seeded noise each time, and save ``dirpath/step_XXXXXXX.png`` (a grid, or
    a scatter over the data for 2-D sets); also sent to the logger as an image. ``sampler`` and
    ``denoiser`` are the run's (``sampler=...``, ``denoiser.*``), passed in by train.py."""

    def __init__(
        self,
        dirpath: str = "samples",
        every_n_steps: NonNegativeInt = 1000,
        num_samples: PositiveInt = 64,
        seed: int = 0,
        sampler: SamplerSpec | None = None,
        denoiser: DenoiserConfig | None = None,
    ) -> None:
        self.dirpath, self.every_n_steps, self.num_samples = (
            Path(dirpath),
            every_n_steps,
            num_samples,
        )
        self.sampler, self.seed = sampler, seed
        self.denoiser = denoiser or DenoiserConfig()
        self._last_step = -1

    def _draw(self, trainer: L.Trainer, module) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step == self._last_step:
            return
        self._last_step = step
        labels = None
        classes = module.data.num_classes
        if module.hparams.get("conditional") and classes:
            labels = torch.arange(self.num_samples, device=module.device) % classes
        x = module.generate(
            self.num_samples,
            self.seed,
            self.sampler,
            labels=labels,
            options=self.denoiser.options(),
        )
        path = self.dirpath / f"step_{step:07d}.png"
        if x.ndim == 4:
            save_image_grid(x, path, nrow=classes if labels is not None else None)
        else:
            save_scatter(x, path, _reference_points(trainer), title=f"step {step}")
        _log_image(trainer, "samples", path, step)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self._draw(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        self._draw(trainer, module)


def to_pixels(module, x: torch.Tensor) -> torch.Tensor:
    """``x`` as images: a latent model's training data and noised latents decoded."""
    autoencoder = (getattr(module, "latent", None) or (None,))[0]
    return x if autoencoder is None else autoencoder.decode(x)


class ForwardNoisingFigure(Callback):
    """At the start of training: a few training examples at ``num_frames`` evenly spaced times
    of the forward process from the data to the prior (eq. 31 on the discrete chain:
    ``t = 0 .. T``; :meth:`ddpm.paths.Path.display_levels`), each frame labelled with its time,
    in ``dirpath/forward_noising.png`` (the seed homework's figure)."""

    def __init__(
        self,
        dirpath: str = "samples",
        num_images: PositiveInt = 8,
        num_frames: Annotated[int, Range(2)] = 10,
    ) -> None:
        self.dirpath, self.num_images, self.num_frames = Path(dirpath), num_images, num_frames

    def on_train_start(self, trainer, module) -> None:
        if not trainer.is_global_zero or trainer.global_step > 0:
            return
        ds = trainer.datamodule.train_set
        n = self.num_images if ds[0][0].ndim == 3 else min(len(ds), 2000)
        path = getattr(module, "path", None)
        if path is None:  # a model without a forward process (model=vae)
            return
        x0 = dataset_tensors(ds, n)[0]
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        levels = path.display_levels(self.num_frames)
        frames = [x0 + level * noise for level in levels]  # on the x / alpha scale
        frames = [to_pixels(module, f * path.scale_at(v)) for f, v in zip(frames, levels)]
        save_strip(frames, self.dirpath / "forward_noising.png", [path.describe(v) for v in levels])


class DatasetGrid(Callback):
    """Once, when a run starts: a grid of ``num_images`` real training images (a scatter of the
    training points for 2-D data) in ``dirpath/dataset_grid.png``: what the model should learn
    to draw (the seed homework's first figure)."""

    def __init__(self, dirpath: str = "samples", num_images: PositiveInt = 64) -> None:
        self.dirpath, self.num_images = Path(dirpath), num_images

    def on_train_start(self, trainer, module) -> None:
        path = self.dirpath / "dataset_grid.png"
        if not trainer.is_global_zero or trainer.global_step > 0 or path.exists():
            return
        ds = trainer.datamodule.train_set
        if ds[0][0].ndim == 3:
            x = dataset_tensors(ds, self.num_images)[0]
            save_image_grid(to_pixels(module, x), path)
        else:
            x = dataset_tensors(ds, 2000)[0]
            save_scatter(x, path, title="training data")


class LastCheckpoint(Callback):
    """Owns ``last.ckpt``: refreshed every ``every_n_train_steps``, written at the end of training,
    and on Ctrl-C, SIGTERM or a crash before exiting, unless the run stopped on a non-finite loss
    (the weights may be poisoned: the last good checkpoint is kept). Writes are atomic
    (:class:`ddpm.training.checkpoint_io.AtomicCheckpointIO`)."""

    def __init__(
        self, dirpath: str = "checkpoints", every_n_train_steps: NonNegativeInt = 1000
    ) -> None:
        self.dirpath, self.every_n_train_steps = Path(dirpath), every_n_train_steps

    def _save(self, trainer) -> None:
        trainer.save_checkpoint(self.dirpath / "last.ckpt", weights_only=False)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every_n_train_steps > 0 and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_train_end(self, trainer, module) -> None:
        self._save(trainer)

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        if isinstance(exception, NonFiniteLossError) or trainer.global_step == 0:
            return
        self._save(trainer)


class EMASnapshots(Callback):
    """Post-hoc EMA snapshots (``ema=posthoc``): every ``every`` steps and at the end of training,
    the module's power-function averages (``module.averages()``) saved as
    ``dirpath/step_XXXXXXX.pt`` by rank 0: float32 tensors and plain values only (loadable with
    ``torch.load(weights_only=True)``), written atomically, so a kill leaves a snapshot whole or
    absent. ``t`` is the averages' step count (EDM2's ``t``)."""

    def __init__(self, dirpath: str | Path, every: PositiveInt = 500) -> None:
        self.dirpath, self.every = Path(dirpath), every
        self._saved_t = -1

    def _save(self, trainer, module) -> None:
        t = module._ema_updates
        if not trainer.is_global_zero or t == 0 or t == self._saved_t:
            return
        self._saved_t = t
        snapshot = {
            "t": t,
            "sigma_rels": list(module.ema_sigma_rels),
            "gammas": list(module.ema_gammas),
            "averages": [
                {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
                 for k, v in average.state_dict().items()}
                for average in module.averages()
            ],
        }  # fmt: skip
        atomic_save(snapshot, self.dirpath / f"step_{trainer.global_step:07d}.pt")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self._save(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        self._save(trainer, module)

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        if not isinstance(exception, NonFiniteLossError):  # as last.ckpt: its step's averages
            self._save(trainer, module)
