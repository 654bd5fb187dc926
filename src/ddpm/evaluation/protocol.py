"""Scores by protocol: the named metrics of one seed set of samples against a reference, and the
headline and spread over several seed sets (``metrics.json``'s ``spread``)."""

from __future__ import annotations

import torch
from torch import Tensor

from ddpm.config.protocol import LOWER_IS_BETTER, METRIC_SPACES, ProtocolConfig
from ddpm.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from ddpm.evaluation.reference import Reference

DISTANCES = {"fid": "pool", "sfid": "spatial", "fd_dinov2": "dinov2"}


def score_features(
    fake: dict[str, Tensor], reference: Reference, metrics, protocol: ProtocolConfig
) -> dict[str, float]:
    """``metrics`` (names of ``METRIC_SPACES``) of generated features ``fake`` (space -> (N, D))
    against ``reference``. Fréchet distances use the reference's statistics; KID and
    precision/recall its features; the Inception Score needs no reference."""
    out: dict[str, float] = {}
    for name in metrics:
        space = METRIC_SPACES[name]
        if name in DISTANCES:
            out[name] = frechet_distance(
                *feature_statistics(fake[space]), *reference.statistics(space)
            )
        elif name == "is":
            out["is"], out["is_std"] = inception_score(fake["logits"], protocol.is_split_size)
        elif name == "kid":
            real = reference.features["pool"]
            m = min(1000, len(fake["pool"]), len(real))
            out["kid"], out["kid_std"] = kernel_inception_distance(
                fake["pool"], real, subset_size=m
            )
    if {"precision", "recall"} & set(metrics):
        real = reference.features["pool"][: protocol.pr_reference]
        p, r = precision_recall(real, fake["pool"][: protocol.pr_samples])
        out |= {k: v for k, v in (("precision", p), ("recall", r)) if k in metrics}
    return out


def aggregate(per_set: list[dict], report: str) -> tuple[dict, dict]:
    """The headline of each number over seed sets (``best``: the lowest distance or the highest
    score, as EDM reports FID; ``mean``) and its spread: mean, standard deviation (n - 1),
    min, max and the values in seed order. Non-numbers are taken from the first set."""
    headline, spread = dict(per_set[0]), {}
    for key, first in per_set[0].items():
        if not isinstance(first, (int, float)) or isinstance(first, bool):
            continue
        values = [float(m[key]) for m in per_set]
        t = torch.tensor(values, dtype=torch.float64)
        std = float(t.std()) if len(values) > 1 else 0.0
        spread[key] = {
            "mean": float(t.mean()), "std": std, "min": min(values), "max": max(values),
            "values": values,
        }  # fmt: skip
        if report == "best" and key in LOWER_IS_BETTER:
            headline[key] = min(values)
        elif report == "best" and not key.endswith("_std"):
            headline[key] = max(values)
        else:
            headline[key] = float(t.mean())
    return headline, spread
