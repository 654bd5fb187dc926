"""Sampler accuracy against diffusers on exact denoisers, and per-step overhead.

    pip install -e '.[bench]'                       # diffusers, optional
    OMP_NUM_THREADS=1 python benchmarks/samplers.py [--quick] [--sweep]

Exact eps oracles (:class:`ddpm.oracles.GaussianMixture`, linear T = 1000 schedule), so every
error is the sampler's: ``spectrum``, an 8-D Gaussian with stds 1..0.01 (the scales of images in
[-1, 1]); ``gaussian``, isotropic 2-D (std 0.5), on which a linear sampler's error is one signed
number that crosses zero as the budget grows (a cell can be won on a crossing); ``mixture``, three
narrow 2-D Gaussians (stds 0.08-0.15). At NFE budgets 5, 10, 20, 50: deterministic samplers by
``path``, the mean distance to the PF-ODE solution from the same x_T (Dormand-Prince at 1e-10,
checked against 1e-11); stochastic ones by ``FD`` of random Fourier features against true draws
(:func:`fd`), with its floor (true draws of the same size).

Ours run at their ``conf/sampler`` defaults through ``ddpm.samplers.sample`` (only ``steps``
set); diffusers' schedulers through ``set_timesteps`` / ``scale_model_input`` / ``step``, at their
defaults (``clip_sample=False`` for DDIM/DDPM: clipping is about the data range, not the solver),
at their best ``timestep_spacing`` x ``use_karras_sigmas`` per budget and denoiser ("best"), and at
the one setting best over all budgets and denoisers ("best overall", the rule our defaults are
chosen by), each fed the eps oracle at the (possibly fractional) timestep it passes (driven by
``benchmarks/diffusers_schedulers.py``). Each runs the most steps whose calls fit the budget
(Heun ``2 n - 1``: 5, 9, 19, 49; PNDM's Runge-Kutta start ``n + 9``: "over budget" at 5 and 10,
cells it leaves out of its "best overall"): cells show ``@nfe`` when it differs. ``--sweep``
ranks our own spacings/options (how the defaults were chosen).

``benchmarks/sampler_paths.py`` runs ours on the exact networks of every path.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import time

import torch
from diffusers_schedulers import CHURN, THEIRS_ODE, THEIRS_SDE, label, scheduler_class, settings
from diffusers_schedulers import theirs as run_theirs

from ddpm.evaluation.metrics import feature_statistics, frechet_distance
from ddpm.oracles import GaussianMixture
from ddpm.samplers import SPACINGS, sample
from ddpm.schedule import make_schedule

SCHED = make_schedule("linear", 1000)
DATA = {  # scales 1..0.01; an isotropic 2-D Gaussian; three narrow components (the widest 0.15)
    "spectrum": GaussianMixture.gaussian(torch.linspace(-0.3, 0.3, 8), torch.logspace(0, -2, 8)),
    "gaussian": GaussianMixture.gaussian(torch.tensor([0.3, -0.2]), 0.5),
    "mixture": GaussianMixture(torch.tensor([0.2, 0.3, 0.5]).double(),
                               torch.tensor([[-0.7, -0.3], [0.6, 0.5], [0.2, -0.6]]).double(),
                               torch.tensor([0.08, 0.15, 0.1]).double()),
}  # fmt: skip
BUDGETS = (5, 10, 20, 50)
OURS_ODE = {m: (m, {}) for m in ("ddim", "euler", "heun", "ipndm", "dpm_solver", "unipc")}
OURS_SDE = {
    "ddpm": ("ddpm", {}), "dpm_solver_sde": ("dpm_solver_sde", {}),
    "euler churn": ("euler", {"s_churn": CHURN}), "heun churn": ("heun", {"s_churn": CHURN}),
}  # fmt: skip
# ours -> diffusers' scheduler of the same kind (DPM-Solver++ against both of diffusers' orders)
COUNTERPARTS = [("ddim", "DDIM"), ("euler", "Euler"), ("heun", "Heun"), ("unipc", "UniPC"),
                ("dpm_solver", "DPM++2M"), ("dpm_solver", "DPM++3M"), ("ipndm", "PNDM"),
                ("ipndm", "PLMS"), ("ddpm", "DDPM"), ("dpm_solver_sde", "DPM++2M SDE")]  # fmt: skip


def steps_for(method: str, budget: int) -> int:
    """Our steps within ``budget`` network calls: Heun spends ``2 n - 1``, the others ``n``."""
    return (budget + 1) // 2 if method.lower().startswith("heun") else budget


def path_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    return (x.double() - ref).norm(dim=1).mean().nan_to_num(math.inf).item()  # diverged: inf


# Features [x, cos(x W + b)], frequencies ~1..16 (the data's scales): their Frechet distance, as
# FID's of Inception features, sees the spread of narrow components; x's moments barely do.
TRUE_STATS: dict[int, tuple] = {}


def features(x: torch.Tensor) -> torch.Tensor:
    """``[x, cos(x W + b)]``, 64 random frequencies, the same for every call of a dimension."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(x.shape[1], 64, generator=g, dtype=torch.float64)
    w = w * torch.logspace(0, 1.2, 64).double()
    b = 2 * math.pi * torch.rand(64, generator=g, dtype=torch.float64)
    x = x.double().nan_to_num(9, 9, -9)  # a diverged sample counts as far off
    return torch.cat([x, torch.cos(x @ w + b)], 1)


