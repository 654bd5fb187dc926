"""Starting a run from another run's model: ECT tunes a trained EDM model (``model.init``),
progressive distillation starts its student and first teacher from one (``model.teacher``).

The checkpoint must hold a diffusion model of the same formulation, network (dropout aside: ECT
tunes with more), data and latent space as the run (each difference named in one line), and its
EMA weights are what is loaded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ddpm.checkpoint import checkpoint_config, load_checkpoint
from ddpm.checks import ConfigError
from ddpm.config import ModelRecipe
from ddpm.training.resume import _with_defaults, signature

TRAINING_ONLY_NETWORK = ("dropout",)  # network options a tuning run may change


def _network(recipe: ModelRecipe) -> dict:
    """A network config with its defaults, the training-only options aside."""
    node = _with_defaults({"_target_": recipe.network.target, **recipe.network.kwargs})
    return {k: v for k, v in node.items() if k not in TRAINING_ONLY_NETWORK}


def _process(path) -> tuple[str, dict]:
    """A path as what defines its process: its name and options, the training-only ones aside."""
    options = {k: v for k, v in vars(path).items() if k not in path.training_only}
    return path.name, options


def check_start(
    stored: Mapping[str, Any],
    run: Mapping[str, Any],
    where: str,
    key: str,
    kinds: tuple[str, ...] = ("diffusion",),
) -> None:
    """Refuse a starting checkpoint whose model differs from the run's (``run`` is the run config
    the module stores) or is of none of the model ``kinds`` (a consistency run also continues a
    consistency model)."""
    recipe = ModelRecipe.from_run_config(stored, where)
    from ddpm.training.module import DiffusionModule

    family_cls = getattr(recipe.model.fn, "model_family", None)
    is_module = isinstance(recipe.model.fn, type) and issubclass(recipe.model.fn, DiffusionModule)
    if not is_module or getattr(family_cls, "kind", None) not in kinds:
        family = getattr(family_cls, "family", "model")
        also = "".join(f" or a {k} model" for k in kinds if k != "diffusion")
        raise ConfigError(
            f"{key}={where} is a {family} checkpoint ({recipe.model.target}); it must be a "
            f"diffusion model trained by train.py (model=diffusion){also}"
        )
    mine = ModelRecipe.from_run_config(run, "the run")
    theirs_path, my_path = recipe.build_path(), mine.build_path()
    (name, options), (my_name, my_options) = _process(theirs_path), _process(my_path)
    if name != my_name:
        raise ConfigError(
            f"{key}={where} is a model of path={name}; this run is on path={my_name}: start "
            f"from a checkpoint of the same path (model=consistency tunes a path=edm model)"
        )
    if options != my_options:
        diff = {
            k: (options.get(k), my_options.get(k))
            for k in options
            if options.get(k) != my_options.get(k)
        }
        raise ConfigError(
            f"{key}={where} has other path options than this run (checkpoint vs run: {diff}); "
            f"use the checkpoint's path settings"
        )
    checks: dict[str, tuple[Any, ...]] = {
        "network": tuple(_network(r) for r in (recipe, mine)),
        "data shape": (tuple(recipe.data.shape), tuple(mine.data.shape)),
        "model.conditional": (recipe.conditional, mine.conditional),
        "model.prediction": (recipe.prediction, mine.prediction),
        "latent": (signature(stored, "latent"), signature(run, "latent")),
    }
    for what, (a, b) in checks.items():
        if a != b:
            if isinstance(a, dict):
                a, b = (
                    {k: d.get(k) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
                    for d in (a, b)
                )
            raise ConfigError(
                f"{key}={where} differs from this run in its {what} ({a} vs {b}); the run must "
                f"build the checkpoint's model: use the checkpoint's settings"
            )


def start_from(module, where: str, key: str, receive=None) -> None:
    """Check the checkpoint at ``where`` against ``module``'s run and hand its EMA weights to
    ``receive`` (``module.start_from`` unless given; its ``kinds``, if it has them, are the model
    kinds it accepts, else diffusion models and the module's own kind)."""
    if not Path(where).exists():  # (load_checkpoint's hint names ckpt=, sample.py's key)
        raise ConfigError(
            f"{key}={where} does not exist; pass a checkpoint of ours, e.g. "
            f"RUN/checkpoints/last.ckpt"
        )
    ckpt = load_checkpoint(where)
    kinds = getattr(receive, "kinds", None) or tuple(
        dict.fromkeys(("diffusion", module.model_family.kind))
    )
    check_start(checkpoint_config(ckpt, where), module.hparams.run_config, where, key, kinds)
    prefix = "ema."
    state = {
        k[len(prefix) :].replace("_orig_mod.", ""): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(prefix)
    }
    (receive or module.start_from)(state)
