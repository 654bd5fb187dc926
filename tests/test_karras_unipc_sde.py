"""Karras et al.'s Euler and Heun, UniPC and stochastic DPM-Solver++(2M) against exact denoisers:
convergence order to the probability-flow ODE, network calls, batch-size invariance, churn."""

import importlib
import math

import pytest
import torch

from convergence import GAUSSIAN, MIX, check_recovers_the_mixture, fitted_order
from convergence import x_T_2d as _x_T
from ddpm.paths import DDPMPath
from ddpm.samplers import Denoiser, sample, sample_generators, step_levels
from ddpm.samplers.dpm_solver import dpm_solver
from ddpm.samplers.dpm_solver_sde import dpm_solver_sde
from ddpm.samplers.euler import euler
from ddpm.samplers.heun import heun
from ddpm.samplers.unipc import phi, unipc
from ddpm.schedule import make_schedule


@pytest.fixture(scope="module")
def sched():
    return make_schedule("linear", 1000)


@pytest.mark.parametrize(
    "fn,options,low,high",
    [
        (euler, {}, 0.9, 1.15),  # Karras et al. Algorithm 1 without the correction: first order
        (heun, {}, 1.8, 2.4),  # Algorithm 1: second order
        # UniPC-p: UniP-p is of order p, UniC lifts it to p + 1 (Zhao et al. Theorem 3.1); the
        # measured slopes are 2.0, 2.8 and 5.9 (3: still pre-asymptotic, above its order 4)
        (unipc, {"order": 1, "lower_order_final": False}, 1.8, 2.4),
        (unipc, {"order": 2, "lower_order_final": False}, 2.6, 3.4),
        (unipc, {"order": 2, "lower_order_final": False, "variant": "bh1"}, 2.6, 3.4),
        (unipc, {"order": 3, "lower_order_final": False}, 3.8, 7.0),
    ],
)
def test_convergence_order_on_the_gaussian(fn, options, low, high):
    assert low < fitted_order(fn, mix=GAUSSIAN, **options) < high


@pytest.mark.parametrize("corrector,steps", [(False, (32, 64, 128)), (True, (128, 256, 512))])
def test_sde_solver_at_eta_zero_is_a_second_order_ode_solver(corrector, steps):
    """The midpoint weight of the slope term (Lu et al.'s Algorithm 2) is second order too, with
    a longer pre-asymptotic range (local slopes 1.6, 1.95, 2.0 from 16 to 128 steps); the exact
    weight is DPM-Solver++(2M) itself (below). The trapezoidal corrector keeps the order (its
    errors are smaller to 64 steps, local slopes 1.3, 1.8, 1.9 from 32 to 256)."""
    options = {"eta": 0.0, "lower_order_final": False, "solver_type": "midpoint"}
    order = fitted_order(dpm_solver_sde, steps, GAUSSIAN, corrector=corrector, **options)
    assert 1.8 < order < 2.2


def test_sde_corrector_at_eta_zero_is_unipc_corrector_of_order_one(sched):
    """With three entries the method is one predictor step, one corrected step with the
    trapezoidal rule, one final denoise: UniPC's UniP-2 / UniC-1 with B(h) = e^h - 1 (Zhao et al.
    2023, implemented separately in :mod:`ddpm.samplers.unipc`). From four entries UniC uses two
    earlier points and they part."""
    fn, x_T = MIX.model_fn(sched), _x_T(32)
    sde = {"eta": 0.0, "solver_type": "midpoint", "corrector": True}
    uni = {"order": 2, "variant": "bh2", "final_corrector": False, "lower_order_final": False}
    for spacing in ("logsnr", "karras"):
        ref = sample(fn, sched, x_T, "unipc", steps=3, spacing=spacing, **uni)
        got = sample(fn, sched, x_T, "dpm_solver_sde", steps=3, spacing=spacing, **sde)
        assert torch.allclose(got, ref, atol=1e-12)
        no_corrector = sde | {"corrector": False}
        other = sample(fn, sched, x_T, "dpm_solver_sde", steps=3, spacing=spacing, **no_corrector)
        assert (other - ref).abs().max() > 1e-4


