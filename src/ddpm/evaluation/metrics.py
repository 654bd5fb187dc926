"""Distances between feature distributions: Fréchet (FID), KID, precision/recall, sliced
Wasserstein, MMD. Everything in float64."""

from __future__ import annotations

import torch
from torch import Tensor


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased) covariance of ``(N, D)`` features, float64."""
    f = features.double()
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / max(1, len(f) - 1)


def _sqrtm_psd(a: Tensor) -> Tensor:
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})`` (Heusel et al. 2017, eq. 6; Dowson &
    Landau 1982). ``tr (S1 S2)^{1/2} = tr (S1^{1/2} S2 S1^{1/2})^{1/2}``, computed with symmetric
    eigendecompositions in float64, which stays real and stable where ``sqrtm(S1 S2)`` does not."""
    mu1, mu2, s1, s2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    r1 = _sqrtm_psd(s1)
    inner = r1 @ s2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)


def kernel_inception_distance(
    f1: Tensor, f2: Tensor, subsets: int = 10, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
    ``(x.y / d + 1)^3``, averaged over random subsets; returns ``(mean, std)``."""
    f1, f2 = f1.double(), f2.double()
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = f1[torch.randperm(len(f1), generator=g)[:m]]
        y = f2[torch.randperm(len(f2), generator=g)[:m]]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = (kxx.sum() - kxx.diag().sum() + kyy.sum() - kyy.diag().sum()) / (
            m * (m - 1)
        ) - 2 * kxy.mean()
        vals.append(float(mmd))
    t = torch.tensor(vals, dtype=torch.float64)  # float64: a float32 tensor would round KID
    return float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0


def precision_recall(
    real: Tensor, fake: Tensor, k: int = 3, batch_size: int = 5000
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): the share of generated samples
    inside the real manifold (the union of balls reaching each real point's k-th nearest real
    neighbour) and the share of real samples inside the generated one. Distances in float64, in
    blocks of ``batch_size`` rows, so 50,000 x 50,000 needs no 20 GB matrix."""
    real, fake = real.double(), fake.double()

    def radii(x: Tensor) -> Tensor:  # the (k+1)-th smallest distance: the point itself is first
        return torch.cat(
            [torch.cdist(b, x).kthvalue(k + 1, dim=1).values for b in x.split(batch_size)]
        )

    def coverage(ref: Tensor, r: Tensor, query: Tensor) -> float:
        inside = [(torch.cdist(b, ref) <= r[None]).any(1) for b in query.split(batch_size)]
        return float(torch.cat(inside).double().mean())

    return coverage(real, radii(real), fake), coverage(fake, radii(fake), real)


def inception_score(logits: Tensor, split_size: int) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): ``exp E_x KL(p(y|x) || p(y))`` with ``p(y)`` the
    mean prediction of each consecutive block of ``split_size`` samples; returns the mean and the
    standard deviation over blocks. ADM's evaluator uses blocks of 5,000 (10 for 50,000 samples)."""
    log_p = logits.double().log_softmax(1)
    scores = []
    for block in log_p.split(split_size):
        log_marginal = block.exp().mean(0).log()
        kl = (block.exp() * (block - log_marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    t = torch.tensor(scores, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(scores) > 1 else 0.0


def sliced_wasserstein(x: Tensor, y: Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between two equal-size point clouds (Rabin et al. 2011)."""
    n = min(len(x), len(y))
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = (x[:n].double() @ theta).sort(0).values
    py = (y[:n].double() @ theta).sort(0).values
    return float(((px - py) ** 2).mean().sqrt())


def mmd_rbf(x: Tensor, y: Tensor, bandwidths=(0.05, 0.1, 0.2, 0.5, 1.0)) -> float:
    """Unbiased MMD^2 with a sum of Gaussian kernels (Gretton et al. 2012)."""
    x, y = x.double(), y.double()
    n, m = len(x), len(y)

    def k(a, b):
        d2 = torch.cdist(a, b) ** 2
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - kxx.diag().sum()) / (n * (n - 1))
        + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
        - 2 * kxy.mean()
    )


__all__ = [
    "feature_statistics",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "mmd_rbf",
    "precision_recall",
    "sliced_wasserstein",
]
