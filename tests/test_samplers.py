"""Samplers against a model that is exact in closed form (Gaussian mixture denoiser)."""

import math
from dataclasses import replace

import pytest
import torch

from convergence import GAUSSIAN, MIX, SMOOTH, check_recovers_the_mixture, fitted_order
from convergence import x_T_2d as _x_T
from ddpm.oracles import GaussianMixture
from ddpm.samplers import SPACINGS, builtin_sampler_names, sample, sample_generators, timesteps
from ddpm.samplers.ddim import ddim
from ddpm.samplers.dpm_solver import dpm_solver
from ddpm.schedule import make_schedule


@pytest.fixture(scope="module")
def sched():
    return make_schedule("linear", 1000)


@pytest.mark.parametrize(
    "method,kw",
    [(name, {}) for name in builtin_sampler_names("diffusion") if name != "consistency"]
    # every diffusion sampler at its defaults (consistency's denoise-and-renoise is no solver)
    + [
        ("ddpm", {"variance": "fixed_large"}),
        ("ddim", {"eta": 1.0, "steps": 100}),
        ("dpm_solver", {"order": 2}),
    ],
)
def test_samplers_recover_the_mixture(sched, method, kw):
    """Mixture weights within 4 binomial SE, component means within 4 SE + 0.01, stds within 10%,
    each sampler at its defaults (conf/sampler/NAME.yaml: steps, spacing and options)."""
    n = 4000
    x = sample(
        MIX.model_fn(sched, "eps"), sched, _x_T(n), method,
        generator=torch.Generator().manual_seed(1), **kw,
    )  # fmt: skip
    check_recovers_the_mixture(x, method)


@pytest.mark.parametrize("prediction", ["x0", "v", "mu"])
def test_every_prediction_type_samples_the_same(sched, prediction):
    x_T = _x_T(64)
    ref = sample(MIX.model_fn(sched, "eps"), sched, x_T, "ddim", steps=20)
    got = sample(
        MIX.model_fn(sched, prediction), sched, x_T, "ddim", steps=20, prediction=prediction
    )
    assert torch.allclose(got, ref, atol=1e-8)


@pytest.mark.parametrize(
    "fn,options,low,high",
    [
        (ddim, {}, 0.9, 1.15),
        (dpm_solver, {"order": 1}, 0.9, 1.15),
        (dpm_solver, {"order": 2, "lower_order_final": False}, 1.8, 2.3),
        # DPM-Solver++(3M) with the exact quadratic interpolant: third order (its fitted slope
        # here is 3.5-4, above 3 before the asymptotic regime; 2M's stays at 2)
        (dpm_solver, {"order": 3, "lower_order_final": False}, 2.8, 4.5),
    ],
)
@pytest.mark.parametrize("mix", [SMOOTH, GAUSSIAN], ids=["mixture", "gaussian"])
def test_convergence_order_to_the_probability_flow_ode(fn, options, low, high, mix):
    assert low < fitted_order(fn, mix=mix, **options) < high


