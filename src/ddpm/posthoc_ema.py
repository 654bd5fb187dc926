"""Post-hoc EMA: the weight average of any relative width, built after training from the
snapshots of a run trained with ``ema=posthoc`` (Karras et al. 2024, EDM2 sec. 3, App. C.3).

    python -m ddpm.posthoc_ema RUN --sigma-rel 0.08 [0.12 ...] [--out FILE.ckpt]

For each width it solves the least-squares fit of the target power-function profile (at the
run's last step) by the profiles of every snapshot of every tracked width
(:func:`ddpm.power_ema.fit`), combines the snapshots' weights with those coefficients
and writes ``RUN/checkpoints/posthoc_ema_<width>.ckpt``: a copy of ``last.ckpt`` with those EMA weights,
which ``sample.py``, ``evaluate.py`` and ``python -m ddpm.export`` take like any checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ddpm.checkpoint import CheckpointError, atomic_save, load_checkpoint
from ddpm.checks import ConfigError
from ddpm.config.ema import ema_sigma_rels
from ddpm.power_ema import check_sigma_rel, fit, gamma_from_sigma_rel


def read_snapshots(run: Path, upto: int | None = None) -> list[dict]:
    """The run's snapshots in step order, those after ``upto`` (a timeline a resume abandoned)
    left out; a missing folder or a damaged file is refused naming what to do."""
    folder = run / "ema_snapshots"
    files = sorted(folder.glob("step_*.pt")) if folder.is_dir() else []
    if not files:
        raise ConfigError(
            f"{run} has no EMA snapshots ({folder}): train it with ema=posthoc "
            f"(python train.py ema=posthoc ema.snapshot_every=N)"
        )
    snapshots = []
    for f in files:
        try:
            snap = load_checkpoint(f, require="averages", mmap=True)
        except CheckpointError as e:
            raise ConfigError(f"{e}; delete {f} and run again (the others still fit)") from None
        if upto is None or snap["t"] <= upto:
            snapshots.append(snap)
    return sorted(snapshots, key=lambda s: s["t"])


def sources(snapshots: list[dict], exclude: float | None = None) -> list[tuple[int, int, float]]:
    """``(snapshot index, average index, gamma)`` of every profile the fit may use (all but the
    width ``exclude``)."""
    return [
        (i, j, g)
        for i, snap in enumerate(snapshots)
        for j, (s, g) in enumerate(zip(snap["sigma_rels"], snap["gammas"]))
        if exclude is None or s != exclude
    ]


def reconstruct(
    snapshots: list[dict], sigma_rel: float, t: int, exclude: float | None = None
) -> tuple[dict[str, torch.Tensor], float]:
    """The averaged weights of width ``sigma_rel`` at step ``t`` and the relative L2 error of
    the fitted profile (``exclude``: fit without that tracked width)."""
    check_sigma_rel(sigma_rel, "--sigma-rel")
    used = sources(snapshots, exclude)
    basis = [(snapshots[i]["t"], g) for i, _, g in used]
    target = (t, gamma_from_sigma_rel(sigma_rel))
    x, error = fit(basis, target)
    out: dict[str, torch.Tensor] = {}
    for coef, (i, j, _) in zip(x, used):
        for k, v in snapshots[i]["averages"][j].items():
            if v.is_floating_point():
                out[k] = out.get(k, 0) + float(coef) * v.double()
            else:
                out[k] = v  # integer buffers (BatchNorm's counter): the last snapshot's
    return out, error


def load_run(run: Path) -> tuple[dict, list[dict]]:
    """The run's ``last.ckpt`` and its snapshots up to that step (read once, tensors mapped)."""
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    if ema_sigma_rels(last.get("hyper_parameters", {}).get("run_config")) is None:
        raise ConfigError(
            f"{run} was trained with ema=standard, which keeps no snapshots; train with "
            f"ema=posthoc (python train.py ema=posthoc ema.snapshot_every=N)"
        )
    return last, read_snapshots(run, upto=int(last["ema_updates"]))


def write_checkpoint(
    run: Path, sigma_rel: float, out: Path | None = None, loaded=None
) -> tuple[Path, float]:
    """A copy of ``last.ckpt`` with the EMA weights of width ``sigma_rel`` (by default
    ``checkpoints/posthoc_ema_<width>.ckpt``); returns its path and the fit's relative error.
    ``loaded``: :func:`load_run`'s result, to build several widths from one read."""
    last, snapshots = loaded or load_run(run)
    t = int(last["ema_updates"])
    weights, error = reconstruct(snapshots, sigma_rel, t)
    ckpt = dict(last, state_dict=dict(last["state_dict"]))
    for k, v in weights.items():
        ckpt["state_dict"][f"ema.{k}"] = v.to(last["state_dict"][f"ema.{k}"].dtype)
    ckpt["posthoc_ema"] = {"sigma_rel": sigma_rel, "t": t, "fit_error": error}
    out = out or run / "checkpoints" / f"posthoc_ema_{sigma_rel:g}.ckpt"
    atomic_save(ckpt, out)
    return out, error


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m ddpm.posthoc_ema",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, help="a run folder trained with ema=posthoc")
    p.add_argument("--sigma-rel", type=float, nargs="+", required=True, help="widths to build")
    p.add_argument("--out", type=Path, help="the checkpoint to write (one width only)")
    a = p.parse_args(argv)
    if a.out is not None and len(a.sigma_rel) > 1:
        p.error("--out names one file: give one --sigma-rel, or leave --out out")
    try:
        for s in a.sigma_rel:  # every width checked before any work
            check_sigma_rel(s, "--sigma-rel")
        loaded = load_run(a.run)
        for s in a.sigma_rel:
            path, error = write_checkpoint(a.run, s, a.out, loaded)
            print(f"wrote {path} (sigma_rel {s:g}; profile fit error {error:.2e})")
    except (ConfigError, CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
