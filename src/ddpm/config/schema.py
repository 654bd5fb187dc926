"""The typed run configuration of the three entry points. Hydra composes plain values; these
schemas turn them into typed objects once, at the entry point, with one clear error for a wrong
type or an out-of-range value (the key, the value, what it must be) before anything is built.

Groups whose option names a ``_target_`` (dataset, network, schedule, model, trainer, logger,
callbacks, sampler) are checked against that target's own signature, so a plug-in from a user's
package is checked the same way as ours; the keys the framework owns are dataclass fields here.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, Literal

from ddpm.checks import (
    ConfigError,
    NonNegativeInt,
    PositiveInt,
    Range,
    check_value,
)
from ddpm.config.plugin import Plugin, optional_plugin, unknown_keys
from ddpm.config.wiring import check_wiring, resolve_auto_conditional
from ddpm.samplers.denoiser import ReverseVariance
from ddpm.samplers.spec import SamplerSpec

# arguments the framework passes itself
NETWORK_INPUTS = ("in_channels", "image_size", "dim", "num_classes", "class_cond", "learn_sigma")
MODULE_INPUTS = ("net", "schedule", "optimizer", "decoder", "run_config")
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

    @classmethod
    def parse(cls, node: Mapping | None) -> DenoiserConfig:
        node = node or {}
        unknown_keys(node, [f.name for f in fields(cls)], "denoiser")
        return cls(**parse_fields(cls, node, "denoiser."))


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
        check_devices(out.devices)
        return out


def check_devices(devices) -> None:
    if isinstance(devices, int) and devices != -1 and devices < 1:
        raise ConfigError(
            f"trainer.devices={devices} is not valid; use a positive count, -1 (all) or 'auto'"
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
    check_devices(trainer.kwargs.get("devices", 1))
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
    schedule: Plugin
    sampler: SamplerSpec
    denoiser: DenoiserConfig
    trainer: Plugin
    logger: Plugin | None
    callbacks: Mapping[str, Plugin]
    raw: Mapping[str, Any]  # the resolved config as plain containers, stored in checkpoints

    @property
    def conditional(self) -> bool:
        return bool(self.model.kwargs.get("conditional", False))

    @property
    def learned_variance(self) -> bool:
        return self.model.kwargs.get("variance") == "learned_range"


@dataclass(frozen=True)
class _TrainTop:
    seed: NonNegativeInt = 0
    ckpt_path: str | None = None
    overwrite: bool = False
    run_dir: str = "."


TRAIN_GROUPS = (
    "model", "dataset", "network", "schedule", "sampler", "denoiser", "trainer", "logger", "callbacks",
)  # fmt: skip


def parse_train(raw: Mapping[str, Any]) -> TrainConfig:
    """train.py's composed config (plain, resolved) -> :class:`TrainConfig`, or ConfigError."""
    unknown_keys(raw, [*(f.name for f in fields(_TrainTop)), *TRAIN_GROUPS], "train.py's config")
    top = parse_fields(_TrainTop, raw)
    for group in ("model", "dataset", "network", "schedule", "sampler", "trainer"):
        if raw.get(group) is None:
            raise ConfigError(f"{group} is required: choose one with {group}=NAME")
    trainer = parse_trainer(raw["trainer"])  # first: the model's max_steps interpolates its value
    dataset = Plugin.from_config(raw["dataset"], "dataset")
    datamodule = dataset.build()
    raw = resolve_auto_conditional(raw, datamodule)
    model = Plugin.from_config(raw["model"], "model", provided=MODULE_INPUTS)
    network = Plugin.from_config(raw["network"], "network", provided=NETWORK_INPUTS)
    check_model = getattr(model.fn, "check_config", None)
    if check_model is not None:
        check_model(dict(model.kwargs), network.fn)
    schedule = Plugin.from_config(raw["schedule"], "schedule")
    sampler = SamplerSpec.from_config(raw["sampler"], "sampler")
    sampler.check_steps(schedule.build().num_timesteps)  # builds it: a cheap, complete check
    callbacks = {
        name: Plugin.from_config(node, f"callbacks.{name}", provided=("sampler", "denoiser"))
        for name, node in (raw.get("callbacks") or {}).items()
        if node is not None
    }
    conditional = bool(model.kwargs.get("conditional", False))
    learned = model.kwargs.get("variance") == "learned_range"
    check_wiring(network, datamodule, conditional, learned)
    denoiser = DenoiserConfig.parse(raw.get("denoiser"))
    if denoiser.variance == "analytic":
        raise ConfigError(
            "denoiser.variance=analytic needs the Gamma estimates of a trained network, which a "
            "run being trained does not have; use it in sample.py/evaluate.py after "
            "python -m ddpm.estimate_gamma CKPT"
        )
    if denoiser.variance == "learned_range" and not learned:
        raise ConfigError("denoiser.variance=learned_range needs model.variance=learned_range")
    return TrainConfig(
        **top,
        model=model,
        dataset=dataset,
        network=network,
        schedule=schedule,
        sampler=sampler,
        denoiser=denoiser,
        trainer=trainer,
        logger=optional_plugin(raw.get("logger"), "logger"),
        callbacks=callbacks,
        raw=raw,
    )


