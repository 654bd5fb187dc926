"""The Inception (RGB) FID path, offline, with a weights file the test writes (random weights of
the right architecture); the real file is used the same way when present."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import QUIET, inception_weights, run_cli
from ddpm.evaluation.extractors import INCEPTION_FILE, InceptionExtractor


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return inception_weights(tmp_path_factory.mktemp("inception"))


def test_features_are_float64_and_batch_size_invariant(weights):
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    a = InceptionExtractor(weights, batch_size=6)(x)
    b = InceptionExtractor(weights, batch_size=2)(x)
    assert a.shape == (6, 2048) and a.dtype == torch.float64
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_missing_and_unsafe_weights_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=INCEPTION_FILE + ".*fid.weights_path"):
        InceptionExtractor(tmp_path / "nope.pth")

    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    bad = tmp_path / "bad.pth"
    torch.save({"x": Payload()}, bad)
    with pytest.raises(ValueError, match="refusing Inception weights"):
        InceptionExtractor(bad)


@pytest.mark.slow
def test_evaluate_rgb_checkpoint_with_inception_offline_and_cached(weights, tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(images / f"{i}.png")
    run = tmp_path / "run"
    run_cli(
        "train.py",
        "dataset=image_folder",
        f"dataset.root={images}",
        "dataset.image_size=16",
        "dataset.batch_size=4",
        "dataset.num_workers=0",
        "dataset.test_fraction=0.34",
        "network=simple_unet",
        "network.channels=[8,16]",
        "trainer.max_steps=2",
        f"hydra.run.dir={run}",
        "callbacks.sample_grid.num_samples=4",
        "sampler.steps=2",
        "trainer.limit_val_batches=0",
        *QUIET,
    )
    cache = tmp_path / "cache"
    for name in ("first", "second"):
        run_cli(
            "evaluate.py",
            f"ckpt={run}/checkpoints/last.ckpt",
            "num_samples=6",
            "sampler.steps=2",
            f"fid.weights_path={weights}",
            f"fid.cache_dir={cache}",
            f"hydra.run.dir={tmp_path / name}",
            "progress=false",
        )
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        assert m["feature_extractor"] == "inception-v3-compat" and np.isfinite(m["fid"])
        assert {"kid", "precision", "recall"} <= set(m)
    cached = list(cache.glob("features-*-test-inception-v3-compat-*.pt"))
    assert len(cached) == 1 and torch.load(cached[0], weights_only=True).shape == (4, 2048)
    assert json.loads((tmp_path / "first" / "metrics.json").read_text())["fid"] == pytest.approx(
        json.loads((tmp_path / "second" / "metrics.json").read_text())["fid"], rel=1e-12
    )
