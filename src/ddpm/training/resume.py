"""Resuming a run: the settings that define the model must be the checkpoint's own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddpm.checks import ConfigError
from ddpm.config import upgrade_run_config
from ddpm.config.ema import ema_sigma_rels
from ddpm.config.plugin import Plugin
from ddpm.targets import locate, parameters

MODEL_DEFINING = (
    "path",
    "network",
    "model._target_",
    "model.prediction",
    "model.variance",
    "model.conditional",
    "data_shape",
    "data_kind",
    "num_classes",
    "latent_shape",
)
# what makes a latent space, and a REPA term, the same (not where it is cached)
LATENT_KEYS = ("_target_", "fingerprint", "scaling_factor", "shift_factor")
REPA_KEYS = ("encoder", "depth", "projector_dim", "feature_dim")


def signature(config: Mapping, key: str) -> dict | None:
    """``latent`` or ``model.repa`` reduced to what defines the model (``None`` when off)."""
    node = _get(config, key)
    if (
        not isinstance(node, Mapping)
        or not node
        or (key == "model.repa" and not node.get("encoder"))
    ):
        return None
    return {k: node.get(k) for k in (LATENT_KEYS if key == "latent" else REPA_KEYS)}


def _flat(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out |= _flat(v, f"{prefix}.{k}")
        return out
    return {prefix: node}


def _get(config: Mapping, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _with_defaults(node: Any) -> Any:
    """A ``_target_`` node with the target's signature defaults filled in, so that a key a newer
    config states explicitly matches an older config that left it out."""
    if not isinstance(node, Mapping) or "_target_" not in node:
        return node
    try:
        params, _, _ = parameters(locate(node["_target_"]))
    except ConfigError:
        return node
    defaults = {n: p.default for n, p in params.items() if p.default is not p.empty}
    return {**defaults, **node}


def _same_path(old: Any, new: Any) -> bool:
    """Two path configs that build equal paths are the same formulation (for the discrete chain:
    the same alpha_bar table, though an older config may leave out keys a newer one states, e.g.
    ``rescale: true``)."""
    try:
        return Plugin.from_config(old, "path").build() == Plugin.from_config(new, "path").build()
    except Exception:  # noqa: BLE001 - unbuildable: compare the configs instead
        return False


def _changed(old: Any, new: Any) -> bool:
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return list(old) != list(new)
    return old != new


def model_differences(stored: Mapping, now: Mapping) -> list[str]:
    """``key=checkpoint value ..., new value now`` for every model-defining setting that
    changed."""
    stored, now = upgrade_run_config(stored), upgrade_run_config(now)
    out = []
    for key in MODEL_DEFINING:
        old, new = _get(stored, key), _get(now, key)
        if key == "path" and _same_path(old, new):
            continue
        old, new = _flat(_with_defaults(old), key), _flat(_with_defaults(new), key)
        # a schedule's builder options are not in make_schedule's signature: compare shared keys
        keys = set(old) & set(new) if key == "path" else set(old) | set(new)
        changed = [
            f"{k}={old.get(k)!r} in the checkpoint, {new.get(k)!r} now"
            for k in sorted(keys)
            if _changed(old.get(k), new.get(k))
        ]
        if key == "path" and not changed:
            changed = ["path: it builds a different process (for path=ddpm: alpha_bar differs)"]
        out += changed
    for key in ("latent", "model.repa"):
        if (old_sig := signature(stored, key)) != (new_sig := signature(now, key)):
            out.append(f"{key}={old_sig} in the checkpoint, {new_sig} now")
    old_ema, new_ema = ema_sigma_rels(stored), ema_sigma_rels(now)
    if old_ema != new_ema:  # the averages a run keeps are part of its state
        show = lambda rels: "ema=standard" if rels is None else f"ema=posthoc sigma_rels={rels}"  # noqa: E731
        out.append(f"{show(old_ema)} in the checkpoint, {show(new_ema)} now")
    return out


def check_resume(ckpt: Mapping, path: str, run_config: Mapping) -> None:
    """Refuse to resume a checkpoint into a different model, naming each difference (training
    settings such as the learning rate or max_steps may change)."""
    if "posthoc_ema" in ckpt:
        raise ConfigError(
            f"{path} holds post-hoc EMA weights built after training (python -m ddpm.posthoc_ema); "
            f"resume from the run's own checkpoints (last.ckpt or step_*.ckpt)"
        )
    stored = ckpt.get("hyper_parameters", {}).get("run_config")
    if not isinstance(stored, Mapping):
        raise ConfigError(f"{path} holds no run configuration (was it written by train.py?)")
    diffs = model_differences(stored, run_config)
    if diffs:
        raise ConfigError(
            f"cannot resume {path} with a different model: {'; '.join(diffs)}. Resume with the "
            f"checkpoint's settings (drop these overrides), or train a new run in another "
            f"hydra.run.dir"
        )
