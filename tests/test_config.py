"""Every config option and preset in conf/ composes, parses into the typed config and builds what
it describes; bad values fail with one message naming the key."""

import argparse
import inspect

import pytest
import torch

from conftest import REPO, companions, compose, starts
from ddpm.checks import ConfigError
from ddpm.config import parse_evaluate, parse_sample, parse_train
from ddpm.samplers import builtin_sampler, builtin_sampler_names
from ddpm.training.build import build_module, build_trainer
from ddpm.training.run_dir import check_run_dir

CONF = REPO / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _check_built(cfg_dict: dict) -> None:
    """Parse, then build the model for the data it describes: the network maps a batch of the
    data's shape, at both ends of the path's range, to the right output shape, a discrete chain
    has T steps, the trainer builds."""
    cfg = parse_train(cfg_dict)
    datamodule = cfg.dataset.build()
    info = datamodule.info
    module = build_module(cfg, datamodule)
    shape = (2, *info.shape)
    if hasattr(module, "path"):
        path = module.path
        if path.discrete:
            assert path.num_timesteps == cfg_dict["schedule"]["num_timesteps"]
        t = path.time_at(torch.tensor([path.sigma_min, path.sigma_max], dtype=torch.float64))
        net = module.model(use_ema=False).sampling_net()  # as the samplers call it
        out = net(*path.network_input(torch.zeros(shape), t))
        expect = (2, info.shape[0] * (2 if cfg.learned_variance else 1), *info.shape[1:])
        assert tuple(out.shape) == expect
    else:  # the VAE baseline
        mean, _ = module.net.decode(torch.zeros(2, *module.net.latent_shape))
        assert tuple(mean.shape) == shape
    trainer = build_trainer(cfg)
    assert trainer.max_steps == cfg.trainer.kwargs["max_steps"]
    names = {type(c).__name__ for c in trainer.callbacks}
    assert {
        type(c.build()).__name__ for c in cfg.callbacks.values() if c.name != "SampleGrid"
    } <= names


# (the presets on data and weights a user downloads, ImageNet's, are tested in test_dit.py)
@pytest.mark.parametrize("experiment", [e for e in options("experiment") if "imagenet" not in e])
def test_every_experiment_composes_parses_and_builds(experiment, request):
    cfg = compose("train", f"experiment={experiment}", *starts(experiment, request))
    _check_built(cfg)
    if experiment == "cifar10_ddpm":
        net = parse_train(cfg).network
        from ddpm.config import network_kwargs
        from ddpm.data.base import DataInfo

        kwargs = network_kwargs(net, DataInfo("cifar10", (3, 32, 32), 10, "image"))
        n_params = sum(p.numel() for p in net.fn(**kwargs).parameters())
        assert n_params == 35_746_307  # Ho et al. report 35.7M
        assert cfg["trainer"]["max_steps"] == 800_000 and cfg["model"]["ema_decay"] == 0.9999
        assert cfg["model"]["warmup_steps"] == 5000 and cfg["dataset"]["batch_size"] == 128


GROUP_OPTIONS = [
    (g, o)
    for g in ("dataset", "network", "path", "schedule", "sampler", "trainer", "logger", "model")
    for o in options(g)
]


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_composes_parses_and_builds(group, option, request):
    extra = list(companions(group, option))
    if (group, option) == ("dataset", "hf"):
        extra += [f"dataset.path={request.getfixturevalue('hf_folder')}", "dataset.image_size=8"]
    if (group, option) == ("dataset", "samples"):
        extra += [f"dataset.path={request.getfixturevalue('digit_samples_npz')}"]
    if (group, option) == ("network", "homework_unet"):
        extra += ["network.channels=[16,32,64,128]"]  # 8x8 digits: four levels, not five
    if group == "model":
        extra += starts(option, request)
    cfg = compose("train", f"{group}={option}", *extra)
    if cfg["trainer"].get("accelerator") == "gpu" and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="trainer.accelerator=gpu: this machine has no CUDA"):
            parse_train(cfg)  # one line, not Lightning's traceback; the rest is built on the CPU
        cfg["trainer"]["accelerator"] = "cpu"
    _check_built(cfg)


