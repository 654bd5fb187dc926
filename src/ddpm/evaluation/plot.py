"""Quality vs network calls from a sweep of evaluate.py runs.

python evaluate.py -m ckpt=... sampler=ddim,dpm_solver sampler.steps=10,20,50 hydra.sweep.dir=DIR
python -m ddpm.evaluation.plot DIR            # writes DIR/fid_vs_nfe.png and prints a table
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def collect(root: Path) -> list[dict]:
    """Every ``metrics.json`` under ``root``."""
    return [
        json.loads(p.read_text()) | {"path": str(p.parent)}
        for p in sorted(root.rglob("metrics.json"))
    ]


def table(rows: list[dict], metric: str = "fid") -> str:
    lines = [f"| sampler | steps | NFE | {metric} | seconds |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["sampler"], r["nfe"])):
        lines.append(
            f"| {r['sampler']} | {r.get('steps')} | {r['nfe']} | {r[metric]:.4g} | {r.get('seconds', float('nan')):.1f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, metric: str = "fid") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in sorted({r["sampler"] for r in rows}):
        pts = sorted((r["nfe"], r[metric]) for r in rows if r["sampler"] == name)
        ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations (NFE)")
    ax.set_ylabel(metric)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "root", type=Path, help="folder holding evaluate.py runs (searched recursively)"
    )
    parser.add_argument("--metric", default="fid", help="metric to plot (fid, kid, bpd, ...)")
    args = parser.parse_args(argv)
    rows = [r for r in collect(args.root) if args.metric in r]
    if not rows:
        raise SystemExit(f"error: no metrics.json with {args.metric!r} under {args.root}")
    print(table(rows, args.metric))
    print(f"wrote {plot(rows, args.root / f'{args.metric}_vs_nfe.png', args.metric)}")


if __name__ == "__main__":
    main()
