"""The typed configuration of sample.py and evaluate.py: the checkpoint, the sampler, which
samples, the devices; the model itself comes from the checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

from ddpm.checks import ConfigError, NonNegativeInt, PositiveInt, Range
from ddpm.config.plugin import unknown_keys
from ddpm.config.protocol import ProtocolConfig
from ddpm.config.schema import DenoiserConfig, DeviceConfig, parse_fields
from ddpm.samplers.spec import SamplerSpec


@dataclass(frozen=True)
class GuidanceConfig:
    """``guidance.*``: what guidance (``guidance_scale != 1``) guides away from, and where."""

    model: str | None = None  # autoguidance: a weaker checkpoint of the same path and data
    interval: list[float] | None = None  # [sigma_lo, sigma_hi]: guide only at these levels

    @classmethod
    def parse(cls, node: Mapping | None) -> GuidanceConfig:
        node = node or {}
        unknown_keys(node, [f.name for f in fields(cls)], "guidance")
        out = cls(**parse_fields(cls, node, "guidance."))
        lo_hi = out.interval
        if lo_hi is not None and not (len(lo_hi) == 2 and 0 <= lo_hi[0] < lo_hi[1]):
            raise ConfigError(
                f"guidance.interval={list(lo_hi)} is not valid; it must be [sigma_lo, sigma_hi] "
                f"with 0 <= sigma_lo < sigma_hi (noise levels, e.g. [0.28, 5.42])"
            )
        return out

    def span(self) -> tuple[float, float] | None:
        return None if self.interval is None else (float(self.interval[0]), float(self.interval[1]))


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
    guidance: Any = None  # GuidanceConfig


@dataclass(frozen=True)
class SampleConfig(DrawConfig):
    """sample.py (``conf/sample.yaml``)."""

    trajectory: bool = False
    trajectory_frames: Annotated[int, Range(2)] = 10


@dataclass(frozen=True)
class FidConfig:
    weights_path: str | None = None  # Inception
    dinov2_weights: str | None = None  # DINOv2 ViT-L/14, for FD-DINOv2
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
    protocol: Any = None  # ProtocolConfig


_NOT_HERE = {
    k: "the checkpoint fixes it (the run's model, data and path come from ckpt)"
    for k in (
        "dataset",
        "network",
        "path",
        "schedule",
        "model",
        "logger",
        "callbacks",
        "experiment",
    )
}


def _parse_draw(cls, raw: Mapping[str, Any], script: str):
    groups: tuple[str, ...] = ("sampler", "denoiser", "trainer", "guidance")
    if cls is EvaluateConfig:
        groups += ("fid", "protocol")
    scalar = [f.name for f in fields(cls) if f.name not in groups]
    unknown_keys(raw, [*scalar, *groups], f"{script}'s config", _NOT_HERE)
    values = parse_fields(cls, {k: v for k, v in raw.items() if k in scalar})
    del values["sampler"], values["denoiser"], values["trainer"], values["guidance"]
    values.pop("fid", None), values.pop("protocol", None)
    if not values["ckpt"]:
        raise ConfigError(f"ckpt is required: python {script} ckpt=path/to/checkpoints/last.ckpt")
    extra: dict[str, Any] = {}
    if cls is EvaluateConfig:
        fid = raw.get("fid") or {}
        unknown_keys(fid, [f.name for f in fields(FidConfig)], "fid")
        extra["fid"] = FidConfig(**parse_fields(FidConfig, fid, "fid."))
        extra["protocol"] = ProtocolConfig.parse(raw.get("protocol"))
        extra["protocol"].check_files(extra["fid"].dinov2_weights)
    if raw.get("sampler") is None:
        raise ConfigError("sampler is required: choose one with sampler=NAME")
    return cls(
        **values,
        **extra,
        sampler=SamplerSpec.from_config(raw["sampler"], "sampler"),
        denoiser=DenoiserConfig.parse(raw.get("denoiser")),
        trainer=DeviceConfig.parse(raw.get("trainer")),
        guidance=GuidanceConfig.parse(raw.get("guidance")),
    )


def parse_sample(raw: Mapping[str, Any]) -> SampleConfig:
    return _parse_draw(SampleConfig, raw, "sample.py")


def parse_evaluate(raw: Mapping[str, Any]) -> EvaluateConfig:
    return _parse_draw(EvaluateConfig, raw, "evaluate.py")
