"""A batch of generated samples as the training data: distilling a sampler into a model.

A few-step model tuned on the real data learns that data's probability flow; tuned on samples a
teacher drew with its best sampler, it learns the distribution that sampler draws, which is what
it is compared against. This is distillation through the teacher's samples, as in Luhman &
Luhman (2021) (a one-step student of DDIM's output) and LADD (Sauer et al. 2024, a student trained
on the teacher's synthetic images); ``docs/fewstep.md`` measures it.

The training split is the file's samples; everything else is the real data's (``real``): the test
split, the description networks are sized from, and so evaluation (``evaluate.py`` compares
against the real data and, for digits, trains its classifier on the real training split).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ddpm.checks import ConfigError
from ddpm.data.base import DataInfo, DatasetNotFoundError, DiffusionDataModule, TensorPairs
from ddpm.data.npz import LABEL_KEYS, NpzError, read_batch, read_labels


class SamplesDataModule(DiffusionDataModule):
    """``path``: ``sample.py``'s ``samples.npz`` (its ``images`` and ``labels``; points from its
    ``samples``) or an ADM-format batch (``arr_0``, labels ``arr_1``); ``real``: the data module
    of the data the samples imitate (its test split, its description)."""

    def __init__(self, path: str, real: DiffusionDataModule, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(real, DiffusionDataModule):
            raise ConfigError(
                f"dataset.real={real!r} is not a dataset: give the data the samples imitate as a "
                f"node with a _target_, e.g. dataset.real._target_=ddpm.data.DigitsDataModule"
            )
        self.path, self.real = Path(path).expanduser(), real
        self._has_labels: bool | None = None

    @property
    def info(self) -> DataInfo:
        return self._described(self.real.info)

    @info.setter
    def info(self, value: DataInfo) -> None:
        raise AttributeError("a batch of samples is described by its real data (dataset.real)")

    @property
    def declared_info(self) -> DataInfo | None:
        info = self.real.declared_info
        return None if info is None else self._described(info)

    def _described(self, info: DataInfo) -> DataInfo:
        """The real data's description; without classes when the file holds no labels (an
        unconditional student: ``model.conditional=auto`` follows)."""
        return info if self._labelled() else replace(info, num_classes=None)

    def _labelled(self) -> bool:
        if self._has_labels is None:
            if not self.path.is_file():
                return True  # refused, naming the file, when the data is loaded
            try:
                with np.load(self.path, allow_pickle=False) as f:
                    self._has_labels = any(k in f.files for k in LABEL_KEYS)
            except (OSError, ValueError):
                return True  # refused, naming the file, when the data is loaded
        return self._has_labels

    @property
    def real_data(self) -> DiffusionDataModule:
        return self.real.real_data

    def check_available(self) -> object:
        if not self.path.is_file():
            raise DatasetNotFoundError(
                f"dataset.path={self.path} does not exist: draw the samples first "
                f"(python sample.py ckpt=TEACHER num_samples=N ...) and point dataset.path at "
                f"its samples.npz"
            )
        return self.real.check_available()

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples in [-1, 1] and their labels (``-1`` each where the file has none: the data
        is then unlabelled, and the student unconditional)."""
        self.check_available()
        info = self.info
        try:
            if info.is_image:
                batch = read_batch(self.path)
                x, labels = batch.data_space().float(), batch.labels
            else:
                with np.load(self.path, allow_pickle=False) as f:
                    if "samples" not in f.files:
                        raise NpzError(f"{self.path} holds {sorted(f.files)}; expected samples")
                    x = torch.from_numpy(f["samples"]).float()
                    labels = read_labels(f, len(x), self.path)
        except NpzError as e:
            raise DatasetNotFoundError(f"dataset.path: {e}") from None
        except (OSError, ValueError) as e:  # points: np.load's own errors
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DatasetNotFoundError(
                f"dataset.path={self.path} is not a readable .npz file ({first})"
            ) from None
        if tuple(x.shape[1:]) != tuple(info.shape):
            raise DatasetNotFoundError(
                f"dataset.path={self.path} holds samples of shape {tuple(x.shape[1:])}; the real "
                f"data ({info.name}) has {tuple(info.shape)}"
            )
        if labels is None:
            labels = torch.full((len(x),), -1)
        elif info.num_classes and not ((labels >= -1) & (labels < info.num_classes)).all():
            raise DatasetNotFoundError(
                f"dataset.path={self.path} has labels outside 0..{info.num_classes - 1}"
            )
        return x, labels

    def build(self):
        return TensorPairs(*self.load()), self.real.test_set
