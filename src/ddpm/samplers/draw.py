"""Draw samples ``i in indices`` from a network: the one path shared by sample.py, evaluate.py
and the training sample grid. Sample ``i`` depends only on ``(seed, i)``: its ``x_T`` and every
noise draw come from its own generator, whatever the batch or the device that draws it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from ddpm.samplers import check_method, sample
from ddpm.samplers.steps import randn, sample_generators
from ddpm.schedule import Schedule


@dataclass(frozen=True)
class SamplerSpec:
    """The sampler group of the config (``conf/sampler/*.yaml``) as a typed value."""

    method: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    spacing: str = "linspace"
    variance: str = "fixed_small"
    clip_x0: bool = True
    order: int = 2

    def __post_init__(self) -> None:
        check_method(self.method)

    @classmethod
    def from_dict(cls, d: dict) -> SamplerSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def net_model_fn(net: nn.Module, y: Tensor | None) -> Callable[[Tensor, Tensor], Tensor]:
    """``model_fn(x_t, k) = net(x_t, k, y)``, labels sliced to the batch by the caller."""
    return lambda x, k: net(x, k, y)


@torch.no_grad()
def draw_samples(
    net: nn.Module,
    schedule: Schedule,
    shape: Sequence[int],
    indices: Sequence[int],
    seed: int,
    spec: SamplerSpec,
    prediction: str = "eps",
    batch_size: int = 256,
    labels: Tensor | None = None,
    guidance_scale: float = 1.0,
    device: torch.device | str = "cpu",
    analytic_gamma: Tensor | None = None,
    return_trajectory: bool = False,
    progress: Callable | None = None,
) -> tuple[Tensor, dict]:
    """Samples for ``indices`` (in that order) in batches of ``batch_size``, on ``device``.

    ``labels`` (one per index, ``-1`` for unconditional) make a class-conditional network draw
    those classes; ``guidance_scale`` != 1 mixes in the unconditional prediction
    (classifier-free guidance). Returns ``(x0 on CPU, info)`` with ``info["nfe"]`` per sample and
    ``info["trajectory"]`` (frames of the first batch) when asked.
    """
    indices = list(indices)
    out, nfe, traj = [], 0, None
    starts = range(0, len(indices), batch_size)
    for b, start in enumerate(progress(starts) if progress else starts):
        idx = indices[start : start + batch_size]
        gens = sample_generators(seed, idx)
        x_T = randn((len(idx), *shape), gens, device)
        y = labels[start : start + batch_size].to(device) if labels is not None else None
        guidance = None
        if y is not None and guidance_scale != 1.0:
            guidance = (guidance_scale, net_model_fn(net, None))
        x0, info = sample(
            net_model_fn(net, y),
            schedule,
            x_T,
            spec.method,
            steps=min(spec.steps, schedule.num_timesteps),
            eta=spec.eta,
            prediction=prediction,
            generator=gens,
            clip_x0=spec.clip_x0,
            guidance=guidance,
            return_info=True,
            return_trajectory=return_trajectory and b == 0,
            spacing=spec.spacing,
            variance=spec.variance,
            order=spec.order,
            analytic_gamma=analytic_gamma,
        )
        out.append(x0.float().cpu())
        nfe = info["nfe"]
        if return_trajectory and b == 0:
            traj = info["trajectory"]
    x = torch.cat(out) if out else torch.zeros((0, *shape))
    return x, {"nfe": nfe, "trajectory": traj}
