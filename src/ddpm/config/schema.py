"""The typed run configuration of the three entry points. Hydra composes plain values; these
schemas turn them into typed objects once, at the entry point, with one clear error for a wrong
type or an out-of-range value (the key, the value, what it must be) before anything is built.

Groups whose option names a ``_target_`` (dataset, network, path and its schedule, model, trainer,
logger, callbacks, sampler) are checked against that target's own signature, so a plug-in from a user's
package is checked the same way as ours; the keys the framework owns are dataclass fields here.
"""

from __future__ import annotations

import os
import sys
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

from ddpm.checks import (
    ConfigError,
    NonNegativeInt,
    PositiveInt,
    Range,
    check_value,
)
from ddpm.config.ema import EMAConfig
from ddpm.config.plugin import Plugin, optional_plugin, unknown_keys
from ddpm.config.wiring import check_wiring, data_module, resolve_auto_conditional, resolve_path
from ddpm.models import SamplingOptions
from ddpm.repa.loss import REPAConfig
from ddpm.samplers.denoiser import ReverseVariance
from ddpm.samplers.spec import SamplerSpec

if TYPE_CHECKING:
    from ddpm.paths.base import Path as DiffusionPath

# arguments the framework passes itself
NETWORK_INPUTS = (
    "in_channels", "image_size", "dim", "num_classes", "class_cond", "learn_sigma", "time_inputs",
)  # fmt: skip
MODULE_INPUTS = ("net", "path", "optimizer", "decoder", "run_config", "repa_encoder")
# trainer values Lightning accepts but a run of ours cannot use
TRAINER_RANGES = {
    "max_steps": Range(1),
    "log_every_n_steps": Range(1),
    "num_nodes": Range(1),
    "accumulate_grad_batches": Range(1),
    "gradient_clip_val": Range(0),
    "limit_val_batches": Range(0),
    "num_sanity_val_steps": Range(-1),
}


