"""How closely our FID, KID, Inception Score and precision/recall agree with torch-fidelity's on
the same features, and our Fréchet distance with the scipy.linalg.sqrtm formula of ADM's
evaluator (TTUR's), which sFID and FD-DINOv2 share.

    python benchmarks/metric_agreement.py [--n 5000] [--dim 2048] [--repeats 3]

Features are Gaussian with a random covariance (the shape of Inception pool features); each line
prints the largest relative difference over the repeats (absolute for precision and recall).
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from ddpm.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)


def features(n: int, dim: int, g: torch.Generator, shift: float) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    return torch.randn(n, dim, generator=g, dtype=torch.float64) @ a + shift


def adm_fd(f1: torch.Tensor, f2: torch.Tensor) -> float:
    (m1, s1), (m2, s2) = feature_statistics(f1), feature_statistics(f2)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    diff = (m1 - m2).numpy()
    return float(diff @ diff + np.trace(s1.numpy()) + np.trace(s2.numpy()) - 2 * np.trace(covmean))


def one(n: int, dim: int, seed: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(seed)
    real, fake = features(n, dim, g, 0.0), features(n, dim, g, 0.05)
    ours = frechet_distance(*feature_statistics(fake), *feature_statistics(real))
    theirs = fid_statistics_to_metric(
        fid_features_to_statistics(fake), fid_features_to_statistics(real), verbose=False
    )["frechet_inception_distance"]
    m = min(n, 1000)  # KID on one subset of all m: the subsets' sampling differs, the estimate not
    kid = kid_features_to_metric(
        fake[:m], real[:m], kid_subsets=1, kid_subset_size=m, kid_degree=3, kid_gamma=None,
        kid_coef0=1, rng_seed=0, verbose=False,
    )["kernel_inception_distance_mean"]  # fmt: skip
    logits = torch.randn(n, 1008, generator=g, dtype=torch.float64) * 4
    isc = isc_features_to_metric(logits, splits=10, shuffle=False)["inception_score_mean"]
    prc = prc_features_to_metric(
        fake[:m], real[:m], prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False,
        verbose=False,
    )  # fmt: skip
    p, r = precision_recall(real[:m], fake[:m])
    return {
        "fid vs torch-fidelity (relative)": abs(ours - theirs) / theirs,
        "fid vs ADM's sqrtm formula (relative)": abs(ours - adm_fd(fake, real)) / ours,
        "kid vs torch-fidelity (relative)": abs(
            kernel_inception_distance(fake[:m], real[:m], 1, m)[0] - kid
        )
        / abs(kid),
        "inception score vs torch-fidelity (relative)": abs(
            inception_score(logits, n // 10)[0] - isc
        )
        / isc,
        "precision vs torch-fidelity (absolute)": abs(p - prc["precision"]),
        "recall vs torch-fidelity (absolute)": abs(r - prc["recall"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    rows = [one(a.n, a.dim, seed) for seed in range(a.repeats)]
    print(f"{a.n} x {a.dim} features, {a.repeats} repeats; the largest difference:")
    for key in rows[0]:
        print(f"  {key}: {max(r[key] for r in rows):.1e}")


if __name__ == "__main__":
    main()
