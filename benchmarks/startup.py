"""How fast the entry points answer before any work: ``--help``, ``--cfg job`` and a config error
(a misspelt group), against ``python -c "import torch"``, the floor of any command that touches
a tensor. The ratios are what to read; the target is at most 1.5.

    python benchmarks/startup.py [--repeats 5]

Each command runs ``--repeats`` times, alternating with the reference; medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "train.py --help": [str(REPO / "train.py"), "--help"],
    "train.py --cfg job": [str(REPO / "train.py"), "--cfg", "job"],
    "train.py schedul=cosine (error)": [str(REPO / "train.py"), "schedul=cosine"],
    "sample.py --help": [str(REPO / "sample.py"), "--help"],
    "evaluate.py protocol=edn (error)": [str(REPO / "evaluate.py"), "ckpt=x", "protocol=edn"],
}


def seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch_times, rows = [], {}
    for _ in range(a.repeats):
        for name, args in COMMANDS.items():
            torch_times.append(seconds(["-c", "import torch"]))
            rows.setdefault(name, []).append(seconds(args))
    floor = statistics.median(torch_times)
    print(f"import torch: {floor:.2f} s (median of {len(torch_times)})")
    for name, times in rows.items():
        t = statistics.median(times)
        print(f"{name}: {t:.2f} s, ratio {t / floor:.2f}")


if __name__ == "__main__":
    main()
