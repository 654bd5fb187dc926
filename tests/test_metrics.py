"""FID and friends against closed forms."""

import math

import pytest
import scipy.linalg
import torch

from ddpm.evaluation.distributed import shard
from ddpm.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
    sliced_wasserstein,
)


def test_frechet_distance_commuting_covariances_closed_form():
    mu1, mu2 = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    d1, d2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((d1.sqrt() - d2.sqrt()) ** 2).sum()
    got = frechet_distance(mu1, torch.diag(d1), mu2, torch.diag(d2))
    assert got == pytest.approx(expected.item(), rel=1e-12)


def test_frechet_distance_general_covariances_against_scipy(gen):
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    s1, s2 = a @ a.T + 0.1 * torch.eye(6), b @ b.T + 0.1 * torch.eye(6)
    mu1, mu2 = (
        torch.randn(6, generator=gen, dtype=torch.float64),
        torch.randn(6, generator=gen, dtype=torch.float64),
    )
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    expected = float(
        ((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * covmean.trace()
    )
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_feature_statistics_are_float64_and_unbiased(gen):
    x = torch.randn(20_000, 3, generator=gen) * torch.tensor([1.0, 2.0, 0.5]) + 1.0
    mu, cov = feature_statistics(x)
    assert mu.dtype == torch.float64 and cov.dtype == torch.float64
    assert torch.allclose(mu, torch.ones(3, dtype=torch.float64), atol=0.05)
    assert torch.allclose(
        cov.diag(), torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), rtol=0.05
    )


def test_kid_precision_recall_and_swd_separate_same_from_different(gen):
    x = torch.randn(800, 8, generator=gen)
    y = torch.randn(800, 8, generator=gen)
    z = torch.randn(800, 8, generator=gen) + 2.0
    assert abs(kernel_inception_distance(x, y, subset_size=400)[0]) < 0.02
    assert kernel_inception_distance(x, z, subset_size=400)[0] > 0.5
    p, r = precision_recall(x, y)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(x, z)
    assert p < 0.2 and r < 0.2
    assert sliced_wasserstein(x, y) < 0.15 < sliced_wasserstein(x, z)


@pytest.mark.parametrize("n,world", [(10, 1), (10, 2), (7, 3), (2, 4)])
def test_shards_cover_every_index_once(n, world):
    covered = [i for r in range(world) for i in shard(n, r, world)]
    assert covered == list(range(n))
    assert max(len(shard(n, r, world)) for r in range(world)) == math.ceil(n / world) or n < world


def test_real_feature_cache_follows_the_data(tmp_path):
    """Two datasets with the same name but different points never share cached features (a stale
    cache once scored toy2d samples against points of an older scaling)."""
    from ddpm.data import Toy2DDataModule
    from ddpm.data.base import dataset_tensors
    from ddpm.evaluation.extractors import IdentityExtractor
    from ddpm.evaluation.features import real_features

    feats = []
    for seed in (0, 1, 0):
        dm = Toy2DDataModule("moons", size=64, test_size=32, seed=seed, batch_size=16)
        dm.check_available()
        got = real_features(IdentityExtractor(), dm, tmp_path, None)
        assert torch.equal(got, dataset_tensors(dm.test_set)[0].double())
        feats.append(got)
    assert not torch.equal(feats[0], feats[1]) and torch.equal(feats[0], feats[2])
    assert len(list(tmp_path.glob("features-toy2d-moons-test-identity-*.pt"))) == 2


def test_a_corrupt_feature_cache_is_recomputed_with_a_warning(tmp_path):
    from ddpm.data import Toy2DDataModule
    from ddpm.evaluation.extractors import IdentityExtractor
    from ddpm.evaluation.features import real_features

    dm = Toy2DDataModule("moons", size=64, test_size=32, batch_size=16)
    good = real_features(IdentityExtractor(), dm, tmp_path, None)
    (path,) = tmp_path.glob("features-*.pt")
    path.write_bytes(path.read_bytes()[:50])  # truncated, as a killed writer would leave it
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        again = real_features(IdentityExtractor(), dm, tmp_path, None)
    assert torch.equal(again, good)
    assert torch.equal(torch.load(path, weights_only=True), good)  # rewritten whole
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_kid_and_its_spread_are_float64(gen):
    """KID against the same subsets computed independently in float64 (a float32 reduction
    would round it at about 1e-8 relative)."""
    x = torch.randn(300, 16, generator=gen, dtype=torch.float64) * 3 + 1e3
    y = torch.randn(300, 16, generator=gen, dtype=torch.float64) * 3 + 1e3 + 0.01
    kid, std = kernel_inception_distance(x, y, subsets=3, subset_size=100, seed=4)
    g = torch.Generator().manual_seed(4)
    vals = []
    for _ in range(3):
        a, b = x[torch.randperm(300, generator=g)[:100]], y[torch.randperm(300, generator=g)[:100]]
        k = lambda u, v: (u @ v.T / 16 + 1) ** 3  # noqa: E731
        kaa, kbb = k(a, a), k(b, b)
        off = (kaa.sum() - kaa.trace() + kbb.sum() - kbb.trace()) / (100 * 99)
        vals.append((off - 2 * k(a, b).mean()).item())
    ref = torch.tensor(vals, dtype=torch.float64)
    assert kid == ref.mean().item() and std == ref.std().item()
