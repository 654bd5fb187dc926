"""Evaluation protocols' parts: ADM's .npz format, the metrics against torch-fidelity on the same
features, sFID's and FD-DINOv2's features against independent float64 references."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.nn import functional as F

from conftest import inception_weights
from ddpm.data.npz import ImageBatch, NpzError, read_batch, write_reference
from ddpm.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from ddpm.evaluation.protocol import aggregate


def test_npz_images_read_the_same_from_adm_diffusers_and_our_layouts(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)  # NHWC
    layouts = {
        "adm": {"arr_0": u8},
        "diffusers": {"arr_0": u8.astype(np.float32) / 255},  # output_type="np": [0, 1]
        "ours": {"samples": u8.transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1},
        "ours_images": {"images": u8, "samples": np.zeros((5, 3, 6, 7), np.float32)},
    }
    for name, arrays in layouts.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        got = read_batch(tmp_path / f"{name}.npz").images
        assert got.dtype == torch.uint8 and got.shape == (5, 3, 6, 7), name
        assert torch.equal(got, torch.from_numpy(u8).permute(0, 3, 1, 2)), name
    grey = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "grey.npz", grey)
    assert read_batch(tmp_path / "grey.npz").images.shape == (4, 1, 8, 8)
    np.savez(tmp_path / "bad.npz", labels=np.arange(3))
    with pytest.raises(NpzError, match="bad.npz holds \\['labels'\\]; expected images"):
        read_batch(tmp_path / "bad.npz")
    np.savez(tmp_path / "nan.npz", np.full((2, 4, 4, 3), np.nan, np.float32))
    with pytest.raises(NpzError, match="NaN"):
        read_batch(tmp_path / "nan.npz")
    with pytest.raises(NpzError, match="does not exist"):
        read_batch(tmp_path / "missing.npz")


def test_reference_batches_round_trip_in_adm_keys(tmp_path):
    images = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    mu, sigma = torch.randn(5, dtype=torch.float64), torch.eye(5, dtype=torch.float64)
    batch = ImageBatch(images, {"pool": (mu, sigma), "spatial": (mu[:2], sigma[:2, :2])})
    batch.meta = {"split": "train", "feature_extractor": "inception-v3-compat"}
    path = write_reference(tmp_path / "ref.npz", batch)
    with np.load(path) as f:  # what ADM's evaluator reads
        assert f["arr_0"].shape == (6, 4, 4, 3) and f["arr_0"].dtype == np.uint8
        assert set(f.files) >= {"mu", "sigma", "mu_s", "sigma_s", "split"}
    back = read_batch(path)
    assert torch.equal(back.images, images) and back.meta["split"] == "train"
    assert torch.equal(back.stats["pool"][0], mu) and torch.equal(
        back.stats["spatial"][1], sigma[:2, :2]
    )


def test_metrics_agree_with_torch_fidelity_on_the_same_features(gen):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    real = torch.randn(600, 16, generator=gen, dtype=torch.float64)
    fake = 0.9 * torch.randn(500, 16, generator=gen, dtype=torch.float64) + 0.3
    theirs = fid_statistics_to_metric(
        fid_features_to_statistics(fake), fid_features_to_statistics(real), verbose=False
    )["frechet_inception_distance"]
    ours = frechet_distance(*feature_statistics(fake), *feature_statistics(real))
    assert ours == pytest.approx(theirs, rel=1e-8)
    # KID on all features (one subset of every sample: no sampling difference left)
    kid = kid_features_to_metric(
        fake, real[:500], kid_subsets=1, kid_subset_size=500, kid_degree=3, kid_gamma=None,
        kid_coef0=1, rng_seed=0, verbose=False,
    )["kernel_inception_distance_mean"]  # fmt: skip
    assert kernel_inception_distance(fake, real[:500], 1, 500)[0] == pytest.approx(kid, rel=1e-6)
    logits = torch.randn(1000, 10, generator=gen, dtype=torch.float64) * 3
    isc = isc_features_to_metric(logits, splits=10, shuffle=False)
    mean, std = inception_score(logits, split_size=100)
    assert mean == pytest.approx(isc["inception_score_mean"], rel=1e-6)
    assert std == pytest.approx(isc["inception_score_std"], rel=1e-5)
    prc = prc_features_to_metric(
        fake, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False
    )
    p, r = precision_recall(real, fake, batch_size=128)  # blocks give the same counts
    assert (p, r) == (
        pytest.approx(prc["precision"], abs=1e-7),
        pytest.approx(prc["recall"], abs=1e-7),
    )


def test_inception_score_of_sure_and_uniform_predictions():
    sure = torch.eye(10).repeat(10, 1) * 50  # each class predicted with certainty, equally often
    assert inception_score(sure, 100)[0] == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.zeros(100, 10), 100)[0] == pytest.approx(1.0)


def test_best_and_mean_over_seed_sets():
    sets = [{"fid": 3.0, "is": 5.0, "sampler": "x"}, {"fid": 2.0, "is": 7.0, "sampler": "x"}]
    best, spread = aggregate(sets, "best")
    assert best["fid"] == 2.0 and best["is"] == 7.0 and best["sampler"] == "x"
    assert spread["fid"]["values"] == [3.0, 2.0] and spread["fid"]["std"] == pytest.approx(0.5**0.5)
    assert aggregate(sets, "mean")[0]["fid"] == 2.5


def _fd_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance by numpy and scipy.linalg.sqrtm in float64 (TTUR's and ADM's formula)."""
    m1, m2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_sfid_features_are_adm_spatial_block_and_distances_match_a_float64_reference(tmp_path):
    from ddpm.evaluation.extractors import InceptionExtractor

    ext = InceptionExtractor(inception_weights(tmp_path), batch_size=4)
    seen = []  # the layer ADM names mixed_6/conv, taken by a hook of our own
    ext.model.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: seen.append(o))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(12, 3, 16, 16, generator=g) * 2 - 1, torch.rand(12, 3, 16, 16, generator=g)
    fx, fy = ext.features(x, ("pool", "spatial", "logits")), ext.features(y, ("spatial",))
    expected = torch.cat(seen[:3])[:, :7].permute(0, 2, 3, 1).reshape(12, -1)  # NHWC order
    assert fx["spatial"].shape == (12, 17 * 17 * 7) and fx["logits"].shape == (12, 1008)
    assert torch.allclose(fx["spatial"], expected.double())
    got = frechet_distance(*feature_statistics(fx["spatial"]), *feature_statistics(fy["spatial"]))
    assert got == pytest.approx(
        _fd_reference(fx["spatial"].numpy(), fy["spatial"].numpy()), rel=1e-6
    )