def fd(x: torch.Tensor, data: GaussianMixture) -> float:
    """FD of the features of ``x`` against those of 200,000 true draws."""
    if id(data) not in TRUE_STATS:
        draws = data.sample(200_000, torch.Generator().manual_seed(1234))[0]
        TRUE_STATS[id(data)] = feature_statistics(features(draws))
    return frechet_distance(*feature_statistics(features(x)), *TRUE_STATS[id(data)])


def fd_floor(data: GaussianMixture, n: int) -> float:
    """The FD of ``n`` true samples (mean of 5 draws): differences below it are noise."""
    return sum(fd(data.sample(n, torch.Generator().manual_seed(s))[0], data) for s in range(5)) / 5


def ours(name: str, eps_fn, x_T, budget: int, seed: int = 1, path=SCHED, **kw):
    method, options = (OURS_ODE | OURS_SDE)[name]
    x, info = sample(
        eps_fn, path, x_T, method, steps=steps_for(method, budget),
        generator=torch.Generator().manual_seed(seed), return_info=True, **(options | kw),
    )  # fmt: skip
    return x, info["nfe"]


def theirs(name: str, setting: dict, eps_fn, x_T, budget: int, seed: int = 1):
    return run_theirs(name, setting, eps_fn, x_T, budget, SCHED.betas, seed)


def measure(n_ode: int, n_sde: int, tol: float, have_diffusers: bool) -> dict:
    """``results[data][row][budget] = (error, nfe, setting)``, rows ours and ``NAME [setting]``."""
    results: dict = {}
    for dname, data in DATA.items():
        g = torch.Generator().manual_seed(0)
        x_ode, x_sde = (
            torch.randn(n, data.dim, generator=g, dtype=torch.float64) for n in (n_ode, n_sde)
        )
        eps = data.model_fn(SCHED, "eps")
        ref = sample(eps, SCHED, x_ode, "ode", rtol=tol, atol=tol)
        check = sample(eps, SCHED, x_ode, "ode", rtol=tol / 10, atol=tol / 10)
        res = results[dname] = {"_ref": path_error(check, ref), "_floor": fd_floor(data, n_sde)}
        for budget, name in itertools.product(BUDGETS, OURS_ODE | OURS_SDE):
            x, nfe = ours(name, eps, x_ode if name in OURS_ODE else x_sde, budget)
            e = path_error(x, ref) if name in OURS_ODE else fd(x, data)
            res.setdefault(name, {})[budget] = (e, nfe, "")
        rows = list(THEIRS_ODE | THEIRS_SDE) * have_diffusers
        for budget, name in itertools.product(BUDGETS, rows):
            for setting in settings(scheduler_class(name)):
                x, nfe = theirs(name, setting, eps, x_ode if name in THEIRS_ODE else x_sde, budget)
                if x is None:  # its fewest steps need more calls than the budget
                    e = math.inf
                else:
                    e = path_error(x, ref) if name in THEIRS_ODE else fd(x, data)
                res.setdefault(f"{name} [{label(setting)}]", {})[budget] = (e, nfe, label(setting))
    return results


