"""The package as pip installs it from a wheel, away from the checkout: it carries its configs,
and the console scripts train and sample."""

import os
import shutil
import subprocess
import zipfile

import pytest

from conftest import PYTHON, REPO


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_trains_and_samples(tmp_path):
    source = tmp_path / "source"  # a copy: the build leaves its build/ folder there
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("ddpm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ddpm/conf/train.yaml" in names and "ddpm/conf/hydra/launcher/slurm.yaml" in names
    assert "ddpm/py.typed" in names
    site = tmp_path / "site"
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    work = tmp_path / "work"  # no checkout here: nothing but the installed package
    work.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("DDPM_CONF_DIR", None)

    def run(*cmd):
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    where = run(
        PYTHON, "-c", "import ddpm, ddpm.files; print(ddpm.__file__, ddpm.files.conf_dir())"
    )
    assert where.stdout.count(str(site)) == 2, where.stdout
    run(
        PYTHON, str(site / "bin" / "ddpm-train"), "experiment=toy2d", "trainer.max_steps=5",
        "callbacks.sample_grid.every_n_steps=0", "trainer.limit_val_batches=0",
        "callbacks.progress=null", "hydra.run.dir=run",
    )  # fmt: skip
    run(
        PYTHON, str(site / "bin" / "ddpm-sample"), "ckpt=run/checkpoints/last.ckpt",
        "num_samples=8", "sampler=ddim", "sampler.steps=3", "progress=false", "hydra.run.dir=out",
    )  # fmt: skip
    assert (work / "out" / "samples.npz").is_file()
    helped = run(PYTHON, str(site / "bin" / "ddpm-evaluate"), "--help")
    assert "protocol: adm, edm, edm2, quick" in helped.stdout


@pytest.mark.slow
def test_the_gpu_kit_runs_at_tiny_sizes_on_the_cpu():
    """benchmarks/gpu.py cannot rot: its --tiny run prints the whole table."""
    proc = subprocess.run(
        [PYTHON, str(REPO / "benchmarks" / "gpu.py"), "--tiny"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("UNet (1.0 M) train, batch 4 |", "channels-last |", "DiT (tiny)",
                "DDP grad-strides warning", "sampling at 20 calls", "Inception features",
                "50,000 samples", "21 steps/s"):  # fmt: skip
        assert row in proc.stdout, (row, proc.stdout)
