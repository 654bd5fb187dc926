"""Train and score the comparison table of docs/results.md by the commands it shows.

    python benchmarks/results_table.py [--root results] [--only digits|toy2d] [--dry-run]

Every step is a plain ``train.py`` / ``evaluate.py`` / ``python -m ddpm.estimate_gamma``
command, run in a subprocess and timed. A step whose output already exists is skipped, so an
interrupted run picks up where it stopped. The tables are printed as Markdown and written to
``ROOT/DATASET.md``; each row names the command that produced it.

Every command runs with ``OMP_NUM_THREADS=1`` (set here unless already set) and the table
reports its CPU seconds, so the two halves can run side by side on a 2-core machine
(``--only digits`` and ``--only toy2d``): the digits half is about 1.5 CPU hours (five trainings
of ~10 minutes, DDPM-1000 sampling, bits/dim), the toy2d half about 20 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# dataset -> run name -> train.py overrides
TRAININGS: dict[str, dict[str, list[str]]] = {
    "digits": {  # the recipe the table was measured with (experiment=digits_v1)
        "linear-eps": ["experiment=digits_v1"],
        "cosine-eps": ["experiment=digits_v1", "schedule=cosine"],
        "linear-v": ["experiment=digits_v1", "model.prediction=v"],
        "learned": [
            "experiment=digits_v1",
            "model.variance=learned_range",
            "model.loss=hybrid",
        ],
        "vae": ["experiment=digits_vae"],
    },
    "toy2d": {
        "linear-eps": ["experiment=toy2d"],
        "cosine-eps": ["experiment=toy2d", "schedule=cosine"],
        "linear-v": ["experiment=toy2d", "model.prediction=v"],
        "learned": [
            "experiment=toy2d",
            "model.variance=learned_range",
            "model.loss=hybrid",
        ],
        "vae": ["experiment=toy2d_vae"],
    },
}

# step lists pinned to those the table was measured with (the samplers' defaults have changed)
DDIM50 = ["sampler=ddim", "sampler.steps=50", "sampler.spacing=uniform"]
DDPM50 = ["sampler=ddpm", "sampler.steps=50", "sampler.spacing=uniform"]


@dataclass
class Row:
    """One line of a table: ``evaluate.py`` on the checkpoint of ``run`` with ``overrides``."""

    group: str
    label: str
    run: str
    overrides: list[str]
    bpd: bool = True
    needs_gamma: bool = False
    extra: list[str] = field(default_factory=list)


ROWS: list[Row] = [
    Row("schedule", "linear", "linear-eps", DDIM50),
    Row("schedule", "cosine", "cosine-eps", DDIM50),
    Row("prediction", "eps", "linear-eps", DDIM50),
    Row("prediction", "v", "linear-v", DDIM50),
    Row("variance", "fixed_small", "linear-eps", DDPM50 + ["denoiser.variance=fixed_small"]),
    Row("variance", "fixed_large", "linear-eps", DDPM50 + ["denoiser.variance=fixed_large"]),
    Row("variance", "learned_range", "learned", DDPM50),
    Row(
        "variance",
        "analytic",
        "linear-eps",
        DDPM50 + ["denoiser.variance=analytic"],
        needs_gamma=True,
    ),
    Row("sampler", "DDPM-1000", "linear-eps", ["sampler=ddpm", "sampler.steps=1000"], bpd=False),
    Row("sampler", "DDIM-50", "linear-eps", DDIM50, bpd=False),
    Row(
        "sampler",
        "DPM-Solver-20",
        "linear-eps",
        ["sampler=dpm_solver", "sampler.steps=20", "sampler.spacing=logsnr", "sampler.order=2"],
        bpd=False,
    ),
    Row("model", "VAE", "vae", [], extra=["iw_samples=256"]),
    Row("model", "DDPM (linear, eps)", "linear-eps", DDIM50),
]

EVAL = {
    "digits": ["num_samples=1000", "bpd_examples=64"],
    "toy2d": ["num_samples=2000", "bpd_examples=1000"],
}


def _child_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_step(cmd: list[str], done: Path, log: Path, dry: bool) -> float | None:
    """Run ``cmd`` unless ``done`` exists; returns the CPU seconds (user + system) it took, read
    back if cached. CPU time, not wall-clock time, so that a busy machine does not change it."""
    stamp = done.with_name(done.name + ".seconds")
    if done.exists() and stamp.exists():
        return float(stamp.read_text())
    print("$", " ".join(cmd), flush=True)
    if dry:
        return None
    log.parent.mkdir(parents=True, exist_ok=True)
    start = _child_cpu_seconds()
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    seconds = _child_cpu_seconds() - start
    if rc != 0:
        sys.exit(f"step failed (exit {rc}), see {log}: {' '.join(cmd)}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(f"{seconds:.1f}\n")
    return seconds


def fmt(value, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def sample_cell(m: dict) -> str:
    """FID; for points, the Fréchet distance of the coordinates and the MMD (which sees shape)."""
    if "mmd" in m:
        return f"{fmt(m['fid'], '.2g')} / {fmt(m['mmd'], '.2g')}"
    fid = m.get("fid")
    return fmt(fid, ".2f" if fid is not None and fid >= 1 else ".2g")


def with_error(m: dict, key: str) -> str:
    """``value ± standard error`` (the error over the test examples, see ``bpd_stderr``)."""
    err = m.get(f"{key}_stderr")
    return fmt(m.get(key)) + ("" if err is None else f" ± {err:.3f}")


def bpd_cell(m: dict) -> str:
    """The VLB (diffusion) or the ELBO and the importance-weighted bound (VAE)."""
    if "bpd_iw" in m:
        return f"{with_error(m, 'bpd')} (IW-{m['bpd_iw_samples']}: {with_error(m, 'bpd_iw')})"
    return with_error(m, "bpd")


def table(dataset: str, root: Path, dry: bool, groups: set[str] | None = None) -> str:
    py = sys.executable
    base = root / dataset
    lines = [
        f"| {dataset} | choice | train CPU s | eval CPU s | {'FD / MMD' if dataset == 'toy2d' else 'FID'} "
        "| bits/dim | overrides (train.py, then evaluate.py) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        if groups and row.group not in groups:
            continue
        run_dir = base / row.run
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        train_cmd = [py, "train.py", f"hydra.run.dir={run_dir}", *TRAININGS[dataset][row.run]]
        train_seconds = run_step(train_cmd, ckpt, run_dir / "train.log", dry)
        if row.needs_gamma:
            gamma_cmd = [py, "-m", "ddpm.estimate_gamma", str(ckpt), "--num-examples", "256"]
            gamma_seconds = run_step(
                gamma_cmd, base / row.run / "gamma.done", base / row.run / "gamma.log", dry
            )
            if not dry:
                (base / row.run / "gamma.done").touch()
        name = "_".join([row.run, *row.overrides, *row.extra, "bpd" if row.bpd else "nobpd"])
        out = base / "eval" / name.replace("=", "-").replace("/", "-")
        cmd = [
            py,
            "evaluate.py",
            f"ckpt={ckpt}",
            f"hydra.run.dir={out}",
            "progress=false",
            *EVAL[dataset],
            *row.overrides,
            *row.extra,
            *(["bpd=true"] if row.bpd else []),
        ]
        seconds = run_step(cmd, out / "metrics.json", out / "evaluate.log", dry)
        if row.needs_gamma and seconds is not None:
            seconds += gamma_seconds  # estimating Gamma_n is part of the analytic row's cost
        m = json.loads((out / "metrics.json").read_text()) if not dry else {}
        shown = " ".join([*TRAININGS[dataset][row.run], *row.overrides, *row.extra]) or "(defaults)"
        lines.append(
            f"| {row.group} | {row.label} | {fmt(train_seconds, '.0f')} | {fmt(seconds, '.0f')} "
            f"| {sample_cell(m)} | {bpd_cell(m)} | `{shown}` |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # no oversubscription when run side by side
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, default=ROOT / "results")
    p.add_argument("--only", choices=sorted(TRAININGS), action="append")
    p.add_argument(
        "--groups",
        help="comma-separated row groups to run (schedule, prediction, variance, sampler, model); "
        "two invocations with disjoint groups can share the work",
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    a = p.parse_args(argv)
    for dataset in a.only or sorted(TRAININGS):
        groups = set(a.groups.split(",")) if a.groups else None
        markdown = table(dataset, a.root.resolve(), a.dry_run, groups)
        print(markdown, flush=True)
        if not a.dry_run and not groups:
            (a.root / f"{dataset}.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
