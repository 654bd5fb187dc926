"""Schedules: values, edge cases, respacing."""

import math

import pytest
import torch

from ddpm.schedule import (
    SCHEDULES,
    alpha_bar_at,
    extract,
    from_alphas_cumprod,
    k_at_log_snr,
    log_snr_at,
    make_schedule,
    respace,
)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("T", [1, 2, 10, 1000, 4000])
def test_schedule_is_valid_float64(name, T):
    s = make_schedule(name, T)
    assert s.betas.dtype == torch.float64 and s.betas.shape == (T,)
    assert bool(((s.betas > 0) & (s.betas <= 0.999 + 1e-12)).all())
    abar = s.alphas_cumprod
    assert bool((abar[1:] < abar[:-1]).all())
    # alphas_cumprod is the running product of (1 - beta) (eq. 31's alpha_t in the seed).
    assert torch.allclose(
        abar,
        torch.tensor(
            [math.prod((1 - s.betas[: i + 1]).tolist()) for i in range(T)], dtype=torch.float64
        ),
    )
    assert s.alphas_cumprod_prev[0] == 1.0
    assert torch.isfinite(s.posterior_log_variance_clipped).all()
    assert torch.isfinite(s.fixed_large_log_variance).all()


def test_linear_matches_ho_et_al():
    s = make_schedule("linear", 1000)
    assert s.betas[0].item() == pytest.approx(1e-4)
    assert s.betas[-1].item() == pytest.approx(0.02)
    # scaled for other T so alpha_bar_T stays near zero (Nichol & Dhariwal)
    s4 = make_schedule("linear", 4000)
    assert s4.betas[0].item() == pytest.approx(2.5e-5)
    assert s4.alphas_cumprod[-1] < 1e-4


def test_cosine_matches_closed_form_and_clips():
    T, s_off = 1000, 0.008
    s = make_schedule("cosine", T)
    f = lambda t: math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2  # noqa: E731
    for k in [0, 10, 500, 900]:
        assert s.alphas_cumprod[k].item() == pytest.approx(f(k + 1) / f(0), rel=1e-9)
    assert s.betas.max().item() == pytest.approx(0.999)  # the clip bites at the very end


def test_unknown_schedule_lists_options():
    with pytest.raises(ValueError, match="linear, cosine, sigmoid, quadratic"):
        make_schedule("nope", 10)
    with pytest.raises(
        ValueError, match="num_timesteps=0 is not valid; it must be an integer >= 1"
    ):
        make_schedule("linear", 0)


def test_first_step_log_variance_is_clipped_to_second():
    s = make_schedule("linear", 100)
    assert s.posterior_variance[0] == 0
    assert s.posterior_log_variance_clipped[0] == pytest.approx(
        math.log(s.posterior_variance[1].item())
    )


def test_respace_keeps_alpha_bar_exactly():
    s = make_schedule("cosine", 1000)
    kept = torch.tensor([0, 3, 99, 500, 998, 999])
    r = respace(s, kept)
    assert torch.equal(r.alphas_cumprod, s.alphas_cumprod[kept])
    assert torch.equal(r.timestep_map, kept)
    # respacing a respaced schedule composes
    rr = respace(r, [0, 2, 5])
    assert torch.equal(rr.timestep_map, torch.tensor([0, 99, 999]))
    assert torch.equal(rr.alphas_cumprod, s.alphas_cumprod[[0, 99, 999]])


def test_from_alphas_cumprod_round_trip():
    s = make_schedule("sigmoid", 50)
    r = from_alphas_cumprod(s.alphas_cumprod)
    assert torch.allclose(r.betas, s.betas, rtol=1e-12, atol=1e-15)


def test_extract_casts_and_broadcasts():
    s = make_schedule("linear", 10)
    k = torch.tensor([0, 9])
    v = extract(s.betas, k, (2, 3, 4, 4), torch.float32)
    assert v.shape == (2, 1, 1, 1) and v.dtype == torch.float32
    assert v[1].item() == pytest.approx(s.betas[9].item())


def test_continuous_time_interpolation_is_exact_at_integers_and_invertible():
    s = make_schedule("linear", 100)
    k = torch.arange(100, dtype=torch.float64)
    assert torch.allclose(alpha_bar_at(s, k), s.alphas_cumprod, rtol=1e-12)
    kf = torch.tensor([0.25, 17.5, 98.9])
    assert torch.allclose(k_at_log_snr(s, log_snr_at(s, kf)), kf.double(), atol=1e-9)
