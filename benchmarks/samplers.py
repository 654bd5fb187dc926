"""Sampler accuracy and overhead vs diffusers, on a model that is exact in closed form.

    pip install -e '.[bench]'          # diffusers, optional
    python benchmarks/samplers.py [--n 20000] [--quick]

The "network" is the exact denoiser of a 2-D Gaussian mixture (ddpm.analytic), so every error is
the sampler's own. Two errors at each NFE:

* ``FD``: Fréchet distance (raw coordinates) between the samples and a fresh draw of the true
  mixture of the same size (the floor at N samples is printed as "true vs true");
* ``path``: for deterministic samplers, the mean distance to the probability-flow ODE solution from
  the same x_T (adaptive Dormand-Prince, rtol 1e-9).

Then the time per step with a trivial model (zeros) on a 64x3x32x32 batch: pure sampler overhead.
The last lines are the ratios ours/diffusers (lower is better for both).
"""

from __future__ import annotations

import argparse
import time

import torch

from ddpm.evaluation.metrics import feature_statistics, frechet_distance
from ddpm.oracles import GaussianMixture
from ddpm.samplers import sample
from ddpm.samplers.steps import SPACINGS  # noqa: F401  (documented choices)
from ddpm.schedule import make_schedule

MIX = GaussianMixture(
    torch.tensor([0.2, 0.3, 0.5]).double(),
    torch.tensor([[-0.7, -0.3], [0.6, 0.5], [0.2, -0.6]]).double(),
    torch.tensor([0.08, 0.15, 0.1]).double(),
)
NFES = [10, 20, 50, 100, 1000]
# our samplers with the conf/sampler defaults, plus quadratic spacing (DDIM paper) for ddpm/ddim;
# each row is compared with diffusers' scheduler of the same kind at its defaults
OURS = {
    "ddpm": ("ddpm", dict(method="ddpm")),
    "ddpm+quadratic": ("ddpm", dict(method="ddpm", spacing="quadratic")),
    "ddim": ("ddim", dict(method="ddim")),
    "ddim+quadratic": ("ddim", dict(method="ddim", spacing="quadratic")),
    "dpm_solver": ("dpm_solver", dict(method="dpm_solver", spacing="logsnr")),
}


def fd(x: torch.Tensor, ref: torch.Tensor) -> float:
    return frechet_distance(*feature_statistics(x.double()), *feature_statistics(ref.double()))


def diffusers_sample(kind: str, eps_fn, x_T: torch.Tensor, steps: int, seed: int):
    import diffusers

    common = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    if kind == "ddpm":
        sch = diffusers.DDPMScheduler(**common, clip_sample=False, variance_type="fixed_small")
    elif kind == "ddim":
        sch = diffusers.DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    else:
        sch = diffusers.DPMSolverMultistepScheduler(
            **common, algorithm_type="dpmsolver++", solver_order=2
        )
    sch.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = x_T.clone()
    for t in sch.timesteps:
        k = torch.full((len(x),), int(t))
        out = (
            sch.step(eps_fn(x, k), t, x, generator=g)
            if kind == "ddpm"
            else sch.step(eps_fn(x, k), t, x)
        )
        x = out.prev_sample
    return x


def accuracy(n: int, quick: bool) -> list[dict]:
    s = make_schedule("linear", 1000)
    eps = MIX.model_fn(s, "eps")
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    truth = MIX.sample(n, torch.Generator().manual_seed(1))[0]
    floor = fd(MIX.sample(n, torch.Generator().manual_seed(2))[0], truth)
    ref = sample(eps, s, x_T.double(), "ode", rtol=1e-9, atol=1e-9).float()
    try:
        import diffusers  # noqa: F401

        have_diffusers = True
    except ImportError:
        have_diffusers = False
        print("diffusers is not installed (pip install -e '.[bench]'): ours only")
    rows = []
    theirs = {}
    for name, (kind, kw) in OURS.items():
        stochastic = kind == "ddpm"
        for nfe in NFES[:3] if quick else NFES:
            x = sample(eps, s, x_T, steps=nfe, generator=torch.Generator().manual_seed(3), **kw)
            path = float("nan") if stochastic else float((x - ref).norm(dim=1).mean())
            row = {"sampler": name, "nfe": nfe, "ours_fd": fd(x, truth), "ours_path": path}
            if have_diffusers:
                if (kind, nfe) not in theirs:
                    theirs[kind, nfe] = diffusers_sample(kind, eps, x_T, nfe, 3)
                y = theirs[kind, nfe]
                row["diffusers_fd"] = fd(y, truth)
                row["diffusers_path"] = (
                    float("nan") if stochastic else float((y - ref).norm(dim=1).mean())
                )
            rows.append(row)
    print(f"\nFD floor (true vs true, N={n}): {floor:.2e}")
    return rows


def overhead(steps: int = 50) -> dict:
    s = make_schedule("linear", 1000)
    zero = lambda x, k: torch.zeros_like(x)  # noqa: E731
    x_T = torch.randn(64, 3, 32, 32)
    out = {}
    for name in ("ddpm", "ddim", "dpm_solver"):
        t = time.perf_counter()
        sample(
            zero, s, x_T, steps=steps, generator=torch.Generator().manual_seed(0), **OURS[name][1]
        )
        out[f"ours_{name}"] = (time.perf_counter() - t) / steps
        try:
            t = time.perf_counter()
            diffusers_sample(name, zero, x_T, steps, 0)
            out[f"diffusers_{name}"] = (time.perf_counter() - t) / steps
        except ImportError:
            pass
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = accuracy(args.n, args.quick)
    print("\n| sampler | NFE | FD ours | FD diffusers | path err ours | path err diffusers |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['sampler']} | {r['nfe']} | {r['ours_fd']:.2e} | {r.get('diffusers_fd', float('nan')):.2e} "
            f"| {r['ours_path']:.2e} | {r.get('diffusers_path', float('nan')):.2e} |"
        )
    ov = overhead()
    print("\n| sampler | ms/step ours | ms/step diffusers |")
    print("|---|---|---|")
    for name in ("ddpm", "ddim", "dpm_solver"):
        print(
            f"| {name} | {1e3 * ov[f'ours_{name}']:.2f} | {1e3 * ov.get(f'diffusers_{name}', float('nan')):.2f} |"
        )
    if "diffusers_fd" in rows[0]:
        print()
        for name in OURS:
            ratios = [r["ours_fd"] / r["diffusers_fd"] for r in rows if r["sampler"] == name]
            path = [
                r["ours_path"] / r["diffusers_path"]
                for r in rows
                if r["sampler"] == name and OURS[name][0] != "ddpm"
            ]
            print(
                f"{name}: FD ratio ours/diffusers per NFE {[f'{v:.2f}' for v in ratios]}"
                + (f"; path-error ratio {[f'{v:.2f}' for v in path]}" if path else "")
                + (
                    f"; overhead ratio {ov[f'ours_{name}'] / ov[f'diffusers_{name}']:.2f}"
                    if f"ours_{name}" in ov
                    else ""
                )
            )


if __name__ == "__main__":
    main()
