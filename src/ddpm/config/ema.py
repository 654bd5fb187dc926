"""``ema.*``: which weight average a run keeps (``ema=standard`` or ``ema=posthoc``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ddpm.checks import ConfigError, PositiveInt
from ddpm.config.plugin import unknown_keys
from ddpm.power_ema import check_sigma_rel


@dataclass(frozen=True)
class EMAConfig:
    """``standard``: one exponential average with ``model.ema_decay`` (and its warm-up).
    ``posthoc``: EDM2's power-function averages of relative widths ``sigma_rels`` (the first is
    the one ``last.ckpt`` samples with), snapshots of all of them every ``snapshot_every`` steps
    into ``RUN/ema_snapshots/``, from which ``python -m ddpm.posthoc_ema`` builds any width."""

    kind: Literal["standard", "posthoc"] = "standard"
    sigma_rels: list[float] = field(default_factory=lambda: [0.05, 0.10])
    snapshot_every: PositiveInt = 500

    @classmethod
    def parse(cls, node: Mapping[str, Any] | None) -> EMAConfig:
        from ddpm.config.schema import parse_fields

        node = node or {}
        unknown_keys(node, [f.name for f in fields(cls)], "ema")
        out = cls(**parse_fields(cls, node, "ema."))
        rels = out.sigma_rels
        if not rels or len(set(rels)) != len(rels):
            raise ConfigError(
                f"ema.sigma_rels={list(rels)} is not valid; it must be one or more distinct "
                f"widths (EDM2 tracks [0.05, 0.10])"
            )
        for s in rels:
            check_sigma_rel(s, "ema.sigma_rels")
        return out

    @property
    def posthoc_sigma_rels(self) -> list[float] | None:
        return list(self.sigma_rels) if self.kind == "posthoc" else None


def ema_sigma_rels(run_config: Mapping[str, Any] | None) -> list[float] | None:
    """The post-hoc EMA widths a stored run config asks for (``None``: the standard EMA)."""
    return EMAConfig.parse((run_config or {}).get("ema")).posthoc_sigma_rels
