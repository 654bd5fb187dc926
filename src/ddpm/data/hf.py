"""Hugging Face ``datasets`` as training data (``dataset=hf dataset.path=NAME_OR_DIR``): a folder
written by ``Dataset.save_to_disk``, a folder of parquet files or images (``load_dataset`` infers
the format), or a Hub name. Images are resized and cropped (or squashed) like ``image_folder``;
a label column makes the data conditional-ready."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

import torch
from torch.utils.data import Dataset

from ddpm.checks import PositiveInt, Range
from ddpm.data.base import DataInfo, DatasetNotFoundError, DiffusionDataModule, random_hflip
from ddpm.data.images import Resize, prepare_image


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub (or the mirror in ``HF_ENDPOINT``) answers; behind a proxy, assume yes
    and let ``datasets`` find out."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_hf(path: str):
    """A ``Dataset`` or ``DatasetDict`` from a folder or the Hub, or a clear error offline."""
    try:
        import datasets
    except ImportError:
        raise DatasetNotFoundError("dataset=hf needs datasets: pip install -e '.[hf]'") from None
    folder = Path(path)
    if folder.is_dir():
        saved = (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()
        try:
            return (
                datasets.load_from_disk(str(folder))
                if saved
                else datasets.load_dataset(str(folder))
            )
        except Exception as e:  # noqa: BLE001 - datasets raises many kinds for a bad folder
            raise DatasetNotFoundError(
                f"dataset.path={folder} is not a dataset datasets can read ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:150]}); give a save_to_disk folder, or a folder of "
                f"parquet files or images"
            ) from None
    offline = (
        os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    )
    if not offline and not _hub_reachable():
        raise DatasetNotFoundError(
            f"dataset.path={path} is not a folder on disk and the Hugging Face Hub cannot be "
            f"reached (offline?). Where you are online, run datasets.load_dataset({path!r})"
            f".save_to_disk('DIR') and pass dataset.path=DIR (or set HF_DATASETS_OFFLINE=1 to use "
            f"a copy in the HF cache)"
        )
    try:
        return datasets.load_dataset(path)
    except Exception as e:  # noqa: BLE001
        raise DatasetNotFoundError(
            f"dataset.path={path} could not be loaded ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:150]}); give a folder written by save_to_disk instead"
        ) from None


class HFImages(Dataset):
    """``(image, label)`` pairs from a ``datasets.Dataset`` (label -1 without a label column)."""

    def __init__(self, ds, image_column, label_column, image_size, channels, flip, resize) -> None:
        self.ds, self.image_column, self.label_column = ds, image_column, label_column
        self.image_size, self.channels, self.flip, self.resize = image_size, channels, flip, resize

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        item = self.ds[int(i)]
        x = prepare_image(item[self.image_column], self.image_size, self.channels, self.resize)
        if self.flip:
            x = random_hflip(x)
        return x, int(item[self.label_column]) if self.label_column else -1


class HFDataModule(DiffusionDataModule):
    """``path``: a folder or Hub name; ``split`` trains; the test split is ``test_split``, else the
    dataset's ``test`` (or ``validation``) split, else ``test_fraction`` of ``split`` held out by
    a fixed seed. ``label_column`` (if the data has it) gives the classes."""

    def __init__(
        self,
        path: str,
        split: str = "train",
        test_split: str | None = None,
        image_column: str = "image",
        label_column: str | None = "label",
        image_size: PositiveInt = 64,
        channels: Literal[1, 3] = 3,
        flip: bool = True,
        resize: Resize = "crop",
        test_fraction: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.05,
        split_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.path, self.split, self.test_split = path, split, test_split
        self.image_column, self.label_column = image_column, label_column
        self.image_size, self.channels, self.flip, self.resize = image_size, channels, flip, resize
        self.test_fraction, self.split_seed = test_fraction, split_seed
        self._splits = None

    def _load(self):
        if self._splits is None:
            data = load_hf(self.path)
            if hasattr(data, "keys"):  # a DatasetDict
                if self.split not in data:
                    raise DatasetNotFoundError(
                        f"dataset.split={self.split} is not a split of {self.path}; it has "
                        f"{', '.join(data.keys())}"
                    )
                test_name = self.test_split or next(
                    (s for s in ("test", "validation") if s in data and s != self.split), None
                )
                train = data[self.split]
                test = data[test_name] if test_name else None
            else:
                train, test = data, None
            if self.image_column not in train.column_names:
                raise DatasetNotFoundError(
                    f"dataset.image_column={self.image_column} is not a column of {self.path}; its "
                    f"columns: {', '.join(train.column_names)}"
                )
            if test is None:
                perm = torch.randperm(
                    len(train), generator=torch.Generator().manual_seed(self.split_seed)
                )
                n_test = max(1, round(self.test_fraction * len(train)))
                train, test = (
                    train.select(perm[n_test:].tolist()),
                    train.select(perm[:n_test].tolist()),
                )
            self._splits = (train, test)
        return self._splits

    def _label_column(self, ds) -> str | None:
        return self.label_column if self.label_column in ds.column_names else None

    def check_available(self) -> None:
        self._load()

    @property
    def info(self) -> DataInfo:
        if self._info is None:
            train, _ = self._load()
            column = self._label_column(train)
            num_classes = None
            if column is not None:
                feature = train.features[column]
                num_classes = getattr(feature, "num_classes", None) or int(max(train[column])) + 1
            name = f"hf-{Path(self.path).name or self.path}-{self.image_size}"
            self._info = DataInfo(
                name, (self.channels, self.image_size, self.image_size), num_classes, "image"
            )
        return self._info

    @info.setter
    def info(self, value: DataInfo) -> None:
        self._info = value

    def build(self):
        train, test = self._load()
        column = self._label_column(train)
        make = lambda ds, flip: HFImages(  # noqa: E731
            ds, self.image_column, column, self.image_size, self.channels, flip, self.resize
        )
        return make(train, self.flip), make(test, False)
