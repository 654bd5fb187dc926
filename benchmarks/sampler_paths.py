"""Our samplers on the exact networks of every path: the Gaussian, the spectrum and the mixture of
``benchmarks/samplers.py``, each data's optimal network for a path's own target (through its
preconditioning: eps on ddpm and vp, F on edm, velocity on flow), against that path's own
probability-flow ODE.

    OMP_NUM_THREADS=1 python benchmarks/sampler_paths.py [--quick]

In noise levels every path is the same ODE on the ``x / alpha`` scale, so with the same levels a
sampler gives the same samples on every path (to float rounding: the first rows of the output
check it); what differs is each path's range of levels (ddpm 0.01..157, vp 0.01..152, edm
0.002..80, flow 0.002..999) and what a spacing in the path's own time means there.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from samplers import BUDGETS, DATA, OURS_ODE, OURS_SDE, SCHED, fd, ours, path_error

from ddpm.paths import DDPMPath, EDMPath, FlowPath, VPPath
from ddpm.samplers import Denoiser, sample, step_levels
from ddpm.samplers.unipc import unipc

PATHS = {"ddpm": DDPMPath(SCHED), "vp": VPPath(), "edm": EDMPath(), "flow": FlowPath()}


def invariance(n: int) -> None:
    """The same levels on every path: unipc's samples from the same x / alpha start."""
    data = DATA["mixture"]
    sigmas = step_levels(PATHS["edm"], 10, "karras")
    x_T = 80.0 * torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = {name: unipc(Denoiser(data.network(p), p), x_T, sigmas) for name, p in PATHS.items()}
    ref = out["edm"]
    diffs = ", ".join(f"{k} {(v - ref).abs().max().item():.1e}" for k, v in out.items())
    print(f"same levels on every path (unipc, 10 Karras levels of edm), max |x - x_edm|: {diffs}\n")


def measure(n_ode: int, n_sde: int, tol: float) -> None:
    print("| data | sampler | " + " | ".join(PATHS) + " |\n|---|---|" + "---|" * len(PATHS))
    for (dname, data), name in itertools.product(DATA.items(), [*OURS_ODE, *OURS_SDE]):
        cells = []
        for path in PATHS.values():
            n = n_sde if name in OURS_SDE else n_ode
            x_T = torch.randn(n, data.dim, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64)  # fmt: skip
            net = data.network(path)
            ref = None if name in OURS_SDE else sample(net, path, x_T, "ode", rtol=tol, atol=tol)
            errs = []
            for budget in BUDGETS:
                x, _ = ours(name, net, x_T, budget, path=path)
                errs.append(fd(x, data) if ref is None else path_error(x, ref))
            cells.append(" / ".join(f"{e:.1e}" for e in errs))
        print(f"| {dname} | {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n(cells: NFE {', '.join(map(str, BUDGETS))}; path error for deterministic, FD for "
          f"stochastic samplers)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer samples, looser reference")
    args = p.parse_args()
    n_ode, n_sde, tol = (500, 4000, 1e-8) if args.quick else (4000, 40000, 1e-10)
    t0 = time.perf_counter()
    invariance(n_ode)
    measure(n_ode, n_sde, tol)
    print(f"\n(measured in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
