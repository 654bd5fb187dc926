"""The judging terms' settings on ``model=consistency`` (the adversarial term and DMD's), checked
once when the module is built: the sampler levels they judge (``model.adversarial_steps``,
``model.adversarial_levels``) and where their trained weights come from (``model.teacher``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from ddpm.checks import ConfigError
from ddpm.fewstep.consistency import ConsistencyPath, consistency_plan
from ddpm.samplers.consistency import check_levels
from ddpm.targets import parameters


def adversarial_plan(
    path: ConsistencyPath, weight: float, steps: int, levels: Sequence[float] | None
) -> list[float]:
    """The levels whose sampler outputs the judging terms judge (none: the pairs' outputs);
    ``weight``: the terms' weights summed. A setting that would be ignored or that the sampler
    would refuse is refused."""
    if steps == 0:
        if levels is not None:
            raise ConfigError(
                f"model.adversarial_levels={list(levels)} needs model.adversarial_steps > 0 "
                f"(the sampler's calls they are revisited in)"
            )
        return []
    if weight == 0:
        raise ConfigError(
            f"model.adversarial_steps={steps} has no effect with model.adversarial=0 and "
            f"model.dmd=0; give a term a weight, e.g. model.adversarial=0.01"
        )
    check_levels(steps, levels, "model.adversarial_steps", "model.adversarial_levels")
    plan = consistency_plan(path, steps, levels)
    if len(plan) > 1 and plan[1] >= plan[0]:
        raise ConfigError(
            f"model.adversarial_levels={plan[1:]} must lie below sigma_max={plan[0]:g}"
        )
    return plan


def takes(build: Callable[..., nn.Module], argument: str) -> bool:
    """Whether a discriminator's builder (a class or a partial of one) names ``argument`` (one
    taking only ``**kwargs`` is not handed a network it may not want)."""
    return argument in parameters(build)[0]


def check_teacher(
    teacher: str | None, init: str | None, disc: nn.Module | None, dmd: float = 0.0
) -> None:
    """``model.teacher`` only for a feature discriminator or DMD, which need trained weights;
    DMD always (its real denoiser is a diffusion model, which ``init`` need not be)."""
    has_backbone = getattr(disc, "backbone", None) is not None
    if dmd > 0 and not teacher:
        raise ConfigError(
            f"model.dmd={dmd} compares the model's outputs with a trained diffusion model's "
            f"denoiser: give model.teacher=CKPT (a diffusion checkpoint of ours)"
        )
    if teacher and not has_backbone and dmd == 0:
        raise ConfigError(
            f"model.teacher={teacher} is the feature discriminator's network and DMD's real "
            f"denoiser, but the run has neither; add model/discriminator=features and "
            f"model.adversarial > 0, or model.dmd > 0, or drop it"
        )
    if has_backbone and not (teacher or init):
        raise ConfigError(
            "model/discriminator=features reads a trained network's features: give "
            "model.teacher=CKPT (a diffusion checkpoint of ours) or model.init=CKPT"
        )
