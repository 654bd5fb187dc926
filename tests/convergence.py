"""Measuring a sampler's order of convergence to the probability-flow ODE.

On the discrete chain the step lists visit trained levels, so on a T = 1000 schedule the last
steps cannot shrink below one index (k = 1 -> 0 is 0.35 in log-SNR): every sampler meets that
floor. Orders are therefore measured on a fine schedule (T = 100,000, the same process) over
log-SNR-uniform lists that stop at ``k_end`` (where one index is a negligible step), against the
ODE solved to the same point, both then denoised at ``k_end`` by the same exact model."""

from __future__ import annotations

import math

import torch

from ddpm.oracles import GaussianMixture
from ddpm.paths import DDPMPath
from ddpm.samplers import Denoiser
from ddpm.samplers.ode import probability_flow
from ddpm.schedule import k_at_log_snr, make_schedule

FINE = make_schedule("linear", 100_000)
FINE_PATH = DDPMPath(FINE)
K_END = 2000  # lambda = 2.56, alpha_bar = 0.994
SMOOTH = GaussianMixture(
    torch.tensor([0.5, 0.5]).double(),
    torch.tensor([[-0.5, 0.0], [0.5, 0.2]]).double(),
    torch.tensor([0.3, 0.4]).double(),
)
GAUSSIAN = GaussianMixture.gaussian(torch.tensor([0.3, -0.2]), 0.5)
# A two-component 2-D mixture whose denoiser is exact, for the samplers' end-to-end tests.
MIX = GaussianMixture(
    torch.tensor([0.3, 0.7]).double(),
    torch.tensor([[-0.7, 0.0], [0.7, 0.2]]).double(),
    torch.tensor([0.2, 0.25]).double(),
)


def x_T_2d(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` float64 draws of the 2-D prior N(0, I)."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def log_snr_steps(n: int, schedule=FINE, k_end: int = K_END) -> torch.Tensor:
    """``n`` trained indices uniform in log-SNR from ``T - 1`` to ``k_end``."""
    T = schedule.num_timesteps
    lam = torch.linspace(schedule.log_snr[T - 1].item(), schedule.log_snr[k_end].item(), n)
    return k_at_log_snr(schedule, lam.double()).round().long()


def levels(ks: torch.Tensor, path=FINE_PATH) -> torch.Tensor:
    """The step list of trained indices ``ks``: their noise levels, then 0."""
    return torch.cat([path.noise_level(ks), torch.zeros(1, dtype=torch.float64)])


def start(x_T: torch.Tensor, sigmas: torch.Tensor, path=FINE_PATH) -> torch.Tensor:
    """A standard normal draw as the sampler's first state: scaled to the prior."""
    return x_T * path.prior_scale(float(sigmas[0]))


_REFERENCES: dict[tuple[int, int], tuple[GaussianMixture, torch.Tensor, torch.Tensor]] = {}


def reference(mix: GaussianMixture, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_T, ODE solution at K_END)`` for ``n`` fixed starting points, solved once per mixture
    (rtol = atol = 1e-12) and kept, since every fitted order needs the same one."""
    key = (id(mix), n)
    if key not in _REFERENCES or _REFERENCES[key][0] is not mix:
        ends = levels(torch.tensor([FINE.num_timesteps - 1, K_END]))
        x_T = start(
            torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
            ends,
        )
        den = Denoiser(mix.model_fn(FINE, "eps"), FINE_PATH)
        _REFERENCES[key] = (mix, x_T, probability_flow(den, x_T, ends, rtol=1e-12, atol=1e-12))
    return _REFERENCES[key][1:]


def errors(fn, steps_list, mix=SMOOTH, n: int = 256, **options) -> list[float]:
    """Mean distance to the ODE solution for each number of steps (``fn`` a sampler function)."""
    x_T, ref = reference(mix, n)
    model = mix.model_fn(FINE, "eps")
    out = []
    for steps in steps_list:
        gens = [torch.Generator().manual_seed(i) for i in range(n)]
        x = fn(
            Denoiser(model, FINE_PATH), x_T, levels(log_snr_steps(steps)), generator=gens, **options
        )
        out.append((x - ref).norm(dim=1).mean().item())
    return out


def log_log_slope(steps_list, errs) -> float:
    """Minus the least-squares slope of log(error) against log(steps): the order."""
    xs = torch.tensor([math.log(s) for s in steps_list])
    ys = torch.tensor([math.log(e) for e in errs])
    return -(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum()).item()


def fitted_order(fn, steps_list=(16, 32, 64), mix=SMOOTH, **options) -> float:
    """The slope of log(error) against log(steps), by least squares."""
    return log_log_slope(steps_list, errors(fn, steps_list, mix, **options))


def check_recovers_the_mixture(x: torch.Tensor, what=None, mix: GaussianMixture = MIX) -> None:
    """Samples ``x`` of ``mix``: component weights within 4 binomial SE, component means within
    4 SE + 0.01, stds within 10%."""
    n = len(x)
    comp = mix.responsibilities(x, torch.ones(n, dtype=torch.float64)).argmax(1)
    for j in range(len(mix.weights)):
        w, sd = mix.weights[j].item(), mix.stds[j].item()
        frac = (comp == j).double().mean().item()
        assert abs(frac - w) < 4 * math.sqrt(w * (1 - w) / n), (what, j, frac)
        xj = x[comp == j]
        assert (xj.mean(0) - mix.means[j]).abs().max() < 4 * sd / math.sqrt(len(xj)) + 1e-2, what
        assert abs(xj.std(0).mean().item() / sd - 1) < 0.10, what
