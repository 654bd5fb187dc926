"""What a checkpoint's stored run config says about its model: enough to rebuild the network,
the schedule and the data it was trained on, as typed values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ddpm.checks import ConfigError
from ddpm.config.plugin import Plugin
from ddpm.data.info import DataInfo
from ddpm.nets.vae import VAE
from ddpm.schedule import Schedule
from ddpm.targets import locate, parameters

# keys older configs stated for the data, which the data now states itself
LEGACY_DATASET_KEYS = ("channels", "image_size", "num_classes", "dim")


def _dataset(node: Mapping[str, Any]) -> Plugin:
    params, _, var_kw = parameters(locate(node["_target_"], "dataset._target_"))
    legacy = [k for k in LEGACY_DATASET_KEYS if k in node and k not in params and not var_kw]
    return Plugin.from_config({k: v for k, v in node.items() if k not in legacy}, "dataset")


@dataclass(frozen=True)
class ModelRecipe:
    """The model of a run: network (with the arguments it was built with), schedule (``None``
    for the VAE baseline), the data's description, and the model options samplers need."""

    network: Plugin
    schedule: Plugin | None
    dataset: Plugin | None
    data: DataInfo
    prediction: str = "eps"
    variance: str = "fixed_small"  # the training variance: learned_range means a 2x output
    conditional: bool = False
    decoder_noise: bool = False
    config: Mapping[str, Any] | None = None  # the whole stored run config

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any], where: str = "checkpoint") -> ModelRecipe:
        try:
            model = config["model"]
            network = Plugin.from_config(config["network"], "network")
            is_vae = isinstance(network.fn, type) and issubclass(network.fn, VAE)
            schedule = None if is_vae else Plugin.from_config(config["schedule"], "schedule")
            dataset = _dataset(config["dataset"]) if "dataset" in config else None
            data = DataInfo(
                config.get("data_name", "data"),
                tuple(config["data_shape"]),
                config.get("num_classes"),
                config.get("data_kind", "image"),
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"{where} holds an incomplete run config (missing {e})") from None
        except ConfigError as e:
            raise ConfigError(f"{where}: its run config cannot be rebuilt: {e}") from None
        return cls(
            network,
            schedule,
            dataset,
            data,
            prediction=model.get("prediction", "eps"),
            variance=model.get("variance", "fixed_small"),
            conditional=bool(model.get("conditional", False)),
            decoder_noise=bool(model.get("decoder_noise", False)),
            config=config,
        )

    @property
    def is_vae(self) -> bool:
        """The VAE baseline (``model=vae``): sampled from its prior, scored by its ELBO."""
        return isinstance(self.network.fn, type) and issubclass(self.network.fn, VAE)

    @property
    def learned(self) -> bool:
        return self.variance == "learned_range"

    @property
    def num_classes(self) -> int | None:
        """The classes a conditional model can draw (``None`` when unconditional)."""
        return self.data.num_classes if self.conditional else None

    def build_network(self) -> nn.Module:
        return self.network.build()

    def build_schedule(self) -> Schedule | None:
        return None if self.schedule is None else self.schedule.build()
