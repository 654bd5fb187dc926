"""dataset=samples: a checkpoint's samples as the training split, the real data everywhere else
(test split, description, sigma_data: auto, evaluation), and one error line for a bad file."""

import numpy as np
import pytest
import torch

from conftest import compose, run_cli
from ddpm.data import DatasetNotFoundError, DigitsDataModule, SamplesDataModule, Toy2DDataModule


def test_the_training_split_is_the_files_samples_and_the_rest_is_the_real_data(
    digit_samples_npz,
):
    saved = np.load(digit_samples_npz)
    x, y = torch.from_numpy(saved["samples"]), torch.from_numpy(saved["labels"])
    real = DigitsDataModule()
    dm = SamplesDataModule(str(digit_samples_npz), real)
    train_x = torch.stack([dm.train_set[i][0] for i in range(len(x))])
    train_y = torch.tensor([dm.train_set[i][1] for i in range(len(x))])
    # the images as sample.py saved them: on the 256-level grid, within half a level of x
    assert len(dm.train_set) == len(x)
    assert (train_x - x).abs().max() <= 1 / 255 + 1e-6
    grid = torch.from_numpy(saved["images"]).permute(0, 3, 1, 2).double() / 127.5 - 1
    torch.testing.assert_close(train_x, grid.float(), rtol=0, atol=0)
    assert torch.equal(train_y, y)
    assert dm.info == real.info and dm.real_data is real
    assert len(dm.test_set) == len(real.test_set)
    assert torch.equal(dm.test_set[5][0], real.test_set[5][0])


def test_sigma_data_auto_is_measured_on_the_real_data(digit_samples_npz, tmp_path):
    from ddpm.config import parse_train
    from ddpm.training.build import build_path

    path = digit_samples_npz  # uniform noise: std 0.58, the digits' 0.75
    cfg = parse_train(compose("train", "experiment=digits_edm", "dataset=samples",
                              f"dataset.path={path}", run_dir=tmp_path / "run"))  # fmt: skip
    dm = cfg.dataset.build()
    _, resolved = build_path(cfg, dm)
    _, on_real = build_path(cfg, DigitsDataModule())
    assert resolved["sigma_data"] == on_real["sigma_data"]
    assert abs(resolved["sigma_data"] - 0.75) < 0.01


def test_bad_files_are_refused_naming_the_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist: draw the samples first"):
        SamplesDataModule(str(tmp_path / "none.npz"), DigitsDataModule()).load()
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, arr_0=np.zeros((4, 16, 16, 3), np.uint8), arr_1=np.zeros(4, np.int64))
    with pytest.raises(DatasetNotFoundError, match=r"shape \(3, 16, 16\); the real data"):
        SamplesDataModule(str(wrong), DigitsDataModule()).load()
    np.savez(wrong, arr_0=np.zeros((4, 8, 8), np.uint8), arr_1=np.array([0, 1, 2, 10]))
    with pytest.raises(DatasetNotFoundError, match="labels outside 0..9"):
        SamplesDataModule(str(wrong), DigitsDataModule()).load()
    np.savez(wrong, arr_0=np.zeros((4, 8, 8), np.uint8), arr_1=np.array([0, 1, 2, 9]))  # ADM's
    assert torch.equal(SamplesDataModule(str(wrong), DigitsDataModule()).load()[1],
                       torch.tensor([0, 1, 2, 9]))  # fmt: skip


def test_points_are_read_from_samples_and_a_broken_file_is_refused(tmp_path):
    from ddpm.evaluation.outputs import write_samples

    real = Toy2DDataModule(size=64, test_size=16)
    x = torch.randn(30, 2)
    write_samples(tmp_path, x, is_image=False)
    dm = SamplesDataModule(str(tmp_path / "samples.npz"), real)
    loaded, labels = dm.load()
    assert torch.equal(loaded, x) and set(labels.tolist()) == {-1}
    assert dm.info.num_classes is None and dm.info.shape == (2,)
    short = tmp_path / "short.npz"
    np.savez(short, samples=x.numpy(), labels=np.zeros(29, np.int64))
    with pytest.raises(DatasetNotFoundError, match="expected 30 integer labels"):
        SamplesDataModule(str(short), real).load()
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(DatasetNotFoundError, match="is not a readable .npz file"):
        SamplesDataModule(str(broken), real).load()


def test_samples_without_labels_are_unlabelled_data(tmp_path):
    from ddpm.checks import ConfigError
    from ddpm.config import parse_train

    path = tmp_path / "samples.npz"
    np.savez(path, images=np.zeros((4, 8, 8, 1), np.uint8))  # no labels
    dm = SamplesDataModule(str(path), DigitsDataModule())
    assert dm.info.num_classes is None and dm.real_data.info.num_classes == 10
    assert set(dm.load()[1].tolist()) == {-1}
    overrides = ("experiment=digits_edm", "dataset=samples", f"dataset.path={path}")
    cfg = parse_train(compose("train", *overrides, run_dir=tmp_path / "run"))
    assert not cfg.conditional  # model.conditional=auto follows the data
    with pytest.raises(ConfigError, match="model.conditional=true needs a labelled dataset"):
        parse_train(compose("train", *overrides, "model.conditional=true", run_dir=tmp_path / "r"))


def test_bad_input_is_one_error_line_before_any_work(digit_samples_npz, tmp_path):
    missing = tmp_path / "none.npz"
    cases = {
        f"error: dataset.path={missing} does not exist": [f"dataset.path={missing}"],
        "error: dataset.real=5 is not a dataset": [f"dataset.path={digit_samples_npz}",
                                                   "dataset.real=5"],
    }  # fmt: skip
    for expected, overrides in cases.items():
        proc = run_cli("train.py", "dataset=samples", *overrides,
                       f"hydra.run.dir={tmp_path / 'run'}", check=False)  # fmt: skip
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode != 0 and len(errors) == 1 and errors[0].startswith(expected)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_a_model_trained_on_a_checkpoints_samples_is_scored_against_the_real_data(
    toy_ckpt, tmp_path
):
    from ddpm.evaluation import evaluate, sample
    from ddpm.evaluation.loading import load_model
    from ddpm.training import train

    sample(compose("sample", f"ckpt={toy_ckpt}", "num_samples=300", "progress=false",
                   run_dir=tmp_path / "pool"))  # fmt: skip
    run = tmp_path / "student"
    train(compose("train", "experiment=toy2d", "dataset=samples",
                  f"dataset.path={tmp_path / 'pool' / 'samples.npz'}",
                  "dataset.real._target_=ddpm.data.Toy2DDataModule", "+dataset.real.size=512",
                  "+dataset.real.test_size=256", "network.hidden=64", "trainer.max_steps=10",
                  "trainer.limit_val_batches=0", "callbacks.sample_grid=null",
                  "callbacks.progress=null", run_dir=run))  # fmt: skip
    ckpt = run / "checkpoints" / "last.ckpt"
    dm = load_model(ckpt).datamodule()  # the real points, not the 300 samples
    assert isinstance(dm, Toy2DDataModule)
    assert (len(dm.train_set), len(dm.test_set)) == (512, 256)
    m = evaluate(compose("evaluate", f"ckpt={ckpt}", "num_samples=64", "progress=false",
                         "sampler.steps=4", run_dir=tmp_path / "e"))  # fmt: skip
    assert m["num_samples"] == 64
