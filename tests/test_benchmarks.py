"""The benchmark scripts' own bookkeeping (their measurements run outside the suite)."""

import importlib.util
import json
import sys

import pytest
import yaml

from conftest import REPO


def _load(name):
    if str(REPO / "benchmarks") not in sys.path:  # a script imports its sibling modules
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


REPORT = """
|  Action                                      |  Mean duration (s) |  Num calls |  Total time (s) |  Percentage %  |
|  Total                                       |  -                 |  100       |  20.0           |  100 %         |
|  run_training_epoch                          |  19.0              |  1         |  19.0           |  95 %          |
|  [LightningModule]M.optimizer_step           |  0.5               |  20        |  10.0           |  50 %          |
|  [Strategy]SingleDeviceStrategy.backward     |  0.25              |  20        |  5.0            |  25 %          |
|  [Strategy]SingleDeviceStrategy.training_step|  0.15              |  20        |  3.0            |  15 %          |
|  [_TrainingEpochLoop].train_dataloader_next  |  0.05              |  20        |  1.0            |  5 %           |
|  [Callback]SampleGrid.on_train_batch_end     |  0.1               |  20        |  2.0            |  10 %          |
|  [LightningModule]M.on_train_batch_end       |  0.025             |  20        |  0.5            |  2.5 %         |
"""


def test_step_split_takes_forward_and_backward_out_of_the_optimizer_step():
    step_split = _load("step_split")
    rows = dict(step_split.split(step_split.parse_report(REPORT)))
    assert rows["forward + loss"] == 3.0 and rows["backward"] == 5.0
    assert rows["optimizer (Adam, clipping)"] == pytest.approx(2.0)
    assert rows["data"] == 1.0 and rows["sample grids"] == 2.0 and rows["EMA update"] == 0.5
    assert rows["total"] == 20.0
    # the parts and the rest add up to the profiled total
    assert sum(v for k, v in rows.items() if k != "total") == pytest.approx(20.0)


def test_recipe_search_reads_runs_best_fid_first_with_their_sweep_commands(tmp_path):
    recipe_search = _load("recipe_search")
    sweep = tmp_path / "s1"
    for i, (fid, override) in enumerate([(7.5, "schedule=linear"), (6.2, "schedule=cosine")]):
        run = sweep / str(i)
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.ckpt").write_bytes(b"")
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([override]))
        (run / "eval").mkdir()
        (run / "eval" / "metrics.json").write_text(json.dumps({"fid": fid, "nfe": 20}))
        (run / "timing.json").write_text(json.dumps({"train_seconds": 100.0 + i, "steps": 10}))
    task = ["schedule=linear,cosine"]
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task}}}))
    rows = recipe_search.collect(tmp_path)
    assert [r["overrides"] for r in rows] == ["schedule=cosine", "schedule=linear"]
    assert rows[0]["train_seconds"] == 101.0
    commands = recipe_search.sweep_commands(tmp_path)
    assert commands == [f"python train.py -m hydra.sweep.dir={sweep} schedule=linear,cosine"]


def test_unet_step_compares_the_same_network_in_both_libraries():
    """benchmarks/unet_step.py times ours against diffusers' UNet2DModel: a fair race needs the
    same function (weights mapped one to one, nothing zero-initialised) and the same size."""
    import torch

    pytest.importorskip("diffusers")  # in the dev extra; `pip install -e .` alone lacks it
    unet_step = _load("unet_step")
    kwargs = unet_step.unet_kwargs("digits")
    ours, theirs = unet_step.models(kwargs)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    fns = unet_step.calls(ours.eval(), theirs.eval())
    x, k = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        a, b = fns["ours"](x, k), fns["diffusers"](x, k)
    assert a.abs().mean() > 1e-2  # a live output, not the zero-initialised identity
    assert torch.allclose(a, b, atol=1e-5, rtol=0)  # a broken attention differs by ~1e-4


def test_samplers_benchmark_fits_each_scheduler_within_the_budget():
    """Every diffusers scheduler runs the most steps whose calls (one per listed timestep) fit the
    budget: Heun lists 2 n - 1, PLMS n + 1 (a repeated first time), PNDM's Runge-Kutta start
    n + 9, so PNDM cannot run with 10 calls."""
    pytest.importorskip("diffusers")
    schedulers = _load("diffusers_schedulers")

    def fitted(name, budget):
        _, options, _ = schedulers.THEIRS_ODE[name]
        sch = schedulers.scheduler_class(name)(**options)
        return len(sch.timesteps) if schedulers.fit_budget(sch, budget) else None

    assert fitted("DDIM", 10) == 10
    assert fitted("Heun", 10) == 9
    assert fitted("PLMS", 5) == 5 and fitted("PLMS", 20) == 20
    assert fitted("PNDM", 10) is None and fitted("PNDM", 20) == 20


def test_samplers_benchmark_leaves_over_budget_cells_out_of_the_overall_score():
    """A scheduler that cannot run within a budget (error inf, 0 calls) is ranked on the cells it
    ran; a diverged run (error inf with calls) still counts against it."""
    import math

    samplers = _load("samplers")  # diffusers itself is imported only to run its schedulers
    row = {5: (math.inf, 0, ""), 10: (0.1, 10, ""), 20: (0.01, 20, ""), 50: (1e-3, 50, "")}
    assert samplers.log_total({"d": {"r": row}}, "r") == pytest.approx(math.log(1e-6))
    diverged = row | {5: (math.inf, 5, "")}
    assert samplers.log_total({"d": {"r": diverged}}, "r") == math.inf


def test_trained_samplers_fits_heun_to_the_budget_and_tables_the_best_setting():
    trained = _load("trained_samplers")
    assert [trained.steps_for("heun", n) for n in (5, 10, 20)] == [3, 5, 10]  # 2 n - 1 <= budget
    assert trained.steps_for("unipc", 10) == 10
    plain = {"sampler": "unipc", "spacing": "logsnr", "options": "", "confident_share": 0.8,
             "defaults": True, "path": "edm"}  # fmt: skip
    rows = [
        plain | {"checkpoint": "edm", "budget": 10, "fid": 6.0},
        plain
        | {
            "checkpoint": "edm",
            "budget": 10,
            "fid": 5.0,
            "options": "clip_x0=False",
            "defaults": False,
        },  # fmt: skip
        plain | {"checkpoint": "edm", "budget": 10, "fid": 7.0, "sampler": "ddim"},
    ]
    (line,) = trained.table(rows).splitlines()[2:]
    assert line.startswith("| edm | 10 | 5.00 / 0.800 (unipc logsnr clip_x0=False)")
    assert line.endswith("| unipc 6.00, ddim 7.00 |")  # defaults only, best first
    ranked = trained.ranking(rows).splitlines()[2:]
    assert ranked[0].startswith("| ddim | logsnr | 7.00 | 7.00 |") and "| 5.00 |" in ranked[1]
    two_paths = rows[:2] + [
        r | {"checkpoint": "flow", "path": "flow", "fid": 4.0} for r in rows[:2]
    ]
    two_paths += [two_paths[2] | {"checkpoint": "flow_ln", "fid": 16.0},
                  two_paths[3] | {"checkpoint": "flow_ln", "fid": 16.0}]  # fmt: skip
    first = trained.ranking(two_paths).splitlines()[2]  # each path weighs the same
    assert first == "| unipc | logsnr clip_x0=False | 6.32 | 5.00 | 8.00 | 0.800 |", first
    settings = trained.settings(sweep=True)
    assert {"sampler": "ddpm"} in settings and len(settings) > len(trained.settings(sweep=False))
