"""iPNDM (constant-step Adams-Bashforth in sigma space) against closed forms and exact denoisers:
its weights, order 1 = Euler = DDIM, full order on sigma-uniform lists, second order on others,
network calls and batch-size invariance."""

from fractions import Fraction

import pytest
import torch

from convergence import FINE, FINE_PATH, GAUSSIAN, MIX, fitted_order, levels, log_log_slope, start
from convergence import x_T_2d as _x_T
from ddpm.paths import DDPMPath
from ddpm.samplers import Denoiser, sample, step_levels
from ddpm.samplers.ipndm import ADAMS_BASHFORTH, ipndm
from ddpm.samplers.ode import probability_flow
from ddpm.schedule import k_at_log_snr, make_schedule


@pytest.fixture(scope="module")
def sched():
    return make_schedule("linear", 1000)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_adams_bashforth_weights_integrate_polynomials_below_their_order(order):
    """Over the step [0, 1] with past nodes at 0, -1, -2, ...: ``sum_j b_j q(-j) = int_0^1 q``
    for every polynomial of degree < order (= 1 / (m + 1) for u^m), and not for degree order."""
    weights = [Fraction(b).limit_denominator(100) for b in ADAMS_BASHFORTH[order]]
    assert [float(b) for b in weights] == list(ADAMS_BASHFORTH[order])
    for m in range(order + 1):
        quad = sum(b * Fraction(-j) ** m for j, b in enumerate(weights))
        assert (quad == Fraction(1, m + 1)) == (m < order), (order, m, quad)


def test_order_one_is_euler_and_ddim(sched):
    fn, x_T = MIX.model_fn(sched), _x_T(64)
    for spacing in ("quadratic", "karras"):
        got = sample(fn, sched, x_T, "ipndm", steps=12, spacing=spacing, order=1)
        for method in ("euler", "ddim"):
            ref = sample(fn, sched, x_T, method, steps=12, spacing=spacing)
            assert torch.allclose(got, ref, atol=1e-12), (spacing, method)
        assert not torch.allclose(got, sample(fn, sched, x_T, "ipndm", steps=12, spacing=spacing))


def sigma_uniform(n: int, sigma_from: float = 2.0, sigma_to: float = 0.25) -> torch.Tensor:
    """``n`` trained levels of the fine chain uniform in sigma, then 0."""
    sig = torch.linspace(sigma_from, sigma_to, n, dtype=torch.float64)
    return levels(k_at_log_snr(FINE, -sig.log()).round().long())


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_the_weights_order_shows_on_few_steps_uniform_in_sigma(order):
    """Constant steps in sigma, where the Adams-Bashforth weights are exact: on 8-32 steps (sigma
    2 -> 0.25, where the Gaussian's denoiser changes most; T = 100,000 schedule) the fitted slope
    of the error to the probability-flow ODE is the weights' order (measured 1.04, 1.95, 2.89,
    3.88). Asymptotically the warm start's Euler step limits every order to 2."""
    den = Denoiser(GAUSSIAN.model_fn(FINE, "eps"), FINE_PATH)
    x_T = start(_x_T(256), sigma_uniform(2))
    ref = probability_flow(den, x_T, sigma_uniform(2), rtol=1e-12, atol=1e-12)
    steps = (8, 16, 32)
    errs = [
        (ipndm(den, x_T, sigma_uniform(n), order=order) - ref).norm(dim=1).mean().item()
        for n in steps
    ]
    slope = log_log_slope(steps, errs)
    assert order - 0.3 < slope < order + 0.3, slope


@pytest.mark.parametrize("order,low,high", [(1, 0.9, 1.15), (3, 1.7, 2.3), (4, 1.7, 2.4)])
def test_second_order_on_a_log_snr_list(order, low, high):
    """On a list whose steps change size the constant-step weights cost the order: past 2 it is
    second order (the quadrature error of ``Delta sigma`` times the average slope; measured 1.9
    and 2.2 for orders 3 and 4 on 16-64 log-SNR-uniform steps)."""
    assert low < fitted_order(ipndm, mix=GAUSSIAN, order=order) < high


def test_network_calls_and_batch_size_invariance(sched):
    fn = MIX.model_fn(sched)
    for steps in (1, 2, 3, 7, 16):
        _, info = sample(fn, sched, _x_T(4), "ipndm", steps=steps, return_info=True)
        assert info["nfe"] == steps
    whole = sample(fn, sched, _x_T(10), "ipndm", steps=9)
    parts = torch.cat(
        [sample(fn, sched, _x_T(10)[a:b], "ipndm", steps=9) for a, b in [(0, 3), (3, 10)]]
    )
    assert torch.allclose(parts, whole, atol=1e-12)


def test_callback_sees_the_state_and_the_last_call_returns_x0(sched):
    """The callback gets the state the sampler hands on at the next level: each state's data
    prediction there equals the network's next one, and the output is the last call's ``x0``."""
    fn, path = MIX.model_fn(sched), DDPMPath(sched)
    sigmas = step_levels(path, 6, "quadratic")
    x_T = _x_T(16) * path.prior_scale(float(sigmas[0]))
    seen = []
    out = ipndm(
        Denoiser(fn, path), x_T, sigmas, callback=lambda i, s, x, x0: seen.append((s, x, x0))
    )
    assert [s for s, _, _ in seen] == sigmas[1:].tolist()
    den = Denoiser(fn, path)
    for (s_next, x, _), (_, _, x0_next) in zip(seen, seen[1:]):
        assert torch.allclose(den(x, s_next).x0, x0_next, atol=1e-12)
    assert torch.equal(out, seen[-1][2])
