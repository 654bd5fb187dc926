"""Checks on the composed configuration, before any work. Plain dicts in, one clear error out."""

from __future__ import annotations

from pathlib import Path

from ddpm.diffusion import VARIANCES
from ddpm.losses import LOSS_TYPES
from ddpm.parameterization import PREDICTIONS
from ddpm.samplers import METHODS, SPACINGS
from ddpm.schedule import SCHEDULES


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the valid options."""


def _choice(value, options, key: str) -> None:
    if value not in options:
        raise ConfigError(
            f"{key}={value!r} is not valid; choose one of {', '.join(map(str, options))}"
        )


def _get(cfg: dict, dotted: str, default=None):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def validate_sampler(cfg: dict, num_timesteps: int) -> None:
    s = cfg.get("sampler") or {}
    _choice(s.get("method"), METHODS, "sampler.method")
    steps = s.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
        raise ConfigError(
            f"sampler.steps={steps!r} is not valid; it must be an integer in [1, {num_timesteps}] (schedule.num_timesteps)"
        )
    eta = s.get("eta", 0.0)
    if not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ConfigError(f"sampler.eta={eta!r} is not valid; it must lie in [0, 1]")
    _choice(s.get("spacing", "linspace"), SPACINGS, "sampler.spacing")
    _choice(s.get("variance", "fixed_small"), VARIANCES, "sampler.variance")
    _choice(s.get("order", 2), (1, 2, 3), "sampler.order")


def validate_schedule(cfg: dict) -> int:
    _choice(_get(cfg, "schedule.name"), SCHEDULES, "schedule.name")
    T = _get(cfg, "schedule.num_timesteps")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ConfigError(
            f"schedule.num_timesteps={T!r} is not valid; it must be a positive integer"
        )
    return T


VAE_TARGET = "ddpm.training.VAEModule"


def is_vae_config(cfg: dict) -> bool:
    """Whether the run trains the VAE baseline (``model=vae``) rather than a diffusion model."""
    return _get(cfg, "model._target_") == VAE_TARGET


def _validate_optimisation(m: dict) -> None:
    """Checks every model shares: learning rate and its schedule, EMA."""
    _choice(m.get("lr_decay"), ("none", "cosine"), "model.lr_decay")
    decay = m.get("ema_decay")
    if not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
        raise ConfigError(f"model.ema_decay={decay!r} is not valid; it must lie in [0, 1)")
    lr = m.get("lr")
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"model.lr={lr!r} is not valid; it must be a positive number")


def _validate_diffusion(cfg: dict) -> None:
    m = cfg["model"]
    _choice(m.get("prediction"), PREDICTIONS, "model.prediction")
    _choice(m.get("loss"), LOSS_TYPES, "model.loss")
    _choice(m.get("variance"), VARIANCES[:3], "model.variance")
    _choice(m.get("timestep_sampling"), ("uniform", "importance"), "model.timestep_sampling")
    p = m.get("cond_drop_prob", 0.1)
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"model.cond_drop_prob={p!r} is not valid; it must lie in [0, 1]")
    learn_sigma = bool(_get(cfg, "network.learn_sigma", False))
    if (m["variance"] == "learned_range") != learn_sigma:
        raise ConfigError(
            f"model.variance={m['variance']} needs network.learn_sigma={str(m['variance'] == 'learned_range').lower()} "
            f"(a learned variance doubles the network's output channels)"
        )
    if m["loss"] == "hybrid" and m["variance"] != "learned_range":
        raise ConfigError(
            "model.loss=hybrid trains the learned variance; set model.variance=learned_range network.learn_sigma=true"
        )
    if m.get("conditional") and not _get(cfg, "dataset.num_classes"):
        raise ConfigError(
            "model.conditional=true needs a labelled dataset (dataset.num_classes is not set)"
        )
    if _get(cfg, "network._target_", "").endswith("VAE"):
        raise ConfigError(
            f"network={cfg['network']['_target_']} is a VAE; train it with model=vae "
            f"(or experiment=digits_vae), or pick a denoiser: network=unet, simple_unet or mlp"
        )


def _validate_vae(cfg: dict) -> None:
    latent = _get(cfg, "network.latent_dim")
    if isinstance(latent, bool) or not isinstance(latent, int) or latent < 1:
        raise ConfigError(
            f"model=vae needs a VAE network with a positive integer network.latent_dim (got "
            f"{latent!r}); choose network=conv_vae (images) or network=mlp_vae (points)"
        )


def validate_train(cfg: dict) -> None:
    """Everything train.py needs, checked before the data is touched or a process is spawned."""
    T = validate_schedule(cfg)
    _validate_optimisation(cfg["model"])
    vae = is_vae_config(cfg)
    if vae:
        _validate_vae(cfg)
    else:
        _validate_diffusion(cfg)
    net = cfg.get("network", {})
    mult = net.get("ch_mult") or net.get("channels")
    size = net.get("image_size")
    # a UNet's last level keeps its resolution; every stage of the VAE's encoder halves it
    levels = None if mult is None else len(mult) - (0 if vae else 1)
    if levels is not None and size is not None and size % 2**levels:
        key = "network.ch_mult" if "ch_mult" in net else "network.channels"
        raise ConfigError(
            f"dataset image_size={size} is not divisible by 2^{levels}, the downsampling of "
            f"{key}={list(mult)}; use fewer levels or another image size"
        )
    validate_sampler(cfg, T)
    devices = _get(cfg, "trainer.devices", 1)
    if isinstance(devices, int) and devices == 0:
        raise ConfigError(
            "trainer.devices=0 is not valid; use a positive count, -1 (all) or 'auto'"
        )


def check_run_dir(run_dir: str | Path, ckpt_path: str | None, overwrite: bool) -> None:
    """A run never trains into another run's directory unless resuming it or told to overwrite."""
    last = Path(run_dir) / "checkpoints"
    if ckpt_path is None and not overwrite and last.is_dir() and any(last.glob("*.ckpt")):
        raise ConfigError(
            f"{Path(run_dir).resolve()} already holds a run's checkpoints; resume it with "
            f"ckpt_path={last / 'last.ckpt'}, choose another hydra.run.dir, or pass overwrite=true"
        )
