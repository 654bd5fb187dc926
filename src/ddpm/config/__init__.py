"""The typed run configuration: schemas for the three entry points, checked once when the config
is composed, and the recipe a checkpoint stores. Plain values in, typed objects out; nothing below
the entry points sees a DictConfig."""

from ddpm.checks import ConfigError
from ddpm.config.draw import EvaluateConfig, FidConfig, SampleConfig, parse_evaluate, parse_sample
from ddpm.config.plugin import Plugin
from ddpm.config.recipe import ModelRecipe, data_info, upgrade_run_config
from ddpm.config.schema import DenoiserConfig, DeviceConfig, TrainConfig, parse_train
from ddpm.config.wiring import data_inputs, network_kwargs

PARSERS = {"train": parse_train, "sample": parse_sample, "evaluate": parse_evaluate}

__all__ = [
    "PARSERS",
    "ConfigError",
    "DenoiserConfig",
    "DeviceConfig",
    "EvaluateConfig",
    "FidConfig",
    "ModelRecipe",
    "Plugin",
    "SampleConfig",
    "TrainConfig",
    "data_info",
    "data_inputs",
    "network_kwargs",
    "parse_evaluate",
    "parse_sample",
    "parse_train",
    "upgrade_run_config",
]
