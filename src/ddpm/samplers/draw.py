"""Draw samples ``i in indices`` from a network: the one path shared by sample.py, evaluate.py
and the training sample grid. Sample ``i`` depends only on ``(seed, i)``: its ``x_T`` and every
noise draw come from its own generator, whatever the batch or the device that draws it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ddpm.paths import Path, as_path
from ddpm.random import randn, sample_generators
from ddpm.samplers.denoiser import Denoiser, Guidance, ReverseVariance
from ddpm.samplers.spec import SamplerSpec
from ddpm.schedule import Schedule

DenoiserFactory = Callable[[Tensor | None], Denoiser]


def network_denoiser(
    net: Callable[..., Tensor],
    path: Path | Schedule,
    prediction: str = "auto",
    *,
    conditional: bool = False,
    learned: bool = False,
    clip_x0: bool = True,
    variance: ReverseVariance | None = None,
    guidance_scale: float = 1.0,
    analytic_gamma: Tensor | None = None,
    channels_last: bool = False,
    quantize: bool = True,
    guide_net: Callable[..., Tensor] | None = None,
    guide_conditional: bool = False,
    guidance_interval: tuple[float, float] | None = None,
    denoiser_cls: type[Denoiser] = Denoiser,
) -> DenoiserFactory:
    """``labels -> Denoiser`` for a network of the seam ``net(x, c_noise)`` (unconditional) or
    ``net(x, c_noise, y)`` (``conditional``; ``y = -1`` is the null label) trained on ``path``.
    With labels and ``guidance_scale != 1`` the unconditional prediction is mixed in
    (classifier-free guidance); with ``guide_net`` (a weaker network of the same path and
    prediction, given the labels when ``guide_conditional``) that network's prediction instead,
    labels or not (autoguidance); ``guidance_interval`` limits either to those noise levels
    (:class:`~ddpm.samplers.denoiser.Guidance`); ``denoiser_cls`` is the :class:`Denoiser` (a
    model family's own, e.g. MeanFlow's). ``variance`` defaults to the network's own: ``learned_range``
    when it is ``learned``, else ``fixed_small``.

    ``channels_last`` hands the network its images in channels-last memory format (the same
    values; only the layout of the convolutions changes). On CPU (oneDNN) that measured ~20%
    faster for inference of the Ho et al. CIFAR-10 UNet (794 vs 976 ms, batch 8) and no faster for
    the 8x8 digits UNet (``benchmarks/unet_step.py``, docs/results.md); on GPUs it is unmeasured."""
    variance = variance or ("learned_range" if learned else "fixed_small")
    path = as_path(path)
    if channels_last:
        net = _channels_last_inputs(net)

    unconditional_fn = unconditional(net, conditional)
    if guide_net is not None and channels_last:
        guide_net = _channels_last_inputs(guide_net)

    def make(y: Tensor | None) -> Denoiser:
        labelled = conditional and y is not None
        net_fn = (lambda x, c: net(x, c, y)) if labelled else unconditional_fn
        away: Callable[..., Tensor] | None
        if guide_net is not None and guide_conditional and y is not None:
            away = lambda x, c: guide_net(x, c, y)  # noqa: E731
        elif guide_net is not None:
            away = unconditional(guide_net, guide_conditional)
        else:
            away = unconditional_fn if labelled else None
        guidance = None
        if away is not None and guidance_scale != 1:
            guidance = Guidance(guidance_scale, away, guidance_interval)
        return denoiser_cls(
            net_fn, path, prediction, clip_x0, variance, guidance, analytic_gamma, learned,
            quantize,
        )  # fmt: skip

    return make


def unconditional(net: Callable[..., Tensor], conditional: bool) -> Callable[..., Tensor]:
    """``(x, c_noise) -> net output`` without a label: ``net(x, c_noise)``, or for a
    ``conditional`` network ``net(x, c_noise, y)`` with the null label ``y = -1``."""
    if not conditional:
        return lambda x, c: net(x, c)

    def fn(x: Tensor, c: Tensor) -> Tensor:
        return net(x, c, torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device))

    return fn


def _channels_last_inputs(net: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``net`` called with its image input (4-D) in channels-last memory format."""

    def call(x: Tensor, *rest: Tensor) -> Tensor:
        if x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return net(x, *rest).contiguous()

    return call


@torch.no_grad()
def draw_samples(
    make_denoiser: DenoiserFactory,
    spec: SamplerSpec,
    shape: Sequence[int],
    indices: Sequence[int],
    seed: int,
    batch_size: int = 256,
    labels: Tensor | None = None,
    device: torch.device | str = "cpu",
    trajectory_frames: int = 0,
    progress: Callable | None = None,
) -> tuple[Tensor, dict]:
    """Samples for ``indices`` (in that order) in batches of ``batch_size``, on ``device``.

    ``labels`` (one per index) are handed to ``make_denoiser`` batch by batch. Returns
    ``(x0 on CPU, info)``: ``info["nfe"]`` network evaluations per sample, and with
    ``trajectory_frames`` the kept frames of the first batch (``info["trajectory"]``, labelled
    ``info["trajectory_labels"]``)."""
    indices = list(indices)
    out, nfe, traj = [], 0, None
    starts = range(0, len(indices), batch_size)
    for b, start in enumerate(progress(starts) if progress else starts):
        idx = indices[start : start + batch_size]
        gens = sample_generators(seed, idx)
        y = labels[start : start + batch_size].to(device) if labels is not None else None
        denoiser = make_denoiser(y)
        noise = randn((len(idx), *shape), gens, device)
        frames = trajectory_frames if b == 0 else 0
        x0, _, kept = spec.draw(denoiser, noise, gens, trajectory_frames=frames)
        traj = kept or traj
        out.append(x0.float().cpu())
        nfe = denoiser.nfe
    x = torch.cat(out) if out else torch.zeros((0, *shape))
    info: dict[str, Any] = {"nfe": nfe, "trajectory": traj.frames if traj else None}
    if traj:
        info["trajectory_labels"] = traj.labels
    return x, info
