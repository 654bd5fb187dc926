"""How the parts fit together: the network is sized by the data (shape and classes are stated
once, by the data) and shaped by the model (class conditioning, a learned variance)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from ddpm.checks import ConfigError
from ddpm.config.plugin import Plugin
from ddpm.data.info import DataInfo
from ddpm.targets import locate, parameters


def data_inputs(info: DataInfo) -> dict[str, Any]:
    """The constructor arguments a network takes from the data."""
    if info.is_image or len(info.shape) == 3:
        return {"in_channels": info.shape[0], "image_size": info.shape[-1]}
    return {"dim": info.shape[0]}


def forward_takes_labels(net_cls) -> bool:
    """Whether ``net(x, k, y)`` is possible: ``forward`` has a third parameter."""
    forward = getattr(net_cls, "forward", None)
    if forward is None:
        return False
    try:
        params = [p for p in inspect.signature(forward).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return True
    return len(params) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


def network_kwargs(
    network: Plugin,
    info: DataInfo,
    conditional: bool = False,
    learned: bool = False,
    time_inputs: int = 1,
) -> dict[str, Any]:
    """The network's keyword arguments: its own config plus what the data and the model say.

    Refuses a network for the other kind of data (an image network on 2-D points), a config that
    restates the data's shape differently, class conditioning for a network whose ``forward``
    takes no labels, a learned variance for a network that cannot output one, and two time inputs
    (``time_inputs``, MeanFlow's ``r`` and ``t``) for a network without that argument."""
    params, _, var_kw = parameters(network.fn)
    name = f"network._target_={network.target}"
    inputs = data_inputs(info)
    wants_image = any(p in params for p in ("in_channels", "image_size"))
    if wants_image and "dim" in inputs:
        raise ConfigError(
            f"{name} is an image network (in_channels, image_size) but the data "
            f"{info.name} are points of shape {tuple(info.shape)}; use a network for points, "
            f"e.g. network=mlp"
        )
    if "dim" in params and "dim" not in inputs:
        raise ConfigError(
            f"{name} is a network for points (dim) but the data {info.name} are images of "
            f"shape {tuple(info.shape)}; use an image network, e.g. network=unet"
        )
    derived: dict[str, Any] = {k: v for k, v in inputs.items() if k in params or var_kw}
    if "num_classes" in params:
        derived["num_classes"] = info.num_classes
    if "class_cond" in params:
        derived["class_cond"] = conditional
    elif conditional and not forward_takes_labels(network.fn):
        raise ConfigError(
            f"model.conditional=true needs a network whose forward takes labels, "
            f"forward(x, k, y); {name} takes forward(x, k)"
        )
    if "learn_sigma" in params:
        derived["learn_sigma"] = learned
    elif learned:
        raise ConfigError(
            f"model.variance=learned_range needs a network that outputs a variance "
            f"(a learn_sigma argument); {name} has none"
        )
    if "time_inputs" in params:
        derived["time_inputs"] = time_inputs
    elif time_inputs != 1:
        raise ConfigError(
            f"this model calls its network with {time_inputs} times, c_noise of shape (N, "
            f"{time_inputs}); {name} takes one (it has no time_inputs argument)"
        )
    for key, value in derived.items():
        stated = network.kwargs.get(key, value)
        if stated != value and not (key == "num_classes" and stated is None):
            raise ConfigError(
                f"network.{key}={stated!r} does not match the data/model ({key}={value!r}); "
                f"leave it out: it is taken from the data and the model"
            )
    return {**network.kwargs, **derived}


def check_labels(info: DataInfo, conditional: bool) -> None:
    if conditional and not info.num_classes:
        raise ConfigError(
            f"model.conditional=true needs a labelled dataset; {info.name} has no class labels"
        )


def check_wiring(
    network: Plugin,
    datamodule,
    conditional: bool,
    learned: bool,
    repa_depth: int | None = None,
    time_inputs: int = 1,
) -> None:
    """The checks between data, network and model that need no data read, run when the config is
    parsed (for every data module that knows its shape up front): the data fits the network and
    the network can be built for it (on the meta device: no memory, no time), e.g. an image size
    its levels can halve."""
    info = getattr(datamodule, "declared_info", None)
    if info is None:
        return
    check_labels(info, conditional)
    kwargs = network_kwargs(network, info, conditional, learned, time_inputs)
    try:
        with torch.device("meta"):
            net = network.fn(
                **{k: v.build() if isinstance(v, Plugin) else v for k, v in kwargs.items()}
            )
    except (ValueError, ConfigError) as e:
        raise ConfigError(
            f"network._target_={network.target} cannot be built for {info.name}: {e}"
        ) from None
    except Exception:  # noqa: BLE001 - anything else is reported when the network is really built
        return
    if repa_depth is not None:
        check_repa_depth(net, network.target, repa_depth)


def check_repa_depth(net, target: str, depth: int) -> None:
    """REPA reads the tokens of block ``depth``: the network must expose its blocks' tokens
    (``token_block``, ``token_grid``, ``token_dim``) and have that many blocks."""
    if not all(hasattr(net, a) for a in ("token_block", "token_grid", "token_dim")):
        raise ConfigError(
            f"model.repa aligns a transformer's tokens; network._target_={target} exposes none "
            f"(token_block, token_grid, token_dim): use network=dit_s_2 or another DiT"
        )
    try:
        net.token_block(depth)
    except ValueError as e:
        raise ConfigError(f"model.repa.depth={depth}: {e}") from None


def resolve_auto_conditional(raw: Mapping[str, Any], datamodule) -> Mapping[str, Any]:
    """``model.conditional: auto`` (the digits default's) becomes ``true`` when the data has class
    labels and the network's forward takes them, ``false`` otherwise, so ``python train.py
    dataset=image_folder`` trains an unconditional model; the resolved value is what checkpoints
    store. A model that takes no ``conditional`` (``model=vae``) drops the key."""
    model = raw.get("model")
    if not isinstance(model, Mapping) or model.get("conditional", False) in (True, False):
        return raw
    if model["conditional"] != "auto":
        raise ConfigError(
            f"model.conditional={model['conditional']!r} is not valid; it must be true, false "
            "or auto (class-conditional when the data has labels and the network takes them)"
        )
    model = dict(model)
    if "conditional" in parameters(locate(model.get("_target_", ""), "model._target_"))[0]:
        info = getattr(datamodule, "declared_info", None) or datamodule.info
        network = raw.get("network") or {}
        takes = forward_takes_labels(locate(network.get("_target_", ""), "network._target_"))
        model["conditional"] = bool(info.num_classes) and takes
    else:
        del model["conditional"]
    return {**raw, "model": model}


def resolve_path(raw: Mapping[str, Any]) -> tuple[Mapping[str, Any], Plugin | None]:
    """The run's path (``path=NAME``) checked against the model: ``model.prediction: auto``
    becomes the path's native target (eps on ddpm and vp, velocity on flow, F on edm) and the
    options only the discrete chain has are refused elsewhere, each in one line. A model that
    takes no path (``model=vae``) drops the ``path`` and ``schedule`` keys."""
    model = raw.get("model")
    if not isinstance(model, Mapping) or "_target_" not in model:
        return raw, None
    if "path" not in parameters_of(model):
        return {k: v for k, v in raw.items() if k not in ("path", "schedule")}, None
    if raw.get("path") is None:
        raise ConfigError("path is required: choose one with path=ddpm|vp|edm|flow")
    path = Plugin.from_config(raw["path"], "path")
    model = dict(model)
    resolve = getattr(path.fn, "resolve_prediction", None)
    if resolve is not None:
        model["prediction"] = resolve(model.get("prediction", "auto"))
    check = getattr(path.fn, "check_model", None)
    if check is not None:
        check(model)
    return {**raw, "model": model}, path


def data_module(
    dataset: Plugin, latent: Plugin | None, raw: Mapping[str, Any], keep_pixels: bool = False
):
    """The run's data module: the dataset's, or its latents when ``latent`` names an autoencoder
    (which then states the data's shape for the network, or refuses data it cannot encode);
    ``keep_pixels``: latent items also carry their image (for REPA's encoder)."""
    datamodule = dataset.build()
    if latent is None:
        return datamodule
    if "path" not in parameters_of(raw.get("model")):
        raise ConfigError(
            "latent=... trains a diffusion model in the latent space; model=vae has none"
        )
    from ddpm.latents.data import LatentDataModule

    return LatentDataModule(datamodule, latent.build(), raw["dataset"], keep_pixels=keep_pixels)


def parameters_of(model: Mapping[str, Any] | None) -> dict:
    """The constructor parameters of the model a config node names (none without a target)."""
    if not isinstance(model, Mapping) or "_target_" not in model:
        return {}
    return parameters(locate(model["_target_"], "model._target_"))[0]
