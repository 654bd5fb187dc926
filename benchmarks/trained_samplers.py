"""Samplers on trained networks: FID and confident share of each sampler setting at a budget of
network calls, on checkpoints of any path (the exact-denoiser benchmark, ``samplers.py``, ranks
solvers of an ODE; a trained network's samples at 5-20 calls are not that ODE's).

    python benchmarks/trained_samplers.py --ckpt ddpm=RUN/checkpoints/last.ckpt edm=... \\
        --nfe 5 10 20 35 --num-samples 1000 --out results/trained_samplers [--sweep]

Each checkpoint is loaded once; for each setting (sampler, spacing, options, ``denoiser.clip_x0``,
``denoiser.quantize``) the samples are drawn as evaluate.py draws them (sample ``i`` seeded by
``(seed, i)``, every class in turn on a conditional checkpoint) and scored against the test split
with evaluate.py's feature extractor. Heun gets the most steps whose ``2 steps - 1`` calls fit the
budget. Writes ``OUT.csv`` (every row) and ``OUT.md`` (the best setting per checkpoint and
budget, and each sampler at its defaults; then each sampler's settings ranked by the geometric
mean of FID over every checkpoint and budget). Without ``--sweep`` only the defaults run.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import time
from pathlib import Path

import torch
from samplers import steps_for

from ddpm.evaluation.features import make_extractor, real_features, score_samples
from ddpm.evaluation.loading import load_model
from ddpm.evaluation.sampling import make_labels
from ddpm.models import SamplingOptions
from ddpm.samplers import builtin_sampler

DETERMINISTIC = ("ddim", "dpm_solver", "unipc", "ipndm", "euler", "heun")
STOCHASTIC = ("ddpm", "dpm_solver_sde")
SWEEP_SPACINGS = ("quadratic", "logsnr", "karras")


def settings(sweep: bool) -> list[dict]:
    """Each sampler at its defaults, and with ``sweep`` the other spacings, its defaults without
    x0 clipping, the earlier defaults of the multistep and SDE solvers, churn for Euler and Heun,
    exact levels on a discrete chain and two more SDE strengths."""
    names = (*DETERMINISTIC, *STOCHASTIC)
    out = [{"sampler": n} for n in names]
    if not sweep:
        return out
    for name, spacing in itertools.product(names, SWEEP_SPACINGS):
        if spacing != builtin_sampler(name).spacing:
            out.append({"sampler": name, "spacing": spacing})
    out += [{"sampler": name, "clip_x0": False} for name in names]
    out += [{"sampler": "dpm_solver", "order": "auto"}, {"sampler": "unipc", "order": 2}]
    out += [{"sampler": n, "spacing": "karras", "s_churn": 80.0} for n in ("euler", "heun")]
    for name in ("dpm_solver", "unipc", "heun", "euler"):
        out.append({"sampler": name, "spacing": "karras", "quantize": False})
    out += [{"sampler": "dpm_solver_sde", "eta": eta} for eta in (1.0, 2.0)]
    return out


def run(checkpoints: dict[str, str], budgets, n: int, seed: int, sweep: bool, cache: Path):
    rows = []
    for label, path in checkpoints.items():
        loaded = load_model(path)
        dm = loaded.datamodule()
        extractor = make_extractor(loaded, dm, None, cache)
        real = real_features(extractor, dm, cache, None)
        labels = make_labels(loaded, None, n)
        path_name = loaded.model.path.name
        discrete = loaded.model.path.discrete
        for setting, nfe in itertools.product(settings(sweep), budgets):
            if "quantize" in setting and not discrete:
                continue
            name = setting["sampler"]
            own = {k: v for k, v in setting.items() if k not in ("sampler", "clip_x0", "quantize")}
            spec = builtin_sampler(name).updated(name, steps=steps_for(name, nfe), **own)
            options = SamplingOptions(
                clip_x0=setting.get("clip_x0", True), quantize=setting.get("quantize", True)
            )
            start = time.perf_counter()
            x, info = loaded.model.generate(spec, options, range(n), seed, 500, labels)
            m = score_samples(x, extractor, real, None)
            rows.append({
                "checkpoint": label, "path": path_name, "budget": nfe, "nfe": info["nfe"],
                "sampler": name,
                "spacing": spec.spacing, "defaults": len(setting) == 1,
                "options": " ".join(f"{k}={v}" for k, v in setting.items()
                                    if k not in ("sampler", "spacing")),
                "fid": round(m["fid"], 3), "confident_share": round(m["confident_share"], 3),
                "out_of_range": round(float((x.abs() > 1.05).double().mean()), 4),
                "seconds": round(time.perf_counter() - start, 1),
            })  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """The best setting per checkpoint and budget, then each sampler's defaults."""
    lines = ["| checkpoint | calls | best FID / confident (setting) | defaults: FID per sampler |",
             "|---|---|---|---|"]  # fmt: skip
    key = lambda r: (r["checkpoint"], r["budget"])  # noqa: E731
    for (ckpt, budget), group in itertools.groupby(sorted(rows, key=key), key):
        group = list(group)
        best = min(group, key=lambda r: r["fid"])
        plain = [r for r in group if r["defaults"]]
        defaults = ", ".join(
            f"{r['sampler']} {r['fid']:.2f}" for r in sorted(plain, key=lambda r: r["fid"])
        )
        setting = f"{best['sampler']} {best['spacing']} {best['options']}".strip()
        lines.append(f"| {ckpt} | {budget} | {best['fid']:.2f} / {best['confident_share']:.3f} "
                     f"({setting}) | {defaults} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def ranking(rows: list[dict]) -> str:
    """Per sampler, its settings by the rule the defaults are chosen by: the geometric mean of
    FID over each path's checkpoints and budgets, then over the paths (each path weighs the
    same, however many checkpoints it has); with the mean confident share."""
    paths = sorted({r["path"] for r in rows})
    lines = [f"| sampler | setting | FID, geometric mean | {' | '.join(paths)} | confident |",
             "|---|---|---|" + "---|" * len(paths) + "---|"]  # fmt: skip
    cells = {(r["checkpoint"], r["budget"]) for r in rows}
    by = lambda r: (r["sampler"], r["spacing"], r["options"])  # noqa: E731
    scores = []
    for (name, spacing, options), group in itertools.groupby(sorted(rows, key=by), by):
        group = list(group)
        if len(group) < len(cells):  # a setting that ran on part of the checkpoints only
            continue
        per = {
            p: math.exp(sum(math.log(r["fid"]) for r in group if r["path"] == p)
                        / sum(r["path"] == p for r in group))
            for p in paths
        }  # fmt: skip
        fid = math.exp(sum(math.log(v) for v in per.values()) / len(per))
        conf = sum(r["confident_share"] for r in group) / len(group)
        scores.append((name, fid, f"{spacing} {options}".strip(), per, conf))
    for name, fid, setting, per, conf in sorted(scores):
        cols = " | ".join(f"{per[p]:.2f}" for p in paths)
        lines.append(f"| {name} | {setting} | {fid:.2f} | {cols} | {conf:.3f} |")
    return "\n".join(lines) + "\n"


def read_rows(path: Path) -> list[dict]:
    """The rows of an earlier run's CSV, typed back."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in ("budget", "nfe"):
            r[key] = int(r[key])
        for key in ("fid", "confident_share", "out_of_range", "seconds"):
            r[key] = float(r[key])
        r["defaults"] = r["defaults"] == "True"
        r.setdefault("path", r["checkpoint"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ckpt", nargs="+", help="LABEL=PATH of each checkpoint")
    p.add_argument("--report", help="only tabulate the rows of this earlier run's CSV")
    p.add_argument("--nfe", nargs="+", type=int, default=[5, 10, 20, 35])
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "ddpm"))
    p.add_argument("--out", default="results/trained_samplers")
    a = p.parse_args()
    out = Path(a.out)
    if a.report:
        rows = read_rows(Path(a.report))
    else:
        checkpoints = dict(item.split("=", 1) for item in a.ckpt or [])
        torch.set_grad_enabled(False)
        rows = run(checkpoints, a.nfe, a.num_samples, a.seed, a.sweep, Path(a.cache_dir))
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    out.with_suffix(".md").write_text(table(rows) + "\n" + ranking(rows))
    print(table(rows) + "\n" + ranking(rows))


if __name__ == "__main__":
    main()