@pytest.mark.parametrize("name", builtin_sampler_names())
def test_sampler_yamls_name_their_function_and_agree_with_its_defaults(name):
    """One set of defaults: a yaml's options equal its function's keyword defaults, so the
    Python facade, a direct call and sampler=NAME all behave the same."""
    spec = builtin_sampler(name)
    params = inspect.signature(spec.fn).parameters
    for key, value in spec.options.items():
        assert params[key].default == value, (name, key)
    assert set(spec.options) == {
        p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY
    } - {"generator", "callback"}


def test_sample_and_evaluate_configs_parse():
    s = parse_sample(compose("sample", "ckpt=x.ckpt"))
    assert s.sampler.name == "ddpm" and s.sampler.steps == 100 and s.num_samples == 64
    assert s.denoiser.clip_x0
    e = parse_evaluate(compose("evaluate", "ckpt=x.ckpt", "bpd=ode"))
    assert e.bpd == "ode" and e.num_samples == 1000


def test_contract_api_snippet():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = hydra_compose("train", overrides=["experiment=cifar10_ddpm"])
    net = instantiate(cfg.network)
    assert net(torch.zeros(1, 3, 32, 32), torch.tensor([5]), y=None).shape == (1, 3, 32, 32)


def test_slurm_launcher_and_multinode_compose():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = hydra_compose(
            "train",
            ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"],
            return_hydra_config=True,
        )
    assert cfg.trainer.num_nodes == 2 and cfg.hydra.launcher.tasks_per_node == 4


BAD = [
    (["trainer.max_steps=abc"], "trainer.max_steps='abc' is not valid; it must be an integer"),
    (["trainer.max_steps=-1"], "trainer.max_steps=-1 is not valid; it must be an integer >= 1"),
    (["trainer.log_every_n_steps=abc"], "trainer.log_every_n_steps='abc' is not valid"),
    (["trainer.devices=0"], "trainer.devices=0 is not valid"),
    (["seed=abc"], "seed='abc' is not valid; it must be an integer >= 0"),
    (["dataset.batch_size=0"], "dataset.batch_size=0 is not valid; it must be an integer >= 1"),
    (["model.prediction=foo"], "model.prediction=foo is not defined on path=ddpm; choose auto"),
    (["model.loss=bar"], "model.loss='bar'.*simple, vlb, hybrid, min_snr"),
    (["sampler.steps=-3"], r"sampler.steps=-3 is not valid"),
    (
        ["sampler.steps=5000"],
        r"sampler.steps=5000 is not valid; it must be an integer in \[1, 1000\]",
    ),
    (
        ["sampler=ddim", "sampler.eta=1.5"],
        r"sampler.eta=1.5 is not valid; it must be a number in \[0, 1\]",
    ),
    (["model.ema_decay=1.0"], r"model.ema_decay=1.0 is not valid; it must be a number in \[0, 1\)"),
    (["model.loss=hybrid"], "model.variance=learned_range"),
    (["schedule.name=nope"], "schedule.name='nope'.*linear, cosine"),
    (["model=vae"], "network=conv_vae"),
    (["network=conv_vae"], "train it with model=vae"),
    (["denoiser.variance=wide"], "denoiser.variance='wide' is not valid; choose one of"),
    (["denoiser.channels_last=maybe"], "denoiser.channels_last='maybe' is not valid; it must be"),
    (["network.dropout=2.0"], r"network.dropout=2.0 is not valid; it must be a number in \[0, 1\]"),
    (["network.ch_mult=[1,2,2,2,2]"], "cannot be built for digits: image_size 8 is not divisible"),
    (["denoiser.variance=analytic"], "denoiser.variance=analytic needs the Gamma estimates"),
    (["denoiser.variance=learned_range"], "needs model.variance=learned_range"),
    (["model.variance=learned_range"], "would stay untrained: use model.loss=hybrid"),
]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_values_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse_train(compose("train", *overrides))


