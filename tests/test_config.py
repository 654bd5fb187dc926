"""Every config group option and preset composes, instantiates, and bad values fail clearly."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ddpm.config import ConfigError, check_run_dir, validate_train

GROUPS = {
    "dataset": ["digits", "toy2d", "mnist", "fashion_mnist", "cifar10", "image_folder"],
    "network": ["unet", "simple_unet", "mlp"],
    "schedule": ["linear", "cosine", "sigmoid", "quadratic"],
    "sampler": ["ddpm", "ddim", "dpm_solver", "ode"],
    "trainer": ["cpu", "gpu", "ddp"],
    "logger": ["csv", "tensorboard", "wandb"],
}
EXPERIMENTS = ["digits_fast", "toy2d", "mnist", "cifar10_ddpm", "stanford_cars"]


def _compose(repo, overrides, name="train"):
    with initialize_config_dir(config_dir=str(repo / "conf"), version_base=None):
        return compose(
            name,
            overrides=["run_dir=/tmp/ddpm-test-run", *overrides] if name == "train" else overrides,
        )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_validates_and_builds_its_network(repo, experiment):
    cfg = _compose(repo, [f"experiment={experiment}"])
    validate_train(OmegaConf.to_container(cfg, resolve=True))
    net = instantiate(cfg.network)
    n_params = sum(p.numel() for p in net.parameters())
    if experiment == "cifar10_ddpm":
        assert n_params == 35_746_307  # Ho et al. report 35.7M
        assert cfg.trainer.max_steps == 800_000 and cfg.model.ema_decay == 0.9999
        assert cfg.model.warmup_steps == 5000 and cfg.dataset.batch_size == 128
    shape = (
        (2, 2)
        if experiment == "toy2d"
        else (2, cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size)
    )
    out = net(torch.zeros(shape), torch.tensor([0, 999]))
    assert out.shape == shape


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes(repo, group, option):
    extra = ["network=mlp"] if option == "toy2d" else ["dataset=toy2d"] if option == "mlp" else []
    cfg = _compose(repo, [f"{group}={option}", *extra])
    validate_train(OmegaConf.to_container(cfg, resolve=True))
    if group in ("schedule", "network", "logger"):
        obj = instantiate(cfg[group])
        assert obj is not None


def test_callbacks_and_trainer_instantiate(repo):
    cfg = _compose(repo, [])
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert {type(c).__name__ for c in callbacks} >= {
        "ModelCheckpoint",
        "SampleGrid",
        "LastCheckpoint",
    }
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    assert trainer.max_steps == 2000


def test_contract_api_snippet(repo):
    with initialize_config_dir(config_dir=str(repo / "conf"), version_base=None):
        cfg = compose("train", overrides=["experiment=cifar10_ddpm"])
    net = instantiate(cfg.network)
    assert net(torch.zeros(1, 3, 32, 32), torch.tensor([5]), y=None).shape == (1, 3, 32, 32)


def test_slurm_launcher_and_multinode_compose(repo):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _compose(
        repo, ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    )
    assert cfg.trainer.num_nodes == 2


BAD = [
    (["model.prediction=foo"], "model.prediction='foo'.*eps, x0, v, mu"),
    (["model.loss=bar"], "model.loss='bar'.*simple, vlb, hybrid, min_snr"),
    (["sampler.steps=-3"], r"sampler.steps=-3.*\[1, 1000\]"),
    (["sampler.steps=5000"], r"sampler.steps=5000"),
    (["sampler.eta=1.5"], r"sampler.eta=1.5.*\[0, 1\]"),
    (["model.ema_decay=1.0"], r"model.ema_decay=1.0.*\[0, 1\)"),
    (["model.variance=learned_range"], "network.learn_sigma=true"),
    (["network.ch_mult=[1,2,2,2,2]"], "not divisible by 2\\^4"),
    (["schedule.name=nope"], "schedule.name='nope'.*linear, cosine"),
    (["dataset=toy2d", "network=mlp", "model.conditional=true"], "labelled dataset"),
]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_values_are_named_with_their_options(repo, overrides, message):
    cfg = _compose(repo, overrides)
    with pytest.raises(ConfigError, match=message):
        validate_train(OmegaConf.to_container(cfg, resolve=True))


def test_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already holds a run"):
        check_run_dir(tmp_path, None, False)
    check_run_dir(tmp_path, None, True)
    check_run_dir(tmp_path, str(tmp_path / "checkpoints" / "last.ckpt"), False)