def test_fd_dinov2_class_tokens_and_distance_match_a_float64_reference(tmp_path):
    timm = pytest.importorskip("timm")
    from ddpm.evaluation.dinov2 import DINOv2Extractor

    arch = dict(depth=1, embed_dim=32, num_heads=2, img_size=56)
    torch.manual_seed(0)
    net = timm.create_model(
        "vit_small_patch14_dinov2", num_classes=0, dynamic_img_size=True, **arch
    )
    torch.save(net.state_dict(), tmp_path / "dinov2.pth")
    ext = DINOv2Extractor(
        tmp_path / "dinov2.pth", arch="vit_small_patch14_dinov2", image_size=28, **arch
    )
    g = torch.Generator().manual_seed(1)
    x, y = (
        torch.rand(10, 3, 8, 8, generator=g) * 2 - 1,
        torch.rand(10, 1, 8, 8, generator=g) * 2 - 1,
    )
    fx, fy = ext(x), ext(y)
    img = torch.round((x + 1) * 127.5).clamp(0, 255)  # the saved image, resized and normalised
    img = F.interpolate(img, size=(28, 28), mode="bicubic", antialias=True) / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        cls = net.eval().forward_features((img - mean[:, None, None]) / std[:, None, None])[:, 0]
    assert fx.shape == (10, 32) and fx.dtype == torch.float64
    assert torch.allclose(fx, cls.double(), atol=1e-5)
    got = frechet_distance(*feature_statistics(fx), *feature_statistics(fy))
    assert got == pytest.approx(_fd_reference(fx.numpy(), fy.numpy()), rel=1e-6)
    with pytest.raises(FileNotFoundError, match="dinov2_vitl14_pretrain.pth"):
        DINOv2Extractor(tmp_path / "none.pth")
