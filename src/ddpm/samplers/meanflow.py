"""MeanFlow sampling (Geng et al. 2025, eq. 12): ``z_r = z_t - (t - r) u(z_t, r, t)`` with the
network's average velocity, one call per step, exact when ``u`` is; one step from the prior is
one-step generation. The steps are the step list's levels (``trailing`` spacing by default:
equal steps in ``t``)."""

from __future__ import annotations

from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.fewstep.meanflow import two_times
from ddpm.paths import as_levels, broadcast
from ddpm.random import Generator
from ddpm.samplers.denoiser import Denoiser
from ddpm.samplers.spec import StepCallback


class MeanFlowDenoiser(Denoiser):
    """A MeanFlow network as the samplers see it: ``denoiser(x, sigma)`` is the flow's denoiser
    of its instantaneous velocity ``u(z, t, t)`` (every ODE sampler runs on it), and
    :meth:`jump` is the average-velocity step. The network takes ``c_noise`` of shape
    ``(N, 2)``: ``(c_noise(t), c_noise(t) - c_noise(r))``; a one-column ``c_noise`` means
    ``r = t``."""

    def jump(self, x: Tensor, sigma, sigma_next) -> Tensor:
        """The state at level ``sigma_next`` from ``x`` at ``sigma`` (the ``x / alpha`` scale)."""
        n = x.shape[0]
        level, level_next = as_levels(sigma, n), as_levels(sigma_next, n)
        t, r = self.path.time_at(level), self.path.time_at(level_next)
        x_t = x * broadcast(self.path.alpha(t), x)
        out = self.output(x_t, two_times(self.path, t, r).to(x.device), level)
        x_r = x_t - broadcast(t - r, x_t) * out
        x_next = x_r / broadcast(self.path.alpha(r), x_r)
        return x_next.clamp(-1.0, 1.0) if self.clip_x0 and bool((level_next == 0).all()) else x_next


def meanflow(
    denoiser: MeanFlowDenoiser,
    x_T: Tensor,
    sigmas: Tensor,
    *,
    generator: Generator = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Average-velocity steps between consecutive levels of ``sigmas`` (``nfe = steps``);
    deterministic."""
    if not isinstance(denoiser, MeanFlowDenoiser):
        raise ConfigError(
            "sampler=meanflow takes average-velocity steps of a MeanFlow model (model=meanflow); "
            "this denoiser is not one"
        )
    x = x_T
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x = denoiser.jump(x, s, s_next)
        if callback is not None:
            callback(i, s_next, x, x)
    return x


meanflow.models = ("meanflow",)  # type: ignore[attr-defined]