def log_total(results: dict, row: str) -> float:
    """Sum of log errors over every denoiser and budget the row ran (over-budget cells, nfe 0,
    are left out: they are the same for every setting of a scheduler)."""
    cells = [r[row][b] for r in results.values() for b in BUDGETS]
    return sum(math.log(max(err, 1e-300)) for err, nfe, _ in cells if nfe)


def summarize(results: dict) -> None:
    """Per diffusers scheduler: ``(defaults)``; ``(best)``, the best setting per budget and
    denoiser; ``(best overall)``, the one setting of lowest geometric-mean error over all budgets
    and all denoisers (the rule our own defaults are chosen by)."""
    for name in THEIRS_ODE | THEIRS_SDE:
        labels = [label(s) for s in settings(scheduler_class(name))]
        overall = min(labels, key=lambda lab: log_total(results, f"{name} [{lab}]"))  # noqa: B023
        for res in results.values():
            res[f"{name} (defaults)"] = res[f"{name} [{labels[0]}]"]
            runs = [res[f"{name} [{lb}]"] for lb in labels]
            res[f"{name} (best)"] = {b: min(run[b] for run in runs) for b in BUDGETS}
            res[f"{name} (best overall)"] = res[f"{name} [{overall}]"]


def cell(v) -> str:
    err, nfe, note, budget = v
    if nfe == 0:
        return "over budget"
    return f"{err:.2e}" + (f" @{nfe}" if nfe != budget else "") + (f" {note}" if note else "")


def table(results: dict, rows: list[str], title: str) -> None:
    print(f"{title}\n\n| sampler | " + " | ".join(f"NFE {b}" for b in BUDGETS) + " |")
    print("|---" * (len(BUDGETS) + 1) + "|")
    for row in [r for r in rows if r in results]:
        print(f"| {row} | " + " | ".join(cell(results[row][b] + (b,)) for b in BUDGETS) + " |")
    print()


def ratios(results: dict) -> None:
    for kind, mine, their in [("path", OURS_ODE, THEIRS_ODE), ("FD", OURS_SDE, THEIRS_SDE)]:
        for rule in ("best", "best overall") if f"{next(iter(their))} (best)" in results else ():
            rows, line = [f"{n} ({rule})" for n in their], []
            for b in BUDGETS:
                me = min(mine, key=lambda r: results[r][b][0])
                th = min(rows, key=lambda r: results[r][b][0])
                ratio = results[me][b][0] / results[th][b][0]
                line.append(f"{b}: {ratio:.2f} ({me} / {th.split(' (')[0]} {results[th][b][2]})")
            print(f"(a) {kind}, our best at defaults / diffusers' {rule}: " + "; ".join(line))
    for mine, their in [*COUNTERPARTS, ("euler churn", "Euler churn")]:
        if f"{their} (defaults)" in results:
            th = results[f"{their} (defaults)"]
            r = [f"{results[mine][b][0] / th[b][0]:.2f}" if th[b][1] else "n/a" for b in BUDGETS]
            print(f"(b) {mine} / {their} at defaults: " + ", ".join(r))  # n/a: over budget


