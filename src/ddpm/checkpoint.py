"""Loading checkpoints safely: ``torch.load(weights_only=True)`` only, with clear refusals."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from ddpm.schedule import Schedule


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe, or does not match the network."""


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only. A file that needs
    arbitrary unpickling (a ``__reduce__`` payload, a pickled class) is refused and its payload is
    never executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass ckpt=PATH to a .ckpt file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it contains pickled objects that weights_only loading does not "
            f"allow (it may run code). Only load checkpoints you trust, and re-save them as plain "
            f"tensors. Detail: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch checkpoint: {e}"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a ddpm training checkpoint (no state_dict)")
    return ckpt


def checkpoint_config(ckpt: dict, path: str | Path = "checkpoint") -> dict:
    """The run's configuration saved by :class:`ddpm.training.DiffusionModule`."""
    config = ckpt.get("hyper_parameters", {}).get("run_config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds no run configuration (was it written by train.py?)")
    return config


def build_network(config: dict) -> nn.Module:
    from hydra.utils import instantiate

    return instantiate(config["network"])


def load_network(
    ckpt: dict, config: dict, use_ema: bool = True, path: str | Path = "checkpoint"
) -> nn.Module:
    """The network of the checkpoint with its EMA (default) or raw weights, in eval mode."""
    net = build_network(config)
    prefix = "ema." if use_ema else "net."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"the weights in {path} do not match the network built from its config: "
            f"{str(e).splitlines()[0]}"
        ) from None
    return net.eval()


def load_schedule(config: dict) -> Schedule:
    from hydra.utils import instantiate

    return instantiate(config["schedule"])
