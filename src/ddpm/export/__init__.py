"""Share a trained model: as a diffusers folder, or as safetensors weights with the run config.
``python -m ddpm.export CKPT OUT_DIR [--format diffusers|safetensors] [--use-ema true|false]``.

The diffusers folder holds our UNet as a ``UNet2DModel`` (``unet/``) and the scheduler of the
path it was trained on (``scheduler/``): ``path=ddpm`` a ``DDPMScheduler`` with our
``alphas_cumprod``; ``path=flow`` (velocity prediction) a ``FlowMatchEulerDiscreteScheduler``,
whose timesteps ``1000 t`` are our ``c_noise``; both with a ``model_index.json`` so
``DDPMPipeline.from_pretrained(OUT_DIR)`` runs them. ``path=edm`` (``precond: edm``) writes an
``EDMEulerScheduler`` whose preconditioning is ours; diffusers has no pipeline for an
unconditional UNet that scales its input, so that folder is run with the scheduler's own loop
(docs/interoperability.md). A DiT (``network=dit_*``) is written as a
``DiTTransformer2DModel`` in ``transformer/`` (:func:`export_dit`). Other paths export as
safetensors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ddpm.checks import ConfigError
from ddpm.config import ModelRecipe
from ddpm.evaluation.loading import LoadedModel, load_model
from ddpm.export.diffusers_dit import to_diffusers
from ddpm.export.diffusers_unet import unet_config, unet_state_dict
from ddpm.nets import DiT, UNet

PREDICTION_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
AS_SAFETENSORS = "export as --format safetensors instead"


def ddpm_scheduler_config(model, variance: str) -> dict:
    """``DDPMScheduler`` settings that reproduce the discrete chain (its betas, hence
    alphas_cumprod), prediction type, reverse variance (the trained ``model.variance``:
    fixed_small, fixed_large or learned_range, diffusers' names too) and x0 clipping."""
    if model.prediction not in PREDICTION_TYPES:
        raise ConfigError(
            f"model.prediction={model.prediction} has no diffusers prediction_type (epsilon, "
            f"sample, v_prediction); {AS_SAFETENSORS}"
        )
    schedule = model.path.schedule
    return {
        "num_train_timesteps": schedule.num_timesteps,
        "trained_betas": schedule.betas.tolist(),
        "prediction_type": PREDICTION_TYPES[model.prediction],
        "variance_type": variance,
        "clip_sample": True,
        "clip_sample_range": 1.0,
    }


def diffusers_scheduler(model, variance: str = "fixed_small"):
    """``(scheduler, runs_in_DDPMPipeline)`` for the path of ``model``, or a one-line refusal."""
    import diffusers

    path = model.path
    if path.name == "ddpm":
        return diffusers.DDPMScheduler(**ddpm_scheduler_config(model, variance)), True
    if path.name == "flow" and model.prediction == "velocity":
        return diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0), True
    if path.name == "edm" and path.precond == "edm":
        scheduler = diffusers.EDMEulerScheduler(
            sigma_min=path.sigma_min, sigma_max=path.sigma_max, sigma_data=path.sd,
            prediction_type="epsilon", rho=7.0,
        )  # fmt: skip
        return scheduler, False
    what = (
        f"path.precond={path.precond}"
        if path.name == "edm"
        else f"model.prediction={model.prediction}"
    )
    raise ConfigError(
        f"path={path.name} with {what} has no diffusers scheduler (diffusers has ddpm, flow with "
        f"velocity and edm with precond edm); {AS_SAFETENSORS}"
    )


