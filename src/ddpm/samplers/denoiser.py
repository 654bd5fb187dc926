"""The denoiser every sampler sees: ``D(x; sigma)``, a network of any path turned into the
estimate of ``x_0`` from a state ``x`` on the ``x / alpha`` scale at noise level ``sigma``
(Karras et al. 2022 eq. 2-3; k-diffusion's convention).

The caller builds it, so the path's preconditioning and prediction type, x0 clipping,
classifier-free guidance and the reverse variance live here once, not in each sampler; a sampler
only does its own numerical method, in noise levels, and runs on every path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.diffusion import VARIANCES, Variance
from ddpm.paths import Path, as_levels, as_path, broadcast
from ddpm.schedule import Schedule

NetFn = Callable[[Tensor, Tensor], Tensor]
ReverseVariance = Variance
REVERSE_VARIANCES = VARIANCES


@dataclass(frozen=True)
class Denoised:
    """What the denoiser says about ``x`` at ``sigma``: the clean-data estimate ``x0``, the noise
    estimate ``eps = (x - x0) / sigma`` (so ``x = x0 + sigma eps``), and the learned-variance
    output ``v`` in [-1, 1] when the network has one (Nichol & Dhariwal eq. 15)."""

    x0: Tensor
    eps: Tensor
    v: Tensor | None = None


@dataclass(frozen=True)
class Guidance:
    """Guide the network away from ``fn`` with weight ``scale``: ``D_w = D_fn + w (D - D_fn)``.

    ``fn`` is called like the network, ``fn(x_in, c_noise)``, on the same path and prediction: the
    unconditional branch of the same network (classifier-free guidance, Ho & Salimans 2022) or a
    weaker model of the same task (autoguidance, Karras et al. 2024, "Guiding a diffusion model
    with a bad version of itself", eq. 1). With ``interval = (lo, hi)`` the weight applies only
    at noise levels ``lo <= sigma <= hi``; elsewhere the network alone is used, one call
    (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves sample and
    distribution quality in diffusion models", sec. 3)."""

    scale: float
    fn: NetFn
    interval: tuple[float, float] | None = None

    def applies(self, level: Tensor) -> Tensor:
        """Per row: whether the guidance weight applies at ``level``."""
        if self.interval is None:
            return torch.ones(level.shape, dtype=torch.bool)
        lo, hi = self.interval
        return (level >= lo) & (level <= hi)


def guide(cond: Tensor, uncond: Tensor, scale: float, learned: bool) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6): ``uncond + w (cond - uncond)``;
    ``w = 0`` is the unconditional model, ``w = 1`` the conditional one. ``x0`` is affine in the
    network output with the same coefficients for both, so this is the same in any prediction
    type or preconditioning. A learned variance is taken from the conditional output."""
    if learned:
        (c, v), (u, _) = cond.chunk(2, dim=1), uncond.chunk(2, dim=1)
        return torch.cat([u + scale * (c - u), v], dim=1)
    return uncond + scale * (cond - uncond)


class Denoiser:
    """``denoiser(x, sigma) -> Denoised`` for a network ``net_fn(x_in, c_noise)`` of ``path``.

    * ``sigma``: a noise level (a float, or a tensor of one per row); ``x`` is on the
      ``x / alpha`` scale: ``x = x_0 + sigma eps`` for data ``x_0``.
    * ``prediction``: what the network outputs (the path's choices: eps, x0, v, velocity, mu, F);
      ``clip_x0`` clamps the ``x0`` estimate to the data range [-1, 1].
    * ``learned``: the network also outputs a variance (twice the channels); ``variance`` is the
      reverse variance of ancestral samplers (:meth:`reverse_variance`).
    * ``guidance``: a :class:`Guidance` (or ``(scale, fn)``): two network calls per call where
      it applies.
    * ``quantize``: on a discrete path, step lists and raised levels (churn) are rounded to
      trained levels (:meth:`quantize`); off, the network is also evaluated between them.
    * ``nfe`` counts network evaluations.
    """

    def __init__(
        self,
        net_fn: NetFn,
        path: Path | Schedule,
        prediction: str = "auto",
        clip_x0: bool = False,
        variance: ReverseVariance = "fixed_small",
        guidance: Guidance | tuple[float, NetFn] | None = None,
        analytic_gamma: Tensor | None = None,
        learned: bool | None = None,
        quantize: bool = True,
    ) -> None:
        if variance not in REVERSE_VARIANCES:
            raise ConfigError(
                f"unknown variance {variance!r}; choose one of {', '.join(REVERSE_VARIANCES)}"
            )
        path = as_path(path)
        path.check_variance(variance)
        self.learned = variance == "learned_range" if learned is None else learned
        if variance == "learned_range" and not self.learned:
            raise ConfigError("variance='learned_range' needs a network that outputs a variance")
        if isinstance(guidance, tuple):
            guidance = Guidance(*guidance)
        self.net_fn, self.path = net_fn, path
        self.prediction = path.resolve_prediction(prediction)
        self.clip_x0, self.variance, self.guidance = clip_x0, variance, guidance
        self.analytic_gamma, self.quantize_levels = analytic_gamma, quantize
        self.nfe = 0

    def output(self, x_in: Tensor, c_noise: Tensor, level: Tensor) -> Tensor:
        """The raw network output, guided at the rows where the guidance applies (``nfe``
        counts the calls made: two there, one elsewhere)."""
        self.nfe += 1
        out = self.net_fn(x_in, c_noise)
        g = self.guidance
        inside = None if g is None else g.applies(level)
        if inside is None or not inside.any():
            return out
        self.nfe += 1
        assert g is not None  # inside is None without guidance
        guided = guide(out, g.fn(x_in, c_noise), g.scale, self.learned)
        if inside.all():
            return guided
        return torch.where(inside.to(out.device).reshape(-1, *[1] * (out.ndim - 1)), guided, out)

    def __call__(self, x: Tensor, sigma) -> Denoised:
        level = as_levels(sigma, x.shape[0])
        t = self.path.time_at(level)
        x_t = x * broadcast(self.path.alpha(t), x)
        x_in, c_noise = self.path.network_input(x_t, t)
        out = self.output(x_in, c_noise, level)
        pred, v = out.chunk(2, dim=1) if self.learned else (out, None)
        x0 = self.path.x0(pred, x_t, t, self.prediction)
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        return Denoised(x0, (x - x0) / broadcast(level, x), v)

    def reverse_variance(
        self, out: Denoised, sigma: float, sigma_next: float, lambda2: float | None = None
    ) -> float | Tensor:
        """The variance of an ancestral step from ``sigma`` to ``sigma_next`` on the ``x / alpha``
        scale (:meth:`ddpm.paths.Path.reverse_variance`): ``fixed_small`` on every path, the
        discrete chain's others on ``path=ddpm``. ``lambda2``: the variance of the kernel family
        (DDIM's), for Analytic-DPM."""
        return self.path.reverse_variance(
            sigma, sigma_next, self.variance, v=out.v, gamma=self.analytic_gamma, lambda2=lambda2
        )

    def quantize(self, sigma: float, up: bool = False) -> float:
        """The level the network is evaluated at for ``sigma``: a trained level of a discrete path
        (the nearest, or with ``up`` the smallest at least ``sigma``) when ``quantize`` is on,
        else ``sigma`` itself. A sampler that raises the level (churn) asks this first."""
        return self.path.quantize(sigma, up) if self.quantize_levels else sigma

    def scale(self, sigma: float) -> float:
        """``alpha`` at ``sigma``: the factor from the ``x / alpha`` scale to the path's own."""
        return self.path.scale_at(sigma)