@pytest.mark.parametrize(
    "script,overrides,message",
    [
        (
            "sample",
            ["ckpt=x", "use_ema=maybe"],
            "use_ema='maybe' is not valid; it must be true or false",
        ),
        ("sample", ["ckpt=x", "batch_size=-3"], "batch_size=-3 is not valid"),
        ("sample", ["ckpt=x", "+dataset=toy2d"], "dataset is not a key of sample.py's config"),
        ("sample", [], "ckpt is required"),
        ("evaluate", ["ckpt=x", "num_samples=1"], "num_samples=1 is not valid"),
        (
            "evaluate",
            ["ckpt=x", "bpd=maybe"],
            "bpd='maybe' is not valid; choose one of false, true, vlb, ode",
        ),
        ("evaluate", ["ckpt=x", "bpd_examples=0"], "bpd_examples=0 is not valid"),
    ],
)
def test_bad_sample_and_evaluate_values(script, overrides, message):
    parse = {"sample": parse_sample, "evaluate": parse_evaluate}[script]
    with pytest.raises(ConfigError, match=message):
        parse(compose(script, *overrides))


def _preflight(name: str, *overrides: str, multirun: bool = False) -> None:
    from ddpm.cli.preflight import preflight
    from ddpm.config import PARSERS

    args = argparse.Namespace(overrides=list(overrides), multirun=multirun, config_dir=None)
    preflight(name, CONF, args, PARSERS[name])


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["schedul=cosine"], "schedul is not a config group or key; did you mean schedule?"),
        (
            ["schedule=cosin"],
            "schedule=cosin is not an option of schedule; did you mean schedule=cosine?",
        ),
        (
            ["model.lr_decy=cosine"],
            "model.lr_decy is not a key of model; did you mean model.lr_decay?",
        ),
        (["experiment=toy2d", "dataset.nme=moons"], "dataset.nme .* did you mean dataset.name"),
        (["ckpt_path=run/step=100.ckpt"], "quote it, e.g. ckpt_path='run/step=100.ckpt'"),
        (["dataset=toy2d"], "ddpm.nets.UNet is an image network .* use a network for points"),
    ],
)
def test_composition_errors_are_one_line_with_the_closest_name(overrides, message):
    with pytest.raises(ConfigError, match=message) as e:
        _preflight("train", *overrides)
        raise AssertionError("not refused")  # pragma: no cover
    assert "\n" not in str(e.value)


def test_hydra_interpolations_and_dropped_callbacks_compose():
    _preflight("train", "logger=wandb", "logger.name=${hydra:job.name}")
    _preflight("train", "callbacks.checkpoint=null")  # last.ckpt keeps its own cadence


def test_help_with_a_bad_override_is_one_line(capsys):
    from ddpm.cli.help import print_help

    args = argparse.Namespace(overrides=["schedule=nope"], multirun=False, config_dir=None)
    with pytest.raises(ConfigError, match="schedule=nope is not an option of schedule"):
        print_help("train", CONF, args)


def test_the_projects_checkpoint_names_need_no_quoting():
    _preflight("sample", "ckpt=runs/a/checkpoints/step_0001000.ckpt")
    _preflight("sample", "ckpt=runs/a/checkpoints/best_step_0000500.ckpt")
    _preflight("sample", "ckpt='runs/a/checkpoints/step=1000.ckpt'")  # older names, quoted


def test_every_job_of_a_sweep_is_checked_before_any_runs():
    with pytest.raises(ConfigError, match=r"seed='x' is not valid.*job 1 of the sweep"):
        _preflight("train", "seed=0,x", multirun=True)


def test_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already holds a run"):
        check_run_dir(tmp_path, None, False)
    check_run_dir(tmp_path, None, True)
    check_run_dir(tmp_path, str(tmp_path / "checkpoints" / "last.ckpt"), False)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ([], True),  # the digits have labels and the UNet takes them
        (["network=homework_unet_8px"], False),  # its forward(x, k) takes no labels
        (["dataset=toy2d", "dataset.name=swissroll", "network=mlp"], False),  # no labels
        (["model=vae", "network=conv_vae"], None),  # the VAE has no such option: dropped
        (["model.conditional=false"], False),
    ],
)
def test_the_defaults_auto_conditional_follows_the_data_and_network(overrides, expected):
    cfg = parse_train(compose("train", *overrides))
    assert cfg.raw["model"].get("conditional") == expected  # what checkpoints store
    assert cfg.conditional == bool(expected)


def test_a_conditional_that_is_not_true_false_or_auto_names_all_three():
    with pytest.raises(
        ConfigError, match="model.conditional='maybe' is not valid; it must be true, false or auto"
    ):
        parse_train(compose("train", "model.conditional=maybe"))
