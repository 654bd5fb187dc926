"""Smaller promises: plots, network options, checkpoint write errors."""

import json

import pytest
import torch

from conftest import fit_quietly
from ddpm.checkpoint import atomic_save
from ddpm.data import DigitsDataModule
from ddpm.evaluation.plot import main as plot_main
from ddpm.nets import MLP, UNet
from ddpm.schedule import make_schedule
from ddpm.training import DiffusionModule


def test_quality_vs_nfe_plot_from_a_sweep(tmp_path, capsys):
    for i, (sampler, nfe, fid) in enumerate(
        [("ddim", 10, 9.0), ("ddim", 50, 5.0), ("dpm_solver", 10, 6.0)]
    ):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.json").write_text(
            json.dumps({"sampler": sampler, "nfe": nfe, "steps": nfe, "fid": fid, "seconds": 1.0})
        )
    plot_main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| ddim | 10 | 10 | 9 |" in out and (tmp_path / "fid_vs_nfe.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="no metrics.json"):
        plot_main([str(tmp_path / "empty")])


def test_quality_vs_guidance_weight_one_line_per_kind_of_guidance(tmp_path, capsys):
    runs = [
        (1.5, None, None, 6.0), (2.0, None, None, 7.0), (2.0, None, [0.3, 5.0], 5.0),
        (2.0, "early.ckpt", None, 4.0), (1.5, "early.ckpt", None, 4.5),
    ]  # fmt: skip
    for i, (w, model, interval, fid) in enumerate(runs):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.json").write_text(json.dumps({
            "sampler": "ddim", "nfe": 20, "fid": fid, "guidance_scale": w,
            "guidance_model": model, "guidance_interval": interval,
        }))  # fmt: skip
    plot_main([str(tmp_path), "--x", "guidance_scale", "--by", "guidance"])
    out = capsys.readouterr().out
    assert "| autoguidance | 1.5 | 20 | 4.5 |" in out and "| CFG | 2.0 | 20 | 7 |" in out
    assert "| CFG, interval [0.3, 5.0] | 2.0 | 20 | 5 |" in out
    assert (tmp_path / "fid_vs_guidance_scale.png").stat().st_size > 1000


def test_atomic_save_keeps_the_old_file_and_names_the_path_on_error(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"a": torch.ones(2)}, path)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(OSError, match="could not save checkpoint to .*blocker/last.ckpt"):
        atomic_save({"a": torch.zeros(2)}, tmp_path / "blocker" / "last.ckpt")
    assert torch.load(path, weights_only=True)["a"].sum() == 2
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_channels_last_trains():
    net = UNet(in_channels=1, image_size=8, ch=32, ch_mult=(1, 2), attn_resolutions=(), dropout=0.0)
    module = DiffusionModule(
        net, make_schedule("linear", 100), run_config={"data_shape": [1, 8, 8]}, channels_last=True
    )
    trainer = fit_quietly(module, DigitsDataModule(batch_size=16), 3)
    assert trainer.global_step == 3
    assert module.net.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(module.generate(2)).all()


@pytest.mark.slow
def test_compiled_network_matches_eager_and_keeps_one_key_per_weight():
    net = MLP(dim=2, hidden=32, depth=1)
    eager = MLP(dim=2, hidden=32, depth=1)
    eager.load_state_dict(net.state_dict())
    module = DiffusionModule(
        net, make_schedule("linear", 100), run_config={"data_shape": [2]}, compile=True
    )
    x, k = torch.randn(8, 2), torch.randint(0, 100, (8,))
    assert torch.allclose(module.net(x, k), eager(x, k), atol=1e-5)
    keys = list(module.state_dict())
    assert not any("_orig_mod" in k or "_forward_net" in k for k in keys)
    assert sorted(keys) == sorted(
        [f"net.{k}" for k in eager.state_dict()] + [f"ema.{k}" for k in eager.state_dict()]
    )


def test_more_cpu_processes_than_cores_are_named_once(monkeypatch, capsys):
    from ddpm.config import schema

    monkeypatch.setattr(schema.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(schema, "_WARNED", set())
    for _ in range(2):
        schema.check_devices(4, "cpu")
    err = capsys.readouterr().err
    assert err.count("warning: trainer.devices=4 starts 4 processes on 2 CPU cores") == 1
    schema.check_devices(2, "cpu")
    assert capsys.readouterr().err == ""


def test_logger_wandb_without_the_package_names_the_extra(monkeypatch):
    import importlib.util

    from conftest import compose
    from ddpm.checks import ConfigError
    from ddpm.config import parse_train

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"logger=wandb needs the wandb package: pip install"):
        parse_train(compose("train", "logger=wandb", "experiment=toy2d"))


def test_the_package_states_its_version_license_and_types():
    from importlib.metadata import metadata

    import ddpm
    from conftest import REPO

    assert ddpm.__version__ == metadata("ddpm")["Version"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert (REPO / "src" / "ddpm" / "py.typed").is_file()


@pytest.mark.parametrize("interrupt", [SystemExit(-1), KeyboardInterrupt()])
def test_an_exit_or_ctrl_c_during_a_save_stays_itself(tmp_path, monkeypatch, interrupt):
    """A scheduler's preemption handler (submitit's raises SystemExit) or a Ctrl-C can land in the
    middle of torch's zip writer, which would turn it into "unexpected pos"; it must reach the
    caller as itself, with the old file kept and no temporary left."""
    import ddpm.checkpoint

    path = tmp_path / "last.ckpt"
    atomic_save({"a": torch.ones(2)}, path)

    class Interrupted:
        def __init__(self, f):
            self.f, self.calls = f, 0

        def write(self, data):
            self.calls += 1
            if self.calls == 3:
                raise interrupt
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    real_open = open
    monkeypatch.setattr(
        ddpm.checkpoint, "open", lambda *a: Interrupted(real_open(*a)), raising=False
    )
    with pytest.raises(type(interrupt)):
        atomic_save({"a": torch.zeros(10_000)}, path)
    assert torch.load(path, weights_only=True)["a"].sum() == 2
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