# --- sample.py / evaluate.py -----------------------------------------------------------------------
@dataclass(frozen=True)
class DrawConfig:
    """What sample.py and evaluate.py share: the checkpoint, the sampler, which samples."""

    ckpt: str | None = None
    num_samples: PositiveInt = 64
    seed: NonNegativeInt = 0
    batch_size: PositiveInt = 256
    use_ema: bool = True
    class_label: int | list[int] | None = None
    guidance_scale: float = 1.0
    progress: bool = True
    run_dir: str = "."
    sampler: Any = None  # SamplerSpec
    denoiser: Any = None  # DenoiserConfig
    trainer: Any = None  # DeviceConfig


@dataclass(frozen=True)
class SampleConfig(DrawConfig):
    """sample.py (``conf/sample.yaml``)."""

    trajectory: bool = False
    trajectory_frames: Annotated[int, Range(2)] = 10


@dataclass(frozen=True)
class FidConfig:
    weights_path: str | None = None
    cache_dir: str = "~/.cache/ddpm"


@dataclass(frozen=True)
class EvaluateConfig(DrawConfig):
    """evaluate.py (``conf/evaluate.yaml``)."""

    num_samples: Annotated[int, Range(2)] = 1000
    bpd: Literal[False, True, "vlb", "ode"] = False
    bpd_examples: PositiveInt | None = None
    bpd_timesteps_per_call: PositiveInt = 10
    iw_samples: PositiveInt = 256
    fid: Any = None  # FidConfig


_NOT_HERE = {
    k: "the checkpoint fixes it (the run's model, data and schedule come from ckpt)"
    for k in ("dataset", "network", "schedule", "model", "logger", "callbacks", "experiment")
}


def _parse_draw(cls, raw: Mapping[str, Any], script: str):
    groups = ("sampler", "denoiser", "trainer", "fid") if cls is EvaluateConfig else (
        "sampler", "denoiser", "trainer",
    )  # fmt: skip
    scalar = [f.name for f in fields(cls) if f.name not in groups]
    unknown_keys(raw, [*scalar, *groups], f"{script}'s config", _NOT_HERE)
    values = parse_fields(cls, {k: v for k, v in raw.items() if k in scalar})
    del values["sampler"], values["denoiser"], values["trainer"]
    values.pop("fid", None)
    if not values["ckpt"]:
        raise ConfigError(f"ckpt is required: python {script} ckpt=path/to/checkpoints/last.ckpt")
    extra = {}
    if cls is EvaluateConfig:
        fid = raw.get("fid") or {}
        unknown_keys(fid, [f.name for f in fields(FidConfig)], "fid")
        extra["fid"] = FidConfig(**parse_fields(FidConfig, fid, "fid."))
    if raw.get("sampler") is None:
        raise ConfigError("sampler is required: choose one with sampler=NAME")
    return cls(
        **values,
        **extra,
        sampler=SamplerSpec.from_config(raw["sampler"], "sampler"),
        denoiser=DenoiserConfig.parse(raw.get("denoiser")),
        trainer=DeviceConfig.parse(raw.get("trainer")),
    )


def parse_sample(raw: Mapping[str, Any]) -> SampleConfig:
    return _parse_draw(SampleConfig, raw, "sample.py")


def parse_evaluate(raw: Mapping[str, Any]) -> EvaluateConfig:
    return _parse_draw(EvaluateConfig, raw, "evaluate.py")