def sweep(n_ode: int, n_sde: int, only: str = "") -> None:
    """Our samplers over every spacing and option, ranked by the geometric mean of the error over
    every denoiser and budget (cells: each denoiser at 5..50 in DATA order; FD floored)."""
    lof = {"lower_order_final": [True, False]}
    grids = {
        "ddim": {}, "euler": {}, "heun": {}, "ddpm": {},
        "ipndm": {"order": [1, 2, 3, 4]},
        "dpm_solver": {"order": [1, 2, 3, "auto"]} | lof,
        "unipc": {"order": [1, 2, 3, "auto"], "variant": ["bh1", "bh2"]} | lof
                 | {"final_corrector": [True, False]},
        "dpm_solver_sde": {"solver_type": ["midpoint", "exact"], "corrector": [True, False]} | lof,
    }  # fmt: skip
    for method, grid in [(m, g) for m, g in grids.items() if only in ("", m)]:
        sde = method in OURS_SDE
        keys = ["spacing", *grid]
        combos = list(itertools.product([s for s in SPACINGS if s != "linspace"], *grid.values()))
        errs = torch.zeros(len(combos), len(DATA) * len(BUDGETS))
        for d, data in enumerate(DATA.values()):
            g = torch.Generator().manual_seed(0)
            x_T = torch.randn(n_sde if sde else n_ode, data.dim, generator=g, dtype=torch.float64)
            eps = data.model_fn(SCHED, "eps")
            ref = None if sde else sample(eps, SCHED, x_T, "ode", rtol=1e-10, atol=1e-10)
            floor = fd_floor(data, n_sde) if sde else 0.0
            for j, b in enumerate(BUDGETS):
                for i, c in enumerate(combos):
                    x, _ = ours(method, eps, x_T, b, **dict(zip(keys, c)))
                    e = max(fd(x, data), floor) if sde else path_error(x, ref)
                    errs[i, d * len(BUDGETS) + j] = e if math.isfinite(e) else 1e9
        score = errs.log().mean(1).exp()  # geometric mean over the 8 (denoiser, budget) cells
        for rank, i in enumerate(score.argsort()[:3].tolist()):
            cells = " ".join(f"{e:.1e}" for e in errs[i].tolist())
            print(f"{method} #{rank + 1}: {dict(zip(keys, combos[i]))} {score[i]:.2e} [{cells}]")


def overhead(have_diffusers: bool, budget: int = 20) -> None:
    """ms per network call with a zero model on a 64x3x32x32 batch (the samplers' own cost),
    ours at defaults and the counterpart at diffusers' defaults, ``budget`` calls each."""
    zero = lambda x, k: torch.zeros_like(x)  # noqa: E731
    x_T = torch.randn(64, 3, 32, 32)
    print("\n| sampler | ms/NFE ours | ms/NFE diffusers |\n|---|---|---|")
    _ = have_diffusers and theirs("DDIM", {}, zero, x_T, 1)  # warm-up: diffusers' lazy imports
    for mine, their in COUNTERPARTS:
        ms = []
        for fn, *a in [(ours, mine), (theirs, their, {})][: 1 + have_diffusers]:
            t = time.perf_counter()
            nfe = fn(*a, zero, x_T, budget)[1]
            ms.append(1e3 * (time.perf_counter() - t) / nfe)
        print(f"| {mine} / {their} | " + " | ".join(f"{v:.2f}" for v in ms) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer samples, looser reference")
    p.add_argument("--sweep", action="store_true", help="also rank our spacings and options")
    args = p.parse_args()
    n_ode, n_sde, tol = (500, 4000, 1e-8) if args.quick else (4000, 40000, 1e-10)
    have_diffusers = importlib.util.find_spec("diffusers") is not None
    if not have_diffusers:
        print("diffusers is not installed (pip install -e '.[bench]'): ours only")
    t0 = time.perf_counter()
    results = measure(n_ode, n_sde, tol, have_diffusers)
    _ = have_diffusers and summarize(results)
    rules = ("defaults", "best", "best overall")
    for dname, res in results.items():
        print(f"\n## {dname}: reference ODE error {res['_ref']:.1e}; FD floor {res['_floor']:.1e}")
        names = list(OURS_ODE) + [f"{n} ({w})" for n in THEIRS_ODE for w in rules]
        table(res, names, f"path error to the PF-ODE ({dname}, n={n_ode})")
        names = list(OURS_SDE) + [f"{n} ({w})" for n in THEIRS_SDE for w in rules]
        table(res, names, f"FD of random Fourier features ({dname}, n={n_sde})")
        ratios(res)
    print(f"\n(measured in {time.perf_counter() - t0:.0f} s)\n")
    if args.sweep:
        sweep(n_ode, n_sde)
    overhead(have_diffusers)


if __name__ == "__main__":
    main()