def test_sde_corrector_retakes_each_step_with_the_new_data_prediction(sched):
    """Against the method written out whole (Xue et al.'s predictor-corrector shape), on the
    ``x / alpha`` scale: each step from ``x_s`` once with the slope through the last two data
    predictions (predictor), then again from the same ``x_s`` with the slope to the prediction
    at the predicted state, the same noise, the midpoint weight ``(1 - e^{-H})/2`` (the sampler
    instead adds the difference)."""
    from ddpm.random import randn

    path = DDPMPath(sched)
    den, eta = Denoiser(MIX.model_fn(sched), path), 1.0
    sigmas = step_levels(path, 6, "logsnr").tolist()
    x_T = _x_T(16) * path.prior_scale(sigmas[0])

    def step(x_s, s_s, s_t, m_s, slope, z):
        h = math.log(s_s / s_t)
        decay = 1 - math.exp(-(1 + eta) * h)
        drift = s_t / s_s * math.exp(-eta * h) * x_s + decay * (m_s + h * slope / 2)
        return drift + s_t * math.sqrt(1 - math.exp(-2 * eta * h)) * z

    g = torch.Generator().manual_seed(5)
    x, previous = x_T, None
    x0 = den(x, sigmas[0]).x0
    for s_s, s_t in zip(sigmas[:-2], sigmas[1:-1]):
        z = randn(x.shape, g, dtype=x.dtype)
        slope = 0.0 if previous is None else (x0 - previous[1]) / (-math.log(s_s) - previous[0])
        x_pred = step(x, s_s, s_t, x0, slope, z)
        x0_t = den(x_pred, s_t).x0
        x = step(x, s_s, s_t, x0, (x0_t - x0) / math.log(s_s / s_t), z)
        previous, x0 = (-math.log(s_s), x0), x0_t
    got = sample(
        MIX.model_fn(sched), sched, _x_T(16), "dpm_solver_sde", steps=6, spacing="logsnr",
        eta=eta, generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    assert torch.allclose(got, x0, atol=1e-12)


def test_sde_corrector_shrinks_the_variance_error_on_a_gaussian(sched):
    """The predictor's slope, extrapolated from the last two data predictions, carries the noise
    just injected forward and inflates the output variance; the corrector interpolates it. On the
    isotropic Gaussian (std 0.5, closed form) at 20 steps, 20,000 samples: std error 0.018
    without, 0.008 with (0.017 and 0.007 with 400,000)."""
    fn = GAUSSIAN.model_fn(sched)
    x_T = _x_T(20_000)
    err = {}
    for corrector in (True, False):
        x = sample(
            fn, sched, x_T, "dpm_solver_sde", steps=20, corrector=corrector,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        err[corrector] = (x.std(0) - 0.5).abs().max().item()
        assert (x.mean(0) - torch.tensor([0.3, -0.2]).double()).abs().max() < 0.01
    assert err[True] < 0.6 * err[False]


def test_euler_is_ddim_and_sde_at_eta_zero_is_dpm_solver_2m(sched):
    """Karras et al. sec. 3: DDIM is Euler in sigma; the SDE family at eta = 0 with the exact
    linear interpolant is DPM-Solver++(2M)."""
    fn, x_T = MIX.model_fn(sched), _x_T(32)
    for spacing in ("uniform", "karras", "logsnr"):
        ref = sample(fn, sched, x_T, "ddim", steps=12, spacing=spacing)
        got = sample(fn, sched, x_T, "euler", steps=12, spacing=spacing)
        assert torch.allclose(got, ref, atol=1e-10)
    ref = sample(fn, sched, x_T, "dpm_solver", steps=12, order=2, lower_order_final=True)
    got = sample(
        fn, sched, x_T, "dpm_solver_sde", steps=12, eta=0.0, solver_type="exact",
        lower_order_final=True, corrector=False,
    )  # fmt: skip
    assert torch.allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize(
    "method,kw,nfe",
    [
        ("euler", {}, lambda n: n),
        ("euler", {"s_churn": 5.0}, lambda n: n),
        ("heun", {}, lambda n: 2 * n - 1),  # no correction on the last step, to sigma = 0
        ("heun", {"s_churn": 5.0}, lambda n: 2 * n - 1),
        ("unipc", {}, lambda n: n),  # the corrector reuses the next step's evaluation
        ("unipc", {"order": 3, "final_corrector": False}, lambda n: n),
        ("dpm_solver_sde", {}, lambda n: n),  # the corrector reuses the next evaluation
        ("dpm_solver_sde", {"corrector": False}, lambda n: n),
    ],
)
def test_network_calls(sched, method, kw, nfe):
    for steps in (1, 2, 7, 16):
        _, info = sample(
            MIX.model_fn(sched), sched, _x_T(4), method, steps=steps, return_info=True,
            generator=torch.Generator().manual_seed(0), **kw,
        )  # fmt: skip
        assert info["nfe"] == nfe(steps), (method, steps)


@pytest.mark.parametrize(
    "method,kw",
    [
        ("dpm_solver_sde", {}),
        ("dpm_solver_sde", {"solver_type": "exact", "eta": 0.5}),
        ("euler", {"s_churn": 10.0}),
        ("heun", {"s_churn": 10.0, "s_tmin": 0.05, "s_tmax": 50.0}),
        ("unipc", {}),
    ],
)
def test_batch_size_invariance_with_per_sample_generators(sched, method, kw):
    n, seed, fn = 10, 3, MIX.model_fn(sched)

    def run(lo, hi):
        gens = sample_generators(seed, range(lo, hi))
        return sample(fn, sched, _x_T(n)[lo:hi], method, steps=15, generator=gens, **kw)

    whole = run(0, n)
    parts = torch.cat([run(lo, hi) for lo, hi in [(0, 3), (3, 4), (4, 10)]])
    assert torch.allclose(parts, whole, atol=1e-12)
    if method != "unipc":  # and the noise matters: another seed gives other samples
        other = sample(
            fn, sched, _x_T(n), method, steps=15, generator=sample_generators(seed + 1, range(n)),
            **kw,
        )  # fmt: skip
        assert (other - whole).abs().max() > 1e-3


def test_churn_raises_sigma_to_a_trained_level(sched):
    """Algorithm 2 line 5 on the discrete chain: the smallest trained level reaching sigma
    (1 + gamma), the largest one at most; without quantizing, sigma (1 + gamma) itself."""
    path = DDPMPath(sched)
    levels = path.levels
    for k, gamma in [(0, 0.1), (37, math.sqrt(2) - 1), (500, 0.01), (998, 0.3)]:
        target = float(levels[k]) * (1 + gamma)
        got = path.quantize(target, up=True)
        k_hat = int((levels == got).nonzero())
        assert k_hat == 999 or got >= target * (1 - 1e-12)
        assert k_hat - 1 <= k or levels[k_hat - 1] < target
    den = Denoiser(MIX.model_fn(sched), path, quantize=False)
    assert den.quantize(1.2345, up=True) == 1.2345
    assert Denoiser(MIX.model_fn(sched), path).quantize(float(levels[123])) == float(levels[123])


def test_churn_outside_its_window_is_deterministic(sched):
    fn, x_T = MIX.model_fn(sched), _x_T(16)
    ref = sample(fn, sched, x_T, "heun", steps=10)
    got = sample(
        fn, sched, x_T, "heun", steps=10, s_churn=40.0, s_tmin=1e4, s_tmax=1e5,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert torch.equal(got, ref)


def test_unipc_phi_functions_on_both_sides_of_the_series_switch():
    """phi_n(z) = sum_j z^j/(j+n)! (series below |z| = 0.5, recursion above) against the series
    summed to 80 terms; phi_1(z) = (e^z - 1)/z."""
    for n in (1, 2, 3, 4):
        for z in (-1e-4, -0.3, -0.4999, -0.5001, -1.0, -3.0):
            ref = sum(z**j / math.factorial(j + n) for j in range(80))
            assert abs(phi(n, z) - ref) < 1e-12 * abs(ref), (n, z)
    assert abs(phi(1, -2.0) - math.expm1(-2.0) / -2.0) < 1e-15


def test_unipc_final_corrector_costs_nothing_and_helps(sched):
    """Closer to the ODE with the last correction kept (no extra network call)."""
    fn, x_T = MIX.model_fn(sched), _x_T(256)
    ref = sample(fn, sched, x_T, "ode", rtol=1e-10, atol=1e-10)
    err = {}
    for final in (True, False):
        x, info = sample(fn, sched, x_T, "unipc", steps=20, final_corrector=final, return_info=True)
        err[final] = (x - ref).norm(dim=1).mean().item()
        assert info["nfe"] == 20
    assert err[True] < err[False]


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_churn_samples_recover_the_mixture(sched, method):
    """With churn (Algorithm 2, gamma = 0.2 on 50 steps of the default spacing), weights within 4
    binomial SE, means within 4 SE + 0.01, stds within 10% (as test_samplers_recover_the_mixture).
    Heun's default 18 steps with gamma at its cap sqrt(2) - 1 are too few: its component means
    are 0.04 off."""
    n = 4000
    x = sample(
        MIX.model_fn(sched), sched, _x_T(n), method, steps=50, s_churn=10.0,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    check_recovers_the_mixture(x, method)


def test_samplers_take_any_step_list(sched):
    """Direct calls with a hand-made list (the signature every sampler shares)."""
    fn, x_T = MIX.model_fn(sched), _x_T(8) * 150
    sigmas = torch.tensor([150.0, 20.0, 3.0, 0.7, 0.2, 0.05, 0.0], dtype=torch.float64)
    for f in (euler, heun, unipc, dpm_solver_sde, dpm_solver):
        out = f(
            Denoiser(fn, DDPMPath(sched)), x_T, sigmas, generator=torch.Generator().manual_seed(0)
        )
        assert out.shape == x_T.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("fn", [dpm_solver, unipc])
def test_auto_order_is_second_below_its_threshold_and_third_from_it(fn, sched):
    """``order="auto"`` runs order 2 below ``THIRD_ORDER_FROM`` steps, 3 from it."""
    third_from = importlib.import_module(fn.__module__).THIRD_ORDER_FROM
    eps, x_T = GAUSSIAN.model_fn(sched, "eps"), _x_T(64)

    def run(steps, **order):
        return sample(eps, sched, x_T, fn, steps, spacing="logsnr", **order)

    for steps, order in [(5, 2), (third_from - 1, 2), (third_from, 3), (20, 3)]:
        auto = run(steps, order="auto")
        assert torch.equal(auto, run(steps, order=order))
        assert not torch.allclose(auto, run(steps, order=5 - order))
