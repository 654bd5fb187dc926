"""The seed's homework (the sast2024-diffusion assignment) as a preset: its values, its network,
its three figures, its clamping sampler."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import QUIET, compose
from ddpm.config import data_inputs, network_kwargs, parse_train
from ddpm.data.base import DataInfo


def test_homework_preset_composes_to_the_assignment():
    cfg = parse_train(compose("train", "experiment=homework"))
    kwargs = network_kwargs(cfg.network, DataInfo("cars", (3, 64, 64), None, "image"))
    net = cfg.network.fn(**kwargs)
    assert sum(p.numel() for p in net.parameters()) == 62_438_883
    assert net(torch.zeros(2, 3, 64, 64), torch.tensor([0, 299])).shape == (2, 3, 64, 64)
    schedule = cfg.path.build().schedule
    reference = torch.linspace(1e-4, 0.02, 300, dtype=torch.float64)
    assert torch.allclose(schedule.betas, reference, rtol=1e-11, atol=0)  # alpha_bar round-off
    m, d = cfg.model.kwargs, cfg.dataset.kwargs
    assert (m["lr"], m["warmup_steps"], m["lr_decay"], m["ema_decay"]) == (1e-3, 0, "none", 0.0)
    assert (m["prediction"], m["loss"]) == ("eps", "simple")
    assert m["optimizer"].target == "torch.optim.Adam"
    assert (d["batch_size"], d["image_size"], d["resize"], d["flip"]) == (128, 64, "squash", True)
    assert cfg.sampler.name == "ddpm" and cfg.sampler.steps is None
    assert cfg.sampler.options["clamp_x"] is True and cfg.denoiser.clip_x0 is False
    assert cfg.trainer.kwargs["accelerator"] == "auto" and cfg.trainer.kwargs["max_steps"] == 12600
    assert data_inputs(DataInfo("x", (3, 64, 64), None, "image")) == {
        "in_channels": 3,
        "image_size": 64,
    }


def test_the_clamping_sampler_keeps_every_step_in_the_data_range():
    """Every state, on the chain's own scale (``x_t``, not ``x_t / alpha``), lies in [-1, 1]."""
    from ddpm.paths import DDPMPath
    from ddpm.samplers import sample
    from ddpm.schedule import make_schedule

    path = DDPMPath(make_schedule("linear", 300, rescale=False))
    x_T = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)) * 3

    def wild(x, k):  # a poor network whose estimates leave the data range
        return -2.0 * x

    seen = []
    sample(
        wild,
        path,
        x_T,
        "ddpm",
        steps=30,
        clamp_x=True,
        callback=lambda i, sigma, x, x0: seen.append(x * path.scale_at(sigma)),
    )
    assert all(x.abs().max() <= 1.0 + 1e-6 for x in seen)
    free = sample(wild, path, x_T, "ddpm", steps=30, generator=torch.Generator().manual_seed(1))
    assert free.abs().max() > 1.0  # without it they do leave it


@pytest.mark.slow
def test_homework_trains_on_an_image_folder_and_makes_its_three_figures(tmp_path):
    from ddpm.evaluation import sample
    from ddpm.training import train

    rng = np.random.default_rng(0)
    for sub in ("cars_train", "cars_test"):  # the two folders, used together
        (tmp_path / "cars" / sub).mkdir(parents=True)
        for i in range(3):
            array = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)  # not square: squashed
            Image.fromarray(array).save(tmp_path / "cars" / sub / f"{i}.jpg")
    run = tmp_path / "run"
    train(compose(
        "train", "experiment=homework", f"dataset.root={tmp_path / 'cars'}", "dataset.batch_size=2",
        "dataset.num_workers=0", "trainer.max_steps=2", "trainer.limit_val_batches=0",
        "sampler.steps=3", "callbacks.sample_grid.num_samples=2", *QUIET, run_dir=run,
    ))  # fmt: skip
    for figure in ("dataset_grid.png", "forward_noising.png", "step_0000002.png"):
        assert (run / "samples" / figure).is_file(), figure
    grid = np.asarray(Image.open(run / "samples" / "dataset_grid.png"))
    assert grid.shape[0] > 64  # six 64x64 images, not one
    out = tmp_path / "sampled"
    sample(compose(
        "sample", f"ckpt={run}/checkpoints/last.ckpt", "sampler=ddpm", "sampler.clamp_x=true",
        "sampler.steps=9", "denoiser.clip_x0=false", "num_samples=2", "trajectory=true",
        "progress=false", run_dir=out,
    ))  # fmt: skip
    samples = np.load(out / "samples.npz")["samples"]
    assert samples.shape == (2, 3, 64, 64) and np.abs(samples).max() <= 1.0
    assert (out / "trajectory.png").is_file()
