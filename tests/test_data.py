"""Data modules on small files the tests write themselves."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm.data import (
    DatasetNotFoundError,
    DiffusionDataModule,
    DigitsDataModule,
    ImageFolderDataModule,
    TorchvisionDataModule,
    Toy2DDataModule,
)
from ddpm.data.base import CheckedDataset, TensorPairs


def test_digits_are_on_the_256_level_grid_in_unit_range():
    dm = DigitsDataModule(batch_size=32)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    levels = (x + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert set(y.tolist()) <= set(range(10))
    assert len(dm.train_set) + len(dm.test_set) == 1797


@pytest.mark.parametrize("name", ["moons", "swissroll", "gaussians"])
def test_toy2d(name):
    dm = Toy2DDataModule(name, size=500, test_size=100, batch_size=64)
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 2) and x.abs().max() < 1.6
    fresh = Toy2DDataModule(name, size=500, fresh=True)
    a = torch.stack([fresh.train_set[0][0] for _ in range(5)])
    assert not torch.allclose(a[0], a[1:])  # a new draw each time
    with pytest.raises(ValueError, match="moons, swissroll, gaussians"):
        Toy2DDataModule("nope")


def _write_pngs(root, n=6, size=20, sub=None):
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / (sub[i % len(sub)] if sub else "")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)).save(
            d / f"img{i}.png"
        )


def test_image_folder_resizes_crops_and_labels(tmp_path):
    _write_pngs(tmp_path, 8, sub=["a", "b"])
    dm = ImageFolderDataModule(
        str(tmp_path), image_size=16, class_folders=True, test_fraction=0.25, batch_size=4
    )
    assert dm.info.num_classes == 2
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert set(y.tolist()) <= {0, 1}
    assert len(dm.train_set) == 6 and len(dm.test_set) == 2


def test_image_folder_empty_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ImageFolderDataModule(str(tmp_path / "nope")).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds no images"):
        ImageFolderDataModule(str(tmp_path / "empty")).setup()
    _write_pngs(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="corrupt image .*broken.png.*on_corrupt=skip"):
        ImageFolderDataModule(str(tmp_path / "imgs"), image_size=8).setup()
    with pytest.warns(UserWarning, match="skipping corrupt image"):
        dm = ImageFolderDataModule(
            str(tmp_path / "imgs"), image_size=8, on_corrupt="skip", test_fraction=0.34
        )
        dm.setup()
    assert len(dm.train_set) + len(dm.test_set) == 3


def test_cifar10_from_a_fake_batch_file_and_missing_message(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        TorchvisionDataModule("cifar10", data_dir=str(tmp_path)).check_available()
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            "labels": list(range(4)),
        }
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    dm = TorchvisionDataModule("cifar10", data_dir=str(tmp_path), batch_size=4)
    # our fake files have no official checksums
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert set(y.tolist()) <= {0, 1, 2, 3}
    assert len(dm.train_set) == 20 and len(dm.test_set) == 4


def test_nan_input_is_caught_with_its_index():
    x = torch.zeros(5, 2)
    x[3, 1] = float("nan")
    ds = CheckedDataset(TensorPairs(x), "toy")
    ds[2]
    with pytest.raises(ValueError, match="item 3 of dataset 'toy' contains NaN"):
        ds[3]


def test_the_data_states_its_shape_and_classes_or_they_are_read_off_it():
    assert DigitsDataModule().info.shape == (1, 8, 8) and DigitsDataModule().info.num_classes == 10

    class Plain(DiffusionDataModule):  # a user's data module that states nothing
        def build(self):
            x = torch.rand(20, 3, 4, 4) * 2 - 1
            return TensorPairs(x, torch.arange(20) % 4), TensorPairs(x[:5])

    info = Plain().info
    assert info.shape == (3, 4, 4) and info.num_classes == 4 and info.is_image


def test_download_offline_says_what_to_provide_not_to_download(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.cifar as cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    dm = TorchvisionDataModule("cifar10", data_dir=str(tmp_path), download=True)
    with pytest.raises(DatasetNotFoundError) as e:
        dm.check_available()
    message = str(e.value)
    assert "could not be downloaded" in message and "cifar-10-batches-py" in message
    assert "download=true" not in message
