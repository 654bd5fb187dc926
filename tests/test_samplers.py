"""Samplers against a model that is exact in closed form (Gaussian mixture denoiser)."""

import math

import pytest
import torch

from ddpm.analytic import GaussianMixture
from ddpm.samplers import SPACINGS, sample, sample_generators, timesteps
from ddpm.schedule import make_schedule

MIX = GaussianMixture(
    torch.tensor([0.3, 0.7]).double(),
    torch.tensor([[-0.7, 0.0], [0.7, 0.2]]).double(),
    torch.tensor([0.2, 0.25]).double(),
)
SMOOTH = GaussianMixture(
    torch.tensor([0.5, 0.5]).double(),
    torch.tensor([[-0.5, 0.0], [0.5, 0.2]]).double(),
    torch.tensor([0.3, 0.4]).double(),
)


@pytest.fixture(scope="module")
def sched():
    return make_schedule("linear", 1000)


def _x_T(n, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(
    "method,steps,kw",
    [
        ("ddpm", 1000, {}),
        ("ddpm", 1000, {"variance": "fixed_large"}),
        ("ddpm", 100, {"spacing": "logsnr"}),
        ("ddim", 50, {"spacing": "logsnr"}),
        ("ddim", 100, {"eta": 1.0, "spacing": "logsnr"}),
        ("dpm_solver", 20, {"spacing": "logsnr"}),
        ("dpm_solver", 20, {"order": 3, "spacing": "logsnr"}),
        ("ode", None, {}),
    ],
)
def test_samplers_recover_the_mixture(sched, method, steps, kw):
    """Mixture weights within 4 binomial SE, component means within 4 SE + 0.01, stds within 10%.
    (Few steps with linspace spacing under-disperse by 10-20% on this data: a real property of
    the big last steps, which is why the fast samplers are judged with log-SNR spacing here.)"""
    n = 4000
    x = sample(
        MIX.model_fn(sched, "eps"),
        sched,
        _x_T(n),
        method,
        steps=steps,
        generator=torch.Generator().manual_seed(1),
        **kw,
    )
    comp = MIX.responsibilities(x, torch.ones(n, dtype=torch.float64)).argmax(1)
    for j in range(2):
        w = MIX.weights[j].item()
        frac = (comp == j).double().mean().item()
        assert abs(frac - w) < 4 * math.sqrt(w * (1 - w) / n), (method, j, frac)
        xj = x[comp == j]
        sd = MIX.stds[j].item()
        assert (xj.mean(0) - MIX.means[j]).abs().max() < 4 * sd / math.sqrt(len(xj)) + 1e-2
        assert abs(xj.std(0).mean().item() / sd - 1) < 0.10


@pytest.mark.parametrize("prediction", ["x0", "v", "mu"])
def test_every_prediction_type_samples_the_same(sched, prediction):
    x_T = _x_T(64)
    ref = sample(MIX.model_fn(sched, "eps"), sched, x_T, "ddim", steps=20)
    got = sample(
        MIX.model_fn(sched, prediction), sched, x_T, "ddim", steps=20, prediction=prediction
    )
    assert torch.allclose(got, ref, atol=1e-8)


def _slope(method, sched, steps_list, **kw):
    x_T = _x_T(256)
    fn = SMOOTH.model_fn(sched, "eps")
    ref = sample(fn, sched, x_T, "ode", rtol=1e-10, atol=1e-10)
    errs = [
        (sample(fn, sched, x_T, method, steps=s, spacing="logsnr", **kw) - ref)
        .norm(dim=1)
        .mean()
        .item()
        for s in steps_list
    ]
    xs = torch.tensor([math.log(s) for s in steps_list])
    ys = torch.tensor([math.log(e) for e in errs])
    return -(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum()).item()


def test_ddim_is_first_order(sched):
    assert 0.85 < _slope("ddim", sched, [20, 40, 80]) < 1.2


def test_dpm_solver_2m_is_second_order(sched):
    assert 1.8 < _slope("dpm_solver", sched, [20, 40, 80], order=2) < 2.6


def test_ddim_eta_one_equals_respaced_ddpm(sched):
    x_T = _x_T(32)
    fn = MIX.model_fn(sched, "eps")
    a = sample(fn, sched, x_T, "ddpm", steps=25, generator=torch.Generator().manual_seed(5))
    b = sample(
        fn, sched, x_T, "ddim", steps=25, eta=1.0, generator=torch.Generator().manual_seed(5)
    )
    assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [2, 7, 50, 999, 1000])
def test_step_lists(sched, spacing, steps):
    ks = timesteps(sched, steps, spacing)
    assert len(ks) == steps and ks[-1] == 0 and ks[0] <= 999
    assert bool((ks[1:] < ks[:-1]).all())


def test_step_list_validation(sched):
    for bad in [0, -3, 1001, 2.5]:
        with pytest.raises(ValueError, match="steps must be an integer"):
            timesteps(sched, bad)
    with pytest.raises(ValueError, match="linspace"):
        timesteps(sched, 10, "nope")
    with pytest.raises(ValueError, match="ddpm, ddim, dpm_solver, ode"):
        sample(MIX.model_fn(sched), sched, _x_T(2), "nope")
    with pytest.raises(ValueError, match="eta"):
        sample(MIX.model_fn(sched), sched, _x_T(2), "ddim", steps=5, eta=1.5)


@pytest.mark.parametrize("method,kw", [("ddpm", {}), ("ddim", {"eta": 0.5}), ("dpm_solver", {})])
def test_batch_size_invariance_with_per_sample_generators(sched, method, kw):
    n, seed = 10, 3
    whole = sample(
        MIX.model_fn(sched),
        sched,
        torch.zeros(n, 2, dtype=torch.float64) + _x_T(n),
        method,
        steps=20,
        generator=sample_generators(seed, range(n)),
        **kw,
    )
    parts = []
    for lo, hi in [(0, 3), (3, 4), (4, 10)]:
        parts.append(
            sample(
                MIX.model_fn(sched),
                sched,
                _x_T(n)[lo:hi],
                method,
                steps=20,
                generator=sample_generators(seed, range(lo, hi)),
                **kw,
            )
        )
    assert torch.allclose(torch.cat(parts), whole, atol=1e-12)


def test_nfe_and_trajectory(sched):
    fn = MIX.model_fn(sched)
    for method, steps in [("ddpm", 30), ("ddim", 12), ("dpm_solver", 9)]:
        _, info = sample(
            fn, sched, _x_T(4), method, steps=steps, return_info=True, return_trajectory=True
        )
        assert info["nfe"] == steps
        assert len(info["trajectory"]) == steps + 1
    _, info = sample(fn, sched, _x_T(4), "ddim", steps=12, guidance=(2.0, fn), return_info=True)
    assert info["nfe"] == 24


def test_guidance_scale_zero_is_unconditional_and_one_is_conditional(sched):
    cond, uncond = MIX.model_fn(sched), SMOOTH.model_fn(sched)
    x_T = _x_T(16)
    for scale, ref_fn in [(0.0, uncond), (1.0, cond)]:
        got = sample(cond, sched, x_T, "ddim", steps=10, guidance=(scale, uncond))
        assert torch.allclose(got, sample(ref_fn, sched, x_T, "ddim", steps=10), atol=1e-10)
