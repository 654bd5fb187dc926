"""Share a trained model: as a diffusers pipeline folder, or as safetensors weights with the run
config. ``python -m ddpm.export CKPT OUT_DIR [--format diffusers|safetensors] [--use-ema true|false]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ddpm.checks import ConfigError
from ddpm.config import ModelRecipe
from ddpm.evaluation.loading import LoadedModel, load_model
from ddpm.export.diffusers_unet import unet_config, unet_state_dict
from ddpm.nets import UNet

PREDICTION_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def scheduler_config(model: LoadedModel) -> dict:
    """``DDPMScheduler`` settings that reproduce our schedule (its betas, hence alphas_cumprod),
    prediction type, reverse variance and x0 clipping."""
    recipe: ModelRecipe = model.recipe
    if recipe.prediction not in PREDICTION_TYPES:
        raise ConfigError(
            f"model.prediction={recipe.prediction} has no diffusers prediction_type (epsilon, "
            f"sample, v_prediction); export as --format safetensors instead"
        )
    return {
        "num_train_timesteps": model.schedule.num_timesteps,
        "trained_betas": model.schedule.betas.tolist(),
        "prediction_type": PREDICTION_TYPES[recipe.prediction],
        "variance_type": recipe.variance,  # fixed_small | fixed_large | learned_range: same names
        "clip_sample": True,
        "clip_sample_range": 1.0,
    }


def export_diffusers(ckpt: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """``OUT_DIR`` as a ``DDPMPipeline`` (``unet/``, ``scheduler/``, ``model_index.json``)."""
    try:
        from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
    except ImportError:
        raise ConfigError(
            "--format diffusers needs diffusers: pip install -e '.[export]'"
        ) from None
    model = load_model(ckpt, use_ema)
    if model.is_vae or not isinstance(model.net, UNet):
        kind = "a VAE" if model.is_vae else type(model.net).__name__
        raise ConfigError(
            f"{ckpt} holds {kind}; only ddpm.nets.UNet (network=unet) has a diffusers UNet2DModel "
            f"counterpart; export as --format safetensors instead"
        )
    kwargs = model.recipe.network.kwargs
    unet = UNet2DModel(**unet_config(kwargs, model.recipe.conditional))
    missing, unexpected = unet.load_state_dict(
        unet_state_dict(model.net.state_dict(), kwargs), strict=False
    )
    if missing or unexpected:  # the architectures differ: never export a partial model
        raise ConfigError(
            f"cannot map {ckpt} onto UNet2DModel (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    scheduler = DDPMScheduler(**scheduler_config(model))
    out = Path(out_dir)
    DDPMPipeline(unet=unet.eval(), scheduler=scheduler).save_pretrained(
        out, safe_serialization=True
    )
    return out


def export_safetensors(ckpt: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """``OUT_DIR/model.safetensors`` (the network's EMA or raw weights) and ``OUT_DIR/config.json``
    (the run config: ``ddpm.config.ModelRecipe.from_run_config`` rebuilds the network)."""
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ConfigError(
            "--format safetensors needs safetensors: pip install -e '.[export]'"
        ) from None
    model = load_model(ckpt, use_ema)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.net.state_dict().items()}
    save_file(state, out / "model.safetensors", metadata={"weights": "ema" if use_ema else "raw"})
    config = dict(model.recipe.config) | {"weights": "ema" if use_ema else "raw"}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def load_safetensors(out_dir: str | Path) -> torch.nn.Module:
    """The network of a ``--format safetensors`` export, built from its config."""
    from safetensors.torch import load_file

    config = json.loads((Path(out_dir) / "config.json").read_text())
    net = ModelRecipe.from_run_config(config, str(out_dir)).build_network()
    net.load_state_dict(load_file(Path(out_dir) / "model.safetensors"))
    return net.eval()


EXPORTERS = {"diffusers": export_diffusers, "safetensors": export_safetensors}
