"""Any folder of images (e.g. Stanford Cars): resized to ``image_size`` and centre-cropped
(``resize=crop``) or squashed to a square (``resize=squash``, the seed homework's transform)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Literal

import torch
from torch.utils.data import Dataset

from ddpm.checks import PositiveInt, Range
from ddpm.data.base import DataInfo, DatasetNotFoundError, DiffusionDataModule, random_hflip
from ddpm.data.images import Resize, prepare_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageFiles(Dataset):
    """Images under ``root`` (recursively); labels from the first-level sub-folder when
    ``class_folders``. Unreadable files are skipped with a warning (``on_corrupt="skip"``) or
    refused, naming the file (``"fail"``), when the dataset is built."""

    def __init__(
        self,
        files: list[Path],
        image_size: int,
        channels: int,
        labels: list[int] | None,
        flip: bool,
        resize: Resize = "crop",
    ) -> None:
        self.files, self.labels, self.flip = files, labels, flip
        self.image_size, self.channels, self.resize = image_size, channels, resize

    def __len__(self) -> int:
        return len(self.files)

    def load(self, path: Path) -> torch.Tensor:
        from PIL import Image

        with Image.open(path) as img:
            return prepare_image(img, self.image_size, self.channels, self.resize)

    def __getitem__(self, i: int):
        x = self.load(self.files[i])
        if self.flip:
            x = random_hflip(x)
        return x, (self.labels[i] if self.labels is not None else -1)


class ImageFolderDataModule(DiffusionDataModule):
    """``root``: the folder; ``test_fraction`` of the files (a fixed, seeded choice) is held out."""

    def __init__(
        self,
        root: str = "data/images",
        image_size: PositiveInt = 64,
        channels: Literal[1, 3] = 3,
        flip: bool = True,
        class_folders: bool = False,
        test_fraction: Annotated[float, Range(0, 1, hi_open=True)] = 0.05,
        on_corrupt: Literal["fail", "skip"] = "fail",
        split_seed: int = 0,
        resize: Resize = "crop",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if on_corrupt not in ("skip", "fail"):
            raise ValueError(f"on_corrupt must be 'skip' or 'fail', got {on_corrupt!r}")
        self.root, self.image_size, self.channels, self.flip = (
            Path(root),
            image_size,
            channels,
            flip,
        )
        self.class_folders, self.test_fraction, self.on_corrupt = (
            class_folders,
            test_fraction,
            on_corrupt,
        )
        self.split_seed, self.resize = split_seed, resize
        self.classes: list[str] = []
        num_classes = None
        if class_folders and self.root.is_dir():
            self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            num_classes = len(self.classes) or None
        self.info = DataInfo(
            f"folder-{self.root.name}-{image_size}",
            (channels, image_size, image_size),
            num_classes,
            "image",
        )

    def check_available(self) -> list[Path]:
        """The readable image files; raises naming the folder (missing, empty) or the bad file."""
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"image folder dataset.root={self.root.resolve()} does not exist: point dataset.root at a "
                f"folder of images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        files = list_images(self.root)
        if not files:
            raise DatasetNotFoundError(
                f"image folder dataset.root={self.root.resolve()} holds no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        from PIL import Image

        good = []
        for f in files:
            try:
                with Image.open(f) as img:
                    img.verify()
                good.append(f)
            except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files
                if self.on_corrupt == "fail":
                    raise ValueError(
                        f"corrupt image {f}: {e}; remove it or set dataset.on_corrupt=skip"
                    ) from None
                warnings.warn(f"skipping corrupt image {f}: {e}", stacklevel=2)
        if not good:
            raise DatasetNotFoundError(f"no readable images in dataset.root={self.root.resolve()}")
        return good

    def build(self):
        files = self.check_available()
        labels = None
        if self.class_folders:
            index = {c: i for i, c in enumerate(self.classes)}
            labels = [index.get(f.relative_to(self.root).parts[0], -1) for f in files]
        perm = torch.randperm(
            len(files), generator=torch.Generator().manual_seed(self.split_seed)
        ).tolist()
        # test_fraction=0 trains on every image; the test split is then the training images
        n_test = max(1, round(self.test_fraction * len(files))) if self.test_fraction > 0 else 0
        n_test = min(n_test, len(files) - 1)
        split = {"test": perm[:n_test], "train": perm[n_test:] or perm}

        def subset(idx, flip):
            return ImageFiles(
                [files[i] for i in idx],
                self.image_size,
                self.channels,
                [labels[i] for i in idx] if labels else None,
                flip,
                self.resize,
            )

        return subset(split["train"], self.flip), subset(split["test"] or split["train"], False)