def export_diffusers(ckpt: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """``OUT_DIR`` with ``unet/`` and ``scheduler/`` (and ``model_index.json`` for a
    ``DDPMPipeline`` where diffusers' pipeline runs the path)."""
    try:
        import diffusers
    except ImportError:
        raise ConfigError(
            "--format diffusers needs diffusers: pip install -e '.[export]'"
        ) from None
    loaded: LoadedModel = load_model(ckpt, use_ema)
    model = loaded.model.diffusion("--format diffusers")
    if model.kind != "diffusion":  # a consistency function or a two-time network
        raise ConfigError(
            f"{ckpt} is a {model.family}, which no diffusers scheduler samples; {AS_SAFETENSORS}"
        )
    if isinstance(model.net, DiT):
        return export_dit(loaded, model, Path(out_dir))
    if not isinstance(model.net, UNet):
        raise ConfigError(
            f"{ckpt} holds {type(model.net).__name__}; ddpm.nets.UNet (network=unet) and "
            f"ddpm.nets.DiT (network=dit_*) have diffusers counterparts; {AS_SAFETENSORS}"
        )
    if model.latent is not None:
        raise ConfigError(f"{ckpt} is a latent model; {AS_SAFETENSORS}")
    scheduler, runs_in_pipeline = diffusers_scheduler(model, loaded.recipe.variance)
    kwargs = loaded.recipe.network.kwargs
    unet = diffusers.UNet2DModel(**unet_config(kwargs, model.conditional))
    missing, unexpected = unet.load_state_dict(
        unet_state_dict(model.net.state_dict(), kwargs), strict=False
    )
    if missing or unexpected:  # the architectures differ: never export a partial model
        raise ConfigError(
            f"cannot map {ckpt} onto UNet2DModel (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    out = Path(out_dir)
    if runs_in_pipeline and model.conditional:  # labels and guidance: our pipeline, shipped along
        from ddpm.export.pipeline import ClassConditionalPipeline

        pipe = ClassConditionalPipeline(unet=unet.eval(), scheduler=scheduler)
        pipe.save_pretrained(out, safe_serialization=True)
        shutil.copy(Path(__file__).with_name("pipeline.py"), out / "pipeline.py")
    elif runs_in_pipeline:
        pipe = diffusers.DDPMPipeline(unet=unet.eval(), scheduler=scheduler)
        pipe.save_pretrained(out, safe_serialization=True)
    else:
        unet.eval().save_pretrained(out / "unet", safe_serialization=True)
        scheduler.save_pretrained(out / "scheduler")
    return out


def export_dit(loaded: LoadedModel, model, out: Path) -> Path:
    """``transformer/`` (a ``DiTTransformer2DModel`` computing our DiT's output on the same
    ``(x, timestep = c_noise, class_labels)``; an unconditional DiT takes ``class_labels=0``),
    ``scheduler/`` where diffusers has the path's scheduler, and for a model on a diffusers
    autoencoder's latents a copy of it in ``vae/``. diffusers' ``DiTPipeline`` assumes
    ImageNet's 1000 classes, so the folder is run with the scheduler's own loop."""
    transformer = to_diffusers(model.net, loaded.recipe.network.kwargs)
    transformer.save_pretrained(out / "transformer", safe_serialization=True)
    try:
        scheduler, _ = diffusers_scheduler(model, loaded.recipe.variance)
        scheduler.save_pretrained(out / "scheduler")
    except ConfigError:
        pass  # a path diffusers has no scheduler for: the transformer alone
    vae = getattr(model.latent, "path", None)
    if vae is not None:
        shutil.copytree(vae, out / "vae", dirs_exist_ok=True)
        config = json.loads((out / "vae" / "config.json").read_text())  # the factors it used
        config["scaling_factor"], config["shift_factor"] = model.latent.factors()
        (out / "vae" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
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
    loaded = load_model(ckpt, use_ema)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in loaded.net.state_dict().items()}
    save_file(state, out / "model.safetensors", metadata={"weights": "ema" if use_ema else "raw"})
    assert loaded.recipe.config is not None  # load_model's recipe holds the run config
    config = dict(loaded.recipe.config) | {"weights": "ema" if use_ema else "raw"}
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