def test_ddim_at_intermediate_eta_has_its_closed_form_law_on_gaussian_data():
    """For Gaussian data the exact denoiser is affine, so every DDIM step is affine plus Gaussian
    noise and the law of its output is Gaussian with a mean and variance that follow in closed
    form, step by step (Song et al. eq. 12 and 16); 200,000 samples must match them (to ~1%:
    eta = 0.3 instead of 0.5 would move the variance by 3%)."""
    sched = make_schedule("linear", 1000)
    m, sd, eta, steps = 0.4, 0.5, 0.5, 10
    data = GaussianMixture.gaussian(torch.tensor([m]), sd)
    ks = timesteps(sched, steps, "uniform").tolist()
    abar = sched.alphas_cumprod
    mean, var = 0.0, 1.0  # x_T ~ N(0, 1)
    for i, k in enumerate(ks):
        a = abar[k].item()
        gain = math.sqrt(a) * sd**2 / (a * sd**2 + 1 - a)  # x0_hat = m + gain (x - sqrt(a) m)
        x0_coef, x0_shift = gain, m - gain * math.sqrt(a) * m
        if i == len(ks) - 1:
            mean, var = x0_coef * mean + x0_shift, x0_coef**2 * var
            break
        ap = abar[ks[i + 1]].item()
        sigma = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
        c = math.sqrt(1 - ap - sigma**2) / math.sqrt(
            1 - a
        )  # eps_hat = (x - sqrt(a) x0_hat) / sqrt(1 - a)
        coef = math.sqrt(ap) * x0_coef + c * (1 - math.sqrt(a) * x0_coef)
        shift = math.sqrt(ap) * x0_shift - c * math.sqrt(a) * x0_shift
        mean, var = coef * mean + shift, coef**2 * var + sigma**2
    n = 200_000
    x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = sample(
        data.model_fn(sched), sched, x_T, "ddim", steps=steps, spacing="uniform", eta=eta,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    assert abs(x.mean().item() - mean) < 4 * math.sqrt(var / n)
    assert abs(x.var().item() / var - 1) < 4 * math.sqrt(2 / (n - 1))
    assert abs(var - sd**2) > 1e-3  # the closed form is the sampler's own law, not the data's


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
    with pytest.raises(
        ValueError, match="unknown sampler 'nope'; choose one of consistency, ddim, ddpm"
    ):
        sample(MIX.model_fn(sched), sched, _x_T(2), "nope")
    with pytest.raises(ValueError, match="dpm_solver has no option eta|eta is not an option"):
        sample(MIX.model_fn(sched), sched, _x_T(2), "dpm_solver", steps=5, eta=0.5)
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
        x0, info = sample(
            fn, sched, _x_T(4), method, steps=steps, return_info=True, return_trajectory=True
        )
        assert info["nfe"] == steps
        frames, labels = info["trajectory"], info["trajectory_labels"]
        assert len(frames) == min(10, steps + 1)  # only the frames asked for
        assert labels[0] == "t=1000" and labels[-1] == "t=0"
        assert torch.equal(frames[-1], x0.float())
        assert torch.allclose(frames[0], _x_T(4).float(), atol=1e-6)  # on the path's own scale
    _, info = sample(fn, sched, _x_T(4), "ddim", steps=12, guidance=(2.0, fn), return_info=True)
    assert info["nfe"] == 24


def test_guidance_scale_zero_is_unconditional_and_one_is_conditional(sched):
    cond, uncond = MIX.model_fn(sched), SMOOTH.model_fn(sched)
    x_T = _x_T(16)
    for scale, ref_fn in [(0.0, uncond), (1.0, cond)]:
        got = sample(cond, sched, x_T, "ddim", steps=10, guidance=(scale, uncond))
        assert torch.allclose(got, sample(ref_fn, sched, x_T, "ddim", steps=10), atol=1e-10)


def test_channels_last_changes_the_layout_the_network_sees_not_the_samples(sched):
    """``denoiser.channels_last``: the UNet gets its RGB images channels-last (checked inside the
    network) and the samples are those of the default layout, to float rounding."""
    from ddpm.nets import UNet
    from ddpm.samplers import builtin_sampler, draw_samples, network_denoiser

    torch.manual_seed(0)
    net = UNet(in_channels=3, image_size=8, ch=32, ch_mult=(1, 2), attn_resolutions=(4,)).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    layouts = []
    net.conv_in.register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    spec = replace(builtin_sampler("dpm_solver"), steps=4)
    x = {}
    for cl in (False, True):
        factory = network_denoiser(net, sched, clip_x0=False, channels_last=cl)
        x[cl], _ = draw_samples(factory, spec, (3, 8, 8), range(6), seed=0)
        assert all(layouts) is cl and len(layouts) == 4  # one call per step, all in one layout
        layouts.clear()
    assert x[True].is_contiguous()
    assert (x[True] - x[False]).abs().max() < 1e-4 * x[False].abs().max()  # float32 rounding


def test_a_sampler_written_against_indices_is_refused_pointing_to_the_migration():
    from ddpm.checks import ConfigError
    from ddpm.samplers import SamplerSpec

    def old(denoiser, x_T, ks, *, generator=None, callback=None):
        return x_T

    with pytest.raises(ConfigError, match=r"takes a step list of indices \(ks\).*extending.md"):
        SamplerSpec.create(old)
