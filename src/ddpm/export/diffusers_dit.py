"""Our DiT (:mod:`ddpm.nets.dit`) as a diffusers ``DiTTransformer2DModel``: the same blocks, so the
weights map one to one, except that the fused ``qkv`` projection is split into ``to_q``, ``to_k``,
``to_v`` and a shared conditioning embedding is copied into every block (diffusers gives each
block its own). Pure functions of the network's constructor arguments and weights."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ddpm.checks import ConfigError


def with_defaults(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    from ddpm.nets import DiT

    params = inspect.signature(DiT).parameters
    return {n: p.default for n, p in params.items() if p.default is not p.empty} | dict(kwargs)


def dit_config(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``DiTTransformer2DModel`` config for ``ddpm.nets.DiT(**kwargs)``. An unconditional DiT is
    written with one class whose embedding is zero (diffusers' DiT always adds a class
    embedding); call it with ``class_labels=0``."""
    kw = with_defaults(kwargs)
    if kw["mlp_ratio"] != 4.0:
        raise ConfigError(
            f"network.mlp_ratio={kw['mlp_ratio']}: diffusers' DiT has an MLP 4 times the width; "
            f"export as --format safetensors instead"
        )
    channels = kw["in_channels"]
    classes = kw["num_classes"] if kw["class_cond"] and kw["num_classes"] else 1
    return {
        "num_attention_heads": kw["num_heads"],
        "attention_head_dim": kw["hidden_size"] // kw["num_heads"],
        "in_channels": channels,
        "out_channels": channels * (2 if kw["learn_sigma"] else 1),
        "num_layers": kw["depth"],
        "dropout": kw["dropout"],
        "sample_size": kw["image_size"],
        "patch_size": kw["patch_size"],
        "activation_fn": "gelu-approximate",
        "num_embeds_ada_norm": classes,
        "norm_type": "ada_norm_zero",
        "norm_elementwise_affine": False,
        "norm_eps": 1e-6,
    }


def _linear(ours: str, theirs: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {f"{theirs}.weight": state[f"{ours}.weight"], f"{theirs}.bias": state[f"{ours}.bias"]}


def dit_state_dict(state: Mapping[str, Tensor], kwargs: Mapping[str, Any]) -> dict[str, Tensor]:
    """Our DiT's ``state_dict`` under ``DiTTransformer2DModel``'s names."""
    kw = with_defaults(kwargs)
    hidden, depth = kw["hidden_size"], kw["depth"]
    shared = kw["conditioning"] == "shared"
    out = _linear("embed", "pos_embed.proj", state)
    for i in range(depth):
        c, b, t = f"conditioning.{0 if shared else i}", f"blocks.{i}", f"transformer_blocks.{i}"
        emb = f"{t}.norm1.emb"
        out |= _linear(f"{c}.time.0", f"{emb}.timestep_embedder.linear_1", state)
        out |= _linear(f"{c}.time.2", f"{emb}.timestep_embedder.linear_2", state)
        table = state.get(f"{c}.labels.weight")
        if table is None:  # unconditional: one class with a zero embedding, and the null row
            table = torch.zeros(2, hidden, dtype=state[f"{c}.time.0.weight"].dtype)
        out[f"{emb}.class_embedder.embedding_table.weight"] = table
        out |= _linear(f"{b}.ada.1", f"{t}.norm1.linear", state)
        for name, w, bias in zip(
            ("to_q", "to_k", "to_v"),
            state[f"{b}.qkv.weight"].chunk(3),
            state[f"{b}.qkv.bias"].chunk(3),
        ):
            out[f"{t}.attn1.{name}.weight"], out[f"{t}.attn1.{name}.bias"] = w, bias
        out |= _linear(f"{b}.proj", f"{t}.attn1.to_out.0", state)
        out |= _linear(f"{b}.mlp.0", f"{t}.ff.net.0.proj", state)
        out |= _linear(f"{b}.mlp.3", f"{t}.ff.net.2", state)
    out |= _linear("ada_out.1", "proj_out_1", state)
    out |= _linear("out", "proj_out_2", state)
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def to_diffusers(net, kwargs: Mapping[str, Any]):
    """A ``DiTTransformer2DModel`` computing what ``net`` computes (eval mode)."""
    from diffusers import DiTTransformer2DModel

    model = DiTTransformer2DModel(**dit_config(kwargs))
    missing, unexpected = model.load_state_dict(
        dit_state_dict(net.state_dict(), kwargs), strict=False
    )
    if missing or unexpected:  # the architectures differ: never export a partial model
        raise ConfigError(
            f"cannot map the DiT onto DiTTransformer2DModel (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    return model.eval()