def parse_fields(cls, node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The dataclass ``cls``'s fields from ``node``, each checked against its annotation."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = {}
    for f in fields(cls):
        if f.name in node:
            value = node[f.name]
        elif f.default is not MISSING:
            value = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            raise ConfigError(f"{prefix}{f.name} is required")
        out[f.name] = check_value(value, hints[f.name], f"{prefix}{f.name}")
    return out


@dataclass(frozen=True)
class DenoiserConfig:
    """How a network becomes the denoiser samplers see (``denoiser.*``)."""

    clip_x0: bool = True  # clamp the x0 estimate to the data range [-1, 1]
    variance: ReverseVariance | None = None  # null: the model's own (learned, else fixed_small)
    channels_last: bool = False  # run the network on channels-last images (a speed choice)
    quantize: bool = True  # discrete chains: step lists and churn at trained levels only

    @classmethod
    def parse(cls, node: Mapping | None) -> DenoiserConfig:
        node = node or {}
        unknown_keys(node, [f.name for f in fields(cls)], "denoiser")
        return cls(**parse_fields(cls, node, "denoiser."))

    def options(
        self, guidance_scale: float = 1.0, interval: tuple[float, float] | None = None, guide=None
    ) -> SamplingOptions:
        return SamplingOptions(
            self.clip_x0, self.variance, self.channels_last, self.quantize, guidance_scale,
            interval, guide,
        )  # fmt: skip


@dataclass(frozen=True)
class DeviceConfig:
    """Where sample.py and evaluate.py run (``trainer.*``): one process per device."""

    accelerator: str = "auto"
    devices: int | str | list[int] = 1
    num_nodes: PositiveInt = 1
    precision: str | int = "32-true"

    @classmethod
    def parse(cls, node: Mapping | None) -> DeviceConfig:
        node = node or {}
        unknown_keys(node, [f.name for f in fields(cls)], "trainer (devices for sampling)")
        out = cls(**parse_fields(cls, node, "trainer."))
        check_devices(out.devices, out.accelerator)
        return out


_WARNED: set[int] = set()


def check_devices(devices, accelerator: str = "auto") -> None:
    """A device count Lightning can use, on an accelerator this machine has: a GPU asked for
    where there is none is one line (not Lightning's traceback); more CPU processes than cores
    run, with a warning (each gets less than a core)."""
    import torch

    if isinstance(devices, int) and devices != -1 and devices < 1:
        raise ConfigError(
            f"trainer.devices={devices} is not valid; use a positive count, -1 (all) or 'auto'"
        )
    count = devices if isinstance(devices, int) and devices > 0 else None
    if accelerator in ("gpu", "cuda"):
        gpus = torch.cuda.device_count()
        if gpus == 0:
            cuda = "without CUDA" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise ConfigError(
                f"trainer.accelerator={accelerator}: this machine has no CUDA GPU (torch "
                f"{torch.__version__}, {cuda}); use trainer=cpu, or trainer=auto to take a GPU "
                f"when there is one"
            )
        if count is not None and count > gpus:
            raise ConfigError(
                f"trainer.devices={count} is more than the {gpus} GPU(s) of this machine"
            )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps: this machine has no Apple GPU; use trainer=cpu")
    cores = os.cpu_count() or 1
    if accelerator == "cpu" and count is not None and count > cores and count not in _WARNED:
        _WARNED.add(count)  # the config is checked before each job and in it: say it once
        print(
            f"warning: trainer.devices={count} starts {count} processes on {cores} CPU cores; "
            f"each gets less than a core",
            file=sys.stderr,
        )


def parse_trainer(node: Mapping) -> Plugin:
    trainer = Plugin.from_config(node, "trainer", provided=("callbacks", "logger", "plugins"))
    for key, rng in TRAINER_RANGES.items():
        value = trainer.kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value not in rng:
            if key == "max_steps":
                raise ConfigError(
                    f"trainer.max_steps={value} is not valid; it must be an integer >= 1 (a run "
                    f"of this framework ends at a planned step: the LR decay and checkpoints use it)"
                )
            raise ConfigError(f"trainer.{key}={value} is not valid; it must be {rng.describe()}")
    check_devices(trainer.kwargs.get("devices", 1), str(trainer.kwargs.get("accelerator", "auto")))
    return trainer


@dataclass(frozen=True)
class TrainConfig:
    """train.py's configuration (``conf/train.yaml``)."""

    seed: NonNegativeInt
    ckpt_path: str | None
    overwrite: bool
    run_dir: str
    model: Plugin
    dataset: Plugin
    network: Plugin
    path: Plugin | None  # None for a model without one (model=vae)
    sampler: SamplerSpec
    denoiser: DenoiserConfig
    trainer: Plugin
    logger: Plugin | None
    callbacks: Mapping[str, Plugin]
    raw: Mapping[str, Any]  # the resolved config as plain containers, stored in checkpoints
    ema: EMAConfig = field(default_factory=EMAConfig)
    latent: Plugin | None = None  # the autoencoder of a latent diffusion model (latent=...)
    repa: REPAConfig = field(default_factory=REPAConfig)  # model.repa, checked

    @property
    def conditional(self) -> bool:
        return bool(self.model.kwargs.get("conditional", False))

    @property
    def learned_variance(self) -> bool:
        return self.model.kwargs.get("variance") == "learned_range"

    @property
    def time_inputs(self) -> int:
        """The time inputs the model calls its network with (MeanFlow: 2)."""
        return getattr(self.model.fn, "time_inputs", 1)


@dataclass(frozen=True)
class _TrainTop:
    seed: NonNegativeInt = 0
    ckpt_path: str | None = None
    overwrite: bool = False
    run_dir: str = "."


TRAIN_GROUPS = (
    "model", "dataset", "network", "path", "schedule", "sampler", "denoiser", "trainer", "logger",
    "callbacks", "ema", "latent",
)  # fmt: skip


def parse_train(raw: Mapping[str, Any]) -> TrainConfig:
    """train.py's composed config (plain, resolved) -> :class:`TrainConfig`, or ConfigError."""
    unknown_keys(raw, [*(f.name for f in fields(_TrainTop)), *TRAIN_GROUPS], "train.py's config")
    top = parse_fields(_TrainTop, raw)
    for group in ("model", "dataset", "network", "sampler", "trainer"):
        if raw.get(group) is None:
            raise ConfigError(f"{group} is required: choose one with {group}=NAME")
    trainer = parse_trainer(raw["trainer"])  # first: the model's max_steps interpolates its value
    dataset = Plugin.from_config(raw["dataset"], "dataset")
    latent = optional_plugin(raw.get("latent") or None, "latent")
    repa = REPAConfig.parse((raw.get("model") or {}).get("repa"))  # once: the data may keep pixels
    datamodule = data_module(dataset, latent, raw, keep_pixels=repa.enabled)
    raw = resolve_auto_conditional(raw, datamodule)
    raw, path = resolve_path(raw)
    model = Plugin.from_config(raw["model"], "model", provided=MODULE_INPUTS)
    network = Plugin.from_config(raw["network"], "network", provided=NETWORK_INPUTS)
    check_model = getattr(model.fn, "check_config", None)
    if check_model is not None:
        check_model(dict(model.kwargs), network.fn)
    sampler = SamplerSpec.from_config(raw["sampler"], "sampler")
    callbacks = {
        name: Plugin.from_config(node, f"callbacks.{name}", provided=("sampler", "denoiser"))
        for name, node in (raw.get("callbacks") or {}).items()
        if node is not None
    }
    conditional = bool(model.kwargs.get("conditional", False))
    learned = model.kwargs.get("variance") == "learned_range"
    time_inputs = getattr(model.fn, "time_inputs", 1)
    check_wiring(network, datamodule, conditional, learned, repa.depth if repa.enabled else None,
                 time_inputs)  # fmt: skip
    if (kind := getattr(getattr(model.fn, "model_family", None), "kind", None)) is not None:
        sampler.check_serves(kind, f"model={model.target.rsplit('.', 1)[-1]}")
    denoiser = DenoiserConfig.parse(raw.get("denoiser"))
    if path is not None:
        sampler.check_steps(path.build(), denoiser.quantize)  # builds it: cheap, complete check
        cast("type[DiffusionPath]", path.fn).check_variance(denoiser.variance)
    if denoiser.variance == "analytic":
        raise ConfigError(
            "denoiser.variance=analytic needs the Gamma estimates of a trained network, which a "
            "run being trained does not have; use it in sample.py/evaluate.py after "
            "python -m ddpm.estimate_gamma CKPT"
        )
    if denoiser.variance == "learned_range" and not learned:
        raise ConfigError("denoiser.variance=learned_range needs model.variance=learned_range")
    logger = optional_plugin(raw.get("logger"), "logger")
    if logger is not None and logger.target.endswith("WandbLogger"):
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise ConfigError(
                "logger=wandb needs the wandb package: pip install 'ddpm[wandb]' (or "
                "logger=csv / logger=tensorboard)"
            )
    ema = EMAConfig.parse(raw.get("ema"))
    if ema.kind == "posthoc" and not hasattr(model.fn, "averages"):
        raise ConfigError(
            f"ema=posthoc needs a model that keeps power-function averages "
            f"(ddpm.training.base.AveragedModule); {model.target} does not"
        )
    return TrainConfig(
        **top,
        model=model,
        dataset=dataset,
        network=network,
        path=path,
        sampler=sampler,
        denoiser=denoiser,
        trainer=trainer,
        logger=logger,
        callbacks=callbacks,
        raw=raw,
        ema=ema,
        latent=latent,
        repa=repa,
    )
