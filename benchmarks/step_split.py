"""Where a training run's time goes: train.py under Lightning's SimpleProfiler, grouped by part.

    python benchmarks/step_split.py                       # the default run (make train), 2000 steps
    python benchmarks/step_split.py trainer.max_steps=500 # any train.py overrides
    python benchmarks/step_split.py --run-dir DIR         # keep the run (checkpoints, grids)

Runs ``train.py OVERRIDES +trainer.profiler=simple`` in a temporary run dir, reads the profiler's
report from its output and prints one row per part of the run — data, forward + loss, backward,
optimizer (Adam, clipping, zero_grad), EMA, validation, sample grids, checkpoints, progress and
logging, the start-up figures, and the rest (Lightning's loop) — as seconds and as a share of the
profiled total. The profiler's own overhead is small (a timer around each hook).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (part, pattern on the profiler's action name); the first match wins.
PARTS = [
    ("data", r"train_dataloader_next|batch_to_device|transfer_batch|before_batch_transfer|"
     r"after_batch_transfer|DataModule\.(setup|train_dataloader)"),
    ("forward + loss", r"\[Strategy\]\w+\.training_step$"),
    ("backward", r"\[Strategy\]\w+\.backward$"),
    ("EMA update", r"\[LightningModule\]\w+\.on_train_batch_end$"),
    ("validation", r"validation_step$|val_next$|DataModule\.val_dataloader|on_validation_model"),
    ("sample grids", r"\[Callback\]SampleGrid\."),
    ("checkpoints", r"\[Callback\](ModelCheckpoint|LastCheckpoint)"),
    ("progress + logging", r"\[Callback\](StepProgress|RunSummary)\.|LearningRateMonitor"),
    ("start-up figures", r"\[Callback\](ForwardNoisingFigure|DatasetGrid)\."),
]  # fmt: skip
NESTED_IN_OPTIMIZER = ("forward + loss", "backward")


def parse_report(text: str) -> dict[str, float]:
    """Action -> total seconds, from SimpleProfiler's table."""
    totals = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] and cells[0] != "Action":
            try:
                totals[cells[0]] = float(cells[3])
            except ValueError:
                continue
    return totals


def split(totals: dict[str, float]) -> list[tuple[str, float]]:
    """Seconds by part. The optimizer step wraps the forward and backward (Lightning's closure),
    so the optimizer's own share is its total minus those two."""
    parts = {name: 0.0 for name, _ in PARTS}
    optimizer = 0.0
    for action, seconds in totals.items():
        if action in ("Total", "run_training_epoch", "run_training_batch"):
            continue
        if re.search(r"\.optimizer_step$", action):
            optimizer += seconds
            continue
        for name, pattern in PARTS:
            if re.search(pattern, action):
                parts[name] += seconds
                break
    optimizer -= sum(parts[n] for n in NESTED_IN_OPTIMIZER)
    rows = [(n, parts[n]) for n, _ in PARTS[:3]] + [("optimizer (Adam, clipping)", optimizer)]
    rows += [(n, parts[n]) for n, _ in PARTS[3:]]
    total = totals.get("Total", sum(s for _, s in rows))
    rows.append(("the rest (Lightning's loop, hooks)", total - sum(s for _, s in rows)))
    rows.append(("total", total))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="train.py overrides")
    p.add_argument("--run-dir", help="keep the run here (default: a temporary dir)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = a.run_dir or f"{tmp}/run"
        cmd = [sys.executable, str(REPO / "train.py"), *a.overrides, "+trainer.profiler=simple",
               f"hydra.run.dir={run_dir}"]  # fmt: skip
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    totals = parse_report(proc.stdout + proc.stderr)
    if "Total" not in totals:
        raise SystemExit("error: no profiler report in train.py's output")
    rows = split(totals)
    total = rows[-1][1]
    print(f"python train.py {' '.join(a.overrides)}  (SimpleProfiler)")
    print("| part | seconds | share |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {100 * seconds / total:.1f}% |")


if __name__ == "__main__":
    main()
