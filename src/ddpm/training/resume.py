"""Resuming a run: the settings that define the model must be the checkpoint's own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddpm.checks import ConfigError

MODEL_DEFINING = (
    "schedule",
    "network",
    "model._target_",
    "model.prediction",
    "model.variance",
    "model.conditional",
    "data_shape",
    "data_kind",
    "num_classes",
)


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


def model_differences(stored: Mapping, now: Mapping) -> list[str]:
    """``key: checkpoint value -> new value`` for every model-defining setting that changed."""
    out = []
    for key in MODEL_DEFINING:
        old, new = _flat(_get(stored, key), key), _flat(_get(now, key), key)
        for k in sorted(set(old) | set(new)):
            a, b = old.get(k), new.get(k)
            if a != b and not (isinstance(a, (list, tuple)) and list(a) == list(b or [])):
                out.append(f"{k}={a!r} in the checkpoint, {b!r} now")
    return out


def check_resume(ckpt: Mapping, path: str, run_config: Mapping) -> None:
    """Refuse to resume a checkpoint into a different model, naming each difference (training
    settings such as the learning rate or max_steps may change)."""
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
