import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")

# Under pytest-xdist every worker would otherwise use one intra-op thread per core: two workers
# on two cores then run four spinning threads, and small in-process fits run ~15x slower.
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


import subprocess  # noqa: E402


def run_cli(
    script: str, *overrides: str, env: dict | None = None, timeout: int = 300, check: bool = True
):
    """Run an entry point as a user would; returns the CompletedProcess."""
    full_env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    proc = subprocess.run(
        [PYTHON, script if script == "-m" else str(REPO / script), *overrides],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(overrides)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


QUIET = ("callbacks.progress=null", "trainer.enable_model_summary=false")


def compose(name: str, *overrides: str, run_dir=None) -> dict:
    """A root config composed in-process as the entry point would, as plain resolved values
    (what ``ddpm.config.parse_*`` and ``train``/``sample``/``evaluate`` take)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ddpm.cli.preflight import plain

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = hydra_compose(name, overrides=list(overrides))
    return plain(cfg, run_dir=str(run_dir) if run_dir is not None else "/tmp/ddpm-unused-run")


TOY_OVERRIDES = (
    "experiment=toy2d",
    "callbacks.sample_grid.every_n_steps=0",
    "callbacks.sample_grid.num_samples=200",
    "dataset.size=512",
    "network.hidden=64",
    "trainer.limit_val_batches=1",
    *QUIET,
)


def train_in_process(run_dir, *overrides: str, steps: int = 30):
    """``train(cfg)`` called as a library: the same config train.py would compose."""
    from ddpm.training import train

    cfg = compose(
        "train",
        *TOY_OVERRIDES,
        f"trainer.max_steps={steps}",
        "callbacks.checkpoint.every_n_train_steps=10",
        "trainer.val_check_interval=10",
        *overrides,
        run_dir=run_dir,
    )
    return train(cfg)


def train_toy(run_dir, *extra: str, steps: int = 30, **kw):
    return run_cli(
        "train.py",
        "experiment=toy2d",
        f"trainer.max_steps={steps}",
        f"hydra.run.dir={run_dir}",
        "callbacks.checkpoint.every_n_train_steps=10",
        "callbacks.sample_grid.every_n_steps=0",
        "callbacks.sample_grid.num_samples=200",
        "dataset.size=512",
        "network.hidden=64",
        "trainer.val_check_interval=10",
        "trainer.limit_val_batches=1",
        *QUIET,
        *extra,
        **kw,
    )


@pytest.fixture(scope="session")
def toy_edm_ckpt(tmp_path_factory):
    """A toy2d model on path=edm trained for two steps: the start or teacher of a few-step run."""
    run = tmp_path_factory.mktemp("toy_edm")
    train_in_process(run, "path=edm", steps=2)
    return run / "checkpoints" / "last.ckpt"


def build_toy_module(*overrides: str):
    """The LightningModule train.py builds for the toy config with ``overrides``."""
    from ddpm.config import parse_train
    from ddpm.training.build import build_module

    cfg = parse_train(compose("train", *TOY_OVERRIDES, *overrides))
    return build_module(cfg, cfg.dataset.build())


@pytest.fixture(scope="session")
def toy_ckpt(tmp_path_factory):
    """A toy2d checkpoint trained for a few hundred steps, shared by the sample/evaluate tests."""
    run = tmp_path_factory.mktemp("toy_run")
    train_in_process(run, "callbacks.checkpoint.every_n_train_steps=100", steps=300)
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def digits_ckpt(tmp_path_factory):
    """A (barely trained) class-conditional digits checkpoint."""
    from ddpm.training import train

    run = tmp_path_factory.mktemp("digits_run")
    train(
        compose(
            "train",
            "trainer.max_steps=20",
            "callbacks.checkpoint.every_n_train_steps=10",
            "callbacks.sample_grid.every_n_steps=0",
            "callbacks.sample_grid.num_samples=16",
            "model.conditional=true",
            "trainer.limit_val_batches=0",
            *QUIET,
            run_dir=run,
        )
    )
    return run / "checkpoints" / "last.ckpt"


def fit_quietly(module, datamodule, steps: int):
    """A CPU Lightning fit with no logger, checkpoints, progress bar or validation."""
    import lightning as L

    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule)
    return trainer


def inception_weights(root: Path) -> Path:
    """An Inception-v3 weights file of the right architecture with random weights (the real one
    cannot be downloaded here), used exactly as the real file would be."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ddpm.evaluation.extractors import INCEPTION_FILE

    class RandomInit(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True):  # keep the random initialisation
            return None

    torch.save({}, root / "empty.pth")
    torch.manual_seed(0)
    model = RandomInit("x", ["2048"], feature_extractor_weights_path=str(root / "empty.pth"))
    path = root / INCEPTION_FILE
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory):
    """A small Hugging Face image dataset with a test split and class labels (save_to_disk)."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)

    def split(n):
        images = [
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)) for _ in range(n)
        ]
        labels = datasets.ClassLabel(names=["a", "b", "c"])
        features = datasets.Features({"image": datasets.Image(), "label": labels})
        data = {"image": images, "label": [i % 3 for i in range(n)]}
        return datasets.Dataset.from_dict(data, features=features)

    path = tmp_path_factory.mktemp("hf") / "toy_images"
    datasets.DatasetDict({"train": split(40), "test": split(12)}).save_to_disk(str(path))
    return path


@pytest.fixture(scope="session")
def digit_samples_npz(tmp_path_factory):
    """A samples.npz of 40 labelled 8x8 images, as sample.py writes it (dataset=samples)."""
    from ddpm.evaluation.outputs import write_samples

    out = tmp_path_factory.mktemp("digit_samples")
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    write_samples(out, x, is_image=True, labels=torch.arange(40) % 10)
    return out / "samples.npz"


def companions(group: str, option: str) -> list[str]:
    """What an option needs beside it to make a whole run (points need an MLP, VAEs a VAE)."""
    if group == "network" and option.endswith("vae"):
        return ["model=vae"] + (["dataset=toy2d"] if option == "mlp_vae" else [])
    if group == "network" and option == "mlp":
        return ["dataset=toy2d"]
    if group == "dataset" and option == "toy2d":
        return ["network=mlp"]
    if group == "model" and option == "vae":
        return ["network=conv_vae"]
    if (group, option) in (("model", "consistency"), ("sampler", "consistency")):
        return ["path=edm", "model=consistency", "model.init=null", "sampler=consistency"]
    if (group, option) in (("model", "meanflow"), ("sampler", "meanflow")):
        return ["path=flow", "model=meanflow", "sampler=meanflow"]
    if (group, option) == ("model", "progressive_distill"):
        return ["path=edm", "path.sigma_data=auto"]  # the teacher fixture's (digits_edm)
    return []


@pytest.fixture(scope="session")
def digits_edm_ckpt(tmp_path_factory):
    """A two-step digits EDM checkpoint: a teacher for progressive distillation's configs."""
    from ddpm.training import train

    run = tmp_path_factory.mktemp("digits_edm")
    train(compose("train", "experiment=digits_edm", "trainer.max_steps=2",
                  "trainer.limit_val_batches=0", "callbacks.sample_grid=null", run_dir=run))  # fmt: skip
    return run / "checkpoints" / "last.ckpt"


def starts(experiment_or_model: str, request) -> list[str]:
    """The starting checkpoint a few-step preset needs (ECT from scratch; a distillation
    teacher)."""
    if experiment_or_model.endswith("ect") or experiment_or_model == "consistency":
        return ["model.init=null"]
    if experiment_or_model.endswith("_pd") or experiment_or_model == "progressive_distill":
        return [f"model.teacher={request.getfixturevalue('digits_edm_ckpt')}"]
    return []
