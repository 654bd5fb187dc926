"""Quality against network calls (or any swept value) from a sweep of evaluate.py runs.

python evaluate.py -m ckpt=... sampler=ddim,dpm_solver sampler.steps=10,20,50 hydra.sweep.dir=DIR
python -m ddpm.evaluation.plot DIR            # writes DIR/fid_vs_nfe.png and prints a table
python -m ddpm.evaluation.plot DIR --x guidance_scale --by guidance   # DIR/fid_vs_guidance_scale.png
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


def label(row: dict, by: str) -> str:
    """The line a run belongs to: the value of ``by`` in its metrics, or with ``by=guidance``
    the kind of guidance (CFG, CFG with an interval, autoguidance, with its interval)."""
    if by != "guidance":
        return str(row.get(by))
    kind = "autoguidance" if row.get("guidance_model") else "CFG"
    interval = row.get("guidance_interval")
    return f"{kind}, interval {interval}" if interval else kind


def table(rows: list[dict], metric: str = "fid", x: str = "nfe", by: str = "sampler") -> str:
    column = "steps" if x == "nfe" else x  # against NFE, the steps that cost it
    lines = [f"| {by} | {column} | NFE | {metric} | seconds |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (label(r, by), r[x])):
        lines.append(
            f"| {label(r, by)} | {r.get(column)} | {r['nfe']} | {r[metric]:.4g} | "
            f"{r.get('seconds', float('nan')):.1f} |"
        )
    return "\n".join(lines)


def plot(
    rows: list[dict], path: Path, metric: str = "fid", x: str = "nfe", by: str = "sampler"
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in sorted({label(r, by) for r in rows}):
        pts = sorted((r[x], r[metric]) for r in rows if label(r, by) == name)
        ax.plot(*zip(*pts), marker="o", label=name)
    if x == "nfe":
        ax.set_xscale("log")
    ax.set_xlabel("network evaluations (NFE)" if x == "nfe" else x)
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
    parser.add_argument(
        "--x", default="nfe", help="the swept value on the x axis (nfe, guidance_scale, ...)"
    )
    parser.add_argument(
        "--by", default="sampler", help="one line per value of this key (guidance: per kind)"
    )
    args = parser.parse_args(argv)
    rows = [r for r in collect(args.root) if args.metric in r and r.get(args.x) is not None]
    if not rows:
        raise SystemExit(
            f"error: no metrics.json with {args.metric!r} and {args.x!r} under {args.root}"
        )
    print(table(rows, args.metric, args.x, args.by))
    out = args.root / f"{args.metric}_vs_{args.x}.png"
    print(f"wrote {plot(rows, out, args.metric, args.x, args.by)}")


if __name__ == "__main__":
    main()
