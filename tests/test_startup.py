"""--help, --cfg job and config errors answer before anything heavy is imported: no Lightning,
torchvision or scipy.optimize (their import is what made them slow; benchmarks/startup.py times
them against import torch)."""

import re
import subprocess

import pytest

from conftest import PYTHON, REPO

PROBE = """
import runpy, sys
sys.argv = [{script!r}, *{args!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
heavy = [m for m in ("lightning", "torchvision", "scipy.optimize", "ddpm.training") if m in sys.modules]
print("HEAVY", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "script,args",
    [
        ("train.py", ["--help"]),
        ("train.py", ["--cfg", "job"]),
        ("train.py", ["schedul=cosine"]),
        ("sample.py", ["--help"]),
        ("evaluate.py", ["ckpt=x", "protocol=edn"]),
    ],
)
def test_nothing_heavy_is_imported_before_the_config_is_checked(script, args):
    code = PROBE.format(script=str(REPO / script), args=args)
    proc = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "HEAVY []" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("script", ["train.py", "sample.py", "evaluate.py"])
def test_help_describes_every_top_level_key_in_one_line(script):
    out = subprocess.run(
        [PYTHON, str(REPO / script), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    described = out.split("Top-level keys:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    keys_section = out.split("+KEY=VALUE adds a key a config does not have):\n", 1)[1]
    top = [line[2:].split(":")[0] for line in keys_section.splitlines() if re.match(r"  \w", line)]
    assert [line.split(":")[0].strip() for line in described] == top
    for line in described:
        key, _, text = line.strip().partition(": ")
        assert len(text) > 10, f"{script} --help: {key} has no description"


def _cli(*args):
    return subprocess.run(
        [PYTHON, str(REPO / "train.py"), *args], cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args,named",
    [
        (["--cfg", "job", "schedul=cosine"], "did you mean schedule?"),
        (["--cfg", "job", "network=unett"], "did you mean network=unet?"),
        (["--info", "config", "experiment=toy2d", "dataset.nme=x"], "did you mean dataset.name?"),
    ],
)
def test_cfg_and_info_refuse_a_misspelt_key_in_one_line(args, named):
    proc = _cli(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and named in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cfg_prints_an_incomplete_config():
    """--cfg composes but does not parse: a required value still missing (model.init=???) is
    printed for the user to see, not refused."""
    proc = _cli("--cfg", "job", "experiment=digits_ect")
    assert proc.returncode == 0, proc.stderr
    assert "init: ???" in proc.stdout
