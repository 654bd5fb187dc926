"""Our UNet (Ho et al.) as a diffusers ``UNet2DModel``: the same architecture block for block, so
the weights map one to one. Pure functions of the network's constructor arguments and weights."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ddpm.checks import ConfigError

GROUPS = 32  # diffusers' UNet2DModel normalises every width with 32 groups


def with_defaults(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``ddpm.nets.UNet``'s constructor arguments: ``kwargs`` over its own defaults."""
    from ddpm.nets import UNet

    params = inspect.signature(UNet).parameters
    return {n: p.default for n, p in params.items() if p.default is not p.empty} | dict(kwargs)


def unet_config(kwargs: Mapping[str, Any], conditional: bool) -> dict[str, Any]:
    """``UNet2DModel`` config for ``ddpm.nets.UNet(**kwargs)``, or a one-line refusal saying what
    diffusers cannot express."""
    kwargs = with_defaults(kwargs)
    ch, mult = kwargs["ch"], list(kwargs["ch_mult"])
    widths = [ch * m for m in mult]
    if any(w % GROUPS for w in widths):
        raise ConfigError(
            f"network widths {widths} are not all multiples of {GROUPS}: diffusers' UNet2DModel "
            f"normalises with {GROUPS} groups everywhere, ours with gcd(32, width); export as "
            f"--format safetensors instead"
        )
    classes = kwargs.get("num_classes") if conditional else None
    if conditional and not classes:
        raise ConfigError("a class-conditional network without num_classes cannot be exported")
    size, attn = kwargs["image_size"], set(kwargs["attn_resolutions"])
    resolutions = [size // 2**level for level in range(len(mult))]
    channels = kwargs["in_channels"]
    return {
        "sample_size": size,
        "in_channels": channels,
        "out_channels": (kwargs.get("out_channels") or channels)
        * (2 if kwargs.get("learn_sigma") else 1),
        "center_input_sample": False,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": False,  # ours is [sin, cos]
        "freq_shift": 0,  # frequencies 10000^(-i / half), as Ho et al.
        "down_block_types": [
            "AttnDownBlock2D" if r in attn else "DownBlock2D" for r in resolutions
        ],
        "up_block_types": [
            "AttnUpBlock2D" if r in attn else "UpBlock2D" for r in reversed(resolutions)
        ],
        "block_out_channels": widths,
        "layers_per_block": kwargs["num_res_blocks"],
        "mid_block_scale_factor": 1,
        "downsample_padding": 1,
        "downsample_type": "conv",
        "upsample_type": "conv",
        "dropout": kwargs["dropout"],
        "act_fn": "silu",
        "attention_head_dim": None,  # one head of the block's width, at every width
        "norm_num_groups": GROUPS,
        "norm_eps": 1e-5,
        "resnet_time_scale_shift": "default",
        "add_attention": True,
        # our class table, null label (index num_classes) included: added to the time embedding
        "num_class_embeds": classes + 1 if classes else None,
    }


def _resnet(ours: str, theirs: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for a, b in [("norm1", "norm1"), ("conv1", "conv1"), ("emb", "time_emb_proj"),
                 ("norm2", "norm2"), ("conv2", "conv2"), ("skip", "conv_shortcut")]:  # fmt: skip
        for p in ("weight", "bias"):
            if f"{ours}.{a}.{p}" in state:
                out[f"{theirs}.{b}.{p}"] = state[f"{ours}.{a}.{p}"]
    return out


def _attention(ours: str, theirs: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our 1x1 convolutions (qkv stacked) as diffusers' linear q, k, v and output layers."""
    w, b = state[f"{ours}.qkv.weight"][:, :, 0, 0], state[f"{ours}.qkv.bias"]
    c = w.shape[1]
    out = {f"{theirs}.group_norm.{p}": state[f"{ours}.norm.{p}"] for p in ("weight", "bias")}
    for i, name in enumerate(("to_q", "to_k", "to_v")):
        out[f"{theirs}.{name}.weight"] = w[i * c : (i + 1) * c]
        out[f"{theirs}.{name}.bias"] = b[i * c : (i + 1) * c]
    out[f"{theirs}.to_out.0.weight"] = state[f"{ours}.proj.weight"][:, :, 0, 0]
    out[f"{theirs}.to_out.0.bias"] = state[f"{ours}.proj.bias"]
    return out


def unet_state_dict(state: Mapping[str, Tensor], kwargs: Mapping[str, Any]) -> dict[str, Tensor]:
    """Our UNet's weights under ``UNet2DModel``'s names (ours are built in the same order: per
    level ``num_res_blocks`` residual blocks, each with attention at the chosen resolutions, then
    a down-sampler; the mid block; per level ``num_res_blocks + 1`` blocks and an up-sampler)."""
    kwargs = with_defaults(kwargs)
    levels, blocks = len(kwargs["ch_mult"]), kwargs["num_res_blocks"]
    out: dict[str, Tensor] = {}
    for a, b in [("conv_in", "conv_in"), ("time_embed.mlp.0", "time_embedding.linear_1"),
                 ("time_embed.mlp.2", "time_embedding.linear_2"), ("norm_out", "conv_norm_out"),
                 ("conv_out", "conv_out")]:  # fmt: skip
        out |= {f"{b}.{p}": state[f"{a}.{p}"] for p in ("weight", "bias")}
    if "class_embed.table.weight" in state:
        out["class_embedding.weight"] = state["class_embed.table.weight"]

    def block(ours: str, theirs: str, j: int) -> dict:
        mapped = _resnet(f"{ours}.0", f"{theirs}.resnets.{j}", state)
        if f"{ours}.1.qkv.weight" in state:
            mapped |= _attention(f"{ours}.1", f"{theirs}.attentions.{j}", state)
        return mapped

    n = 0
    for level in range(levels):
        for j in range(blocks):
            out |= block(f"down.{n}", f"down_blocks.{level}", j)
            n += 1
        if level != levels - 1:
            out |= {f"down_blocks.{level}.downsamplers.0.conv.{p}": state[f"down.{n}.0.conv.{p}"] for p in ("weight", "bias")}  # fmt: skip
            n += 1
    out |= _resnet("mid.0", "mid_block.resnets.0", state) | _resnet(
        "mid.2", "mid_block.resnets.1", state
    )
    out |= _attention("mid.1", "mid_block.attentions.0", state)
    n = 0
    for level in range(levels):
        for j in range(blocks + 1):
            out |= block(f"up.{n}", f"up_blocks.{level}", j)
            n += 1
        if level != levels - 1:
            out |= {f"up_blocks.{level}.upsamplers.0.conv.{p}": state[f"up.{n}.0.conv.{p}"] for p in ("weight", "bias")}  # fmt: skip
            n += 1
    return out
