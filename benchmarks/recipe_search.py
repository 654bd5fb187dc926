"""Collect a recipe search into one table and one plot: runs trained by ``python train.py -m``
sweeps, each scored by ``python evaluate.py`` into ``RUN/eval/metrics.json``.

    python train.py -m hydra.sweep.dir=results/search/STAGE AXIS=a,b AXIS2=c,d ...
    for run in results/search/STAGE/*/; do
        python evaluate.py ckpt=$run/checkpoints/last.ckpt num_samples=1000 hydra.run.dir=$run/eval
    done
    python benchmarks/recipe_search.py results/search --out results/recipe_search

writes ``OUT.md`` (a markdown table, one row per evaluation, best FID first), ``OUT.csv`` and
``OUT.png`` (FID against training seconds). Every ``RUN/eval*/metrics.json`` is a row, so a run
scored with several samplers (``hydra.run.dir=$run/eval_ddpm100``) shows each. A run's overrides
are read from its ``.hydra/overrides.yaml`` and its training time from ``timing.json`` (written
by the RunSummary callback).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import yaml

FIELDS = ("fid", "confident_share", "real_confident_share", "precision", "recall", "nfe", "sampler")


def collect(root: Path) -> list[dict]:
    """One row per evaluation (``RUN/eval*/metrics.json``) of every trained run, best FID first."""
    rows = []
    for ckpt in sorted(root.rglob("checkpoints/last.ckpt")):
        run = ckpt.parent.parent
        overrides_path = run / ".hydra" / "overrides.yaml"
        if not overrides_path.is_file():
            continue
        overrides = [
            o for o in yaml.safe_load(overrides_path.read_text()) or [] if "hydra." not in o
        ]
        timing_path = run / "timing.json"
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        for metrics_path in sorted(run.glob("eval*/metrics.json")):
            metrics = json.loads(metrics_path.read_text())
            rows.append(
                {
                    "run": str(run.relative_to(root)),
                    "overrides": " ".join(overrides) or "(none: the default at the time)",
                    "steps": timing.get("steps"),
                    "train_seconds": timing.get("train_seconds"),
                    **{k: metrics.get(k) for k in FIELDS},
                }
            )
    return sorted(rows, key=lambda r: r["fid"])


def sweep_commands(root: Path) -> list[str]:
    """The ``train.py -m`` command of every sweep under ``root`` (from Hydra's multirun.yaml)."""
    out = []
    for path in sorted(root.rglob("multirun.yaml")):
        cfg = yaml.safe_load(path.read_text())
        task = cfg.get("hydra", {}).get("overrides", {}).get("task", [])
        out.append(f"python train.py -m hydra.sweep.dir={path.parent} " + " ".join(task))
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)


def write(rows: list[dict], out: Path, commands: list[str] = ()) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cols = ["run", "overrides", "steps", "train_seconds", *FIELDS]
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    header = ["# Recipe search", "", "Sweeps (each run then scored by evaluate.py, see "
              "benchmarks/recipe_search.py):", "", "```", *commands, "```", ""]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(header + lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    samplers = sorted({f"{r['sampler']}-{r['nfe']}" for r in rows})
    for name in samplers:
        pts = [r for r in rows if f"{r['sampler']}-{r['nfe']}" == name and r["train_seconds"]]
        ax.scatter([r["train_seconds"] for r in pts], [r["fid"] for r in pts], s=18, label=name)
        for r in pts:
            ax.annotate(r["run"], (r["train_seconds"], r["fid"]), fontsize=6)
    ax.legend(fontsize=7, title="evaluate.py sampler-NFE", title_fontsize=7)
    ax.set_xlabel("training seconds (as measured: timing.json)")
    ax.set_ylabel("FID (digit-classifier features)")
    ax.grid(alpha=0.3)
    fig.savefig(out.with_suffix(".png"), dpi=130, bbox_inches="tight")
    plt.close(fig)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("root", type=Path)
    p.add_argument("--out", type=Path, default=Path("results/recipe_search"))
    a = p.parse_args(argv)
    rows = collect(a.root)
    if not rows:
        raise SystemExit(f"error: no trained and evaluated runs under {a.root}")
    write(rows, a.out, sweep_commands(a.root))


if __name__ == "__main__":
    main()
