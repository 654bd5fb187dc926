"""What a checkpoint's stored run config says about its model, read back once: the network, the
path, the data it was trained on and the model options, as typed values, and the model family
that builds a usable model from them.

Checkpoints written before paths existed stored a ``schedule`` and no ``path``: their model is the
discrete chain of that schedule (:func:`upgrade_run_config`), so they load, resume and sample as
before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ddpm.checks import ConfigError
from ddpm.config.plugin import Plugin
from ddpm.config.wiring import parameters_of
from ddpm.data.info import DataInfo
from ddpm.paths import Path
from ddpm.targets import locate, parameters

# keys older configs stated for the data, which the data now states itself
LEGACY_DATASET_KEYS = ("channels", "image_size", "num_classes", "dim")
DDPM_PATH = "ddpm.paths.ddpm.DDPMPath"


def _dataset(node: Mapping[str, Any]) -> Plugin:
    params, _, var_kw = parameters(locate(node["_target_"], "dataset._target_"))
    legacy = [k for k in LEGACY_DATASET_KEYS if k in node and k not in params and not var_kw]
    return Plugin.from_config({k: v for k, v in node.items() if k not in legacy}, "dataset")


def upgrade_run_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run config as this version writes it: a diffusion run of an older version (a
    ``schedule``, no ``path``) gets ``path: {_target_: DDPMPath, schedule: ...}``."""
    config = dict(config)
    model = config.get("model") or {}
    if "path" not in config and "schedule" in config and "path" in _model_params(model):
        config["path"] = {"_target_": DDPM_PATH, "schedule": config["schedule"]}
    return config


def _model_params(model: Mapping[str, Any]) -> dict:
    try:
        return parameters_of(model)
    except ConfigError:
        return {}


def data_info(config: Mapping[str, Any]) -> DataInfo:
    """The description of the data a run config stores (``data_shape`` at least)."""
    return DataInfo(
        config.get("data_name", "data"),
        tuple(config["data_shape"]),
        config.get("num_classes"),
        config.get("data_kind", "image"),
    )


@dataclass(frozen=True)
class ModelRecipe:
    """The model of a run: network (with the arguments it was built with), path (``None`` for a
    family without one, the VAE), the data's description, and the model options samplers need."""

    model: Plugin
    network: Plugin
    path: Plugin | None
    dataset: Plugin | None
    data: DataInfo
    prediction: str = "auto"
    variance: str = "fixed_small"  # the training variance: learned_range means a 2x output
    conditional: bool = False
    config: Mapping[str, Any] | None = None  # the whole stored run config (upgraded)
    latent: Plugin | None = None  # a latent model's autoencoder (factors resolved)
    latent_shape: tuple[int, ...] | None = None

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any], where: str = "checkpoint") -> ModelRecipe:
        try:
            config = upgrade_run_config(config)
            model = config["model"]
            node = {k: v for k, v in model.items() if k != "optimizer"}
            model_plugin = Plugin(model["_target_"], locate(model["_target_"]), node)
            network = Plugin.from_config(config["network"], "network")
            path = Plugin.from_config(config["path"], "path") if "path" in config else None
            dataset = _dataset(config["dataset"]) if "dataset" in config else None
            data = data_info(config)
            latent = (
                Plugin.from_config(config["latent"], "latent") if config.get("latent") else None
            )
            latent_shape = tuple(config["latent_shape"]) if latent is not None else None
        except (KeyError, TypeError) as e:
            raise ConfigError(f"{where} holds an incomplete run config (missing {e})") from None
        except ConfigError as e:
            raise ConfigError(f"{where}: its run config cannot be rebuilt: {e}") from None
        return cls(
            model_plugin,
            network,
            path,
            dataset,
            data,
            prediction=model.get("prediction", "auto"),
            variance=model.get("variance", "fixed_small"),
            conditional=bool(model.get("conditional", False)),
            config=config,
            latent=latent,
            latent_shape=latent_shape,
        )

    @property
    def learned(self) -> bool:
        return self.variance == "learned_range"

    @property
    def num_classes(self) -> int | None:
        """The classes a conditional model can draw (``None`` when unconditional)."""
        return self.data.num_classes if self.conditional else None

    def build_network(self) -> nn.Module:
        return self.network.build()

    def load_network(self, ckpt: Mapping[str, Any], use_ema: bool, where: str) -> nn.Module:
        """The network of the checkpoint ``ckpt`` with its EMA (default) or raw weights, in eval
        mode."""
        from ddpm.checkpoint import CheckpointError

        net = self.build_network()
        prefix = "ema." if use_ema else "net."
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        state = {k.replace("_orig_mod.", ""): v for k, v in state.items()}  # torch.compile wrappers
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(
                f"the weights in {where} do not match the network built from its config: "
                f"{str(e).splitlines()[0]}"
            ) from None
        return net.eval()

    def build_latent(self, where: str = "checkpoint"):
        """The autoencoder a latent model decodes with (``None`` for a model of the data)."""
        if self.latent is None:
            return None
        try:
            autoencoder = self.latent.build()
            autoencoder.check_unchanged(where)
            return autoencoder
        except ConfigError as e:
            raise ConfigError(
                f"{where} decodes with an autoencoder that cannot be loaded: {e}"
            ) from None

    def build_path(self) -> Path | None:
        return None if self.path is None else self.path.build()

    def build_model(self, net: nn.Module, where: str, analytic_gamma: Tensor | None = None):
        """The model family's object for ``net`` (the training module names its family)."""
        family = getattr(self.model.fn, "model_family", None)
        if family is None:
            raise ConfigError(f"{where}: model={self.model.target} names no model family")
        return family.from_recipe(self, net, where, analytic_gamma)
