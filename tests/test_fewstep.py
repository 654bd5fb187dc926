"""The math of the few-step models, checked against closed forms: the consistency function's
boundary condition, ECT's noise-level pairs, the MeanFlow identity on a Gaussian path (whose
average velocity is known exactly), progressive distillation's two-step target, and the samplers
and networks that carry them."""

import math

import pytest
import torch
from torch import nn

from ddpm.checks import ConfigError
from ddpm.fewstep.consistency import ConsistencyPath, ect_loss, ect_r, ect_stage
from ddpm.fewstep.distill import ddim_step, student_levels, truncated_snr_weight, two_step_target
from ddpm.fewstep.meanflow import adaptive_loss, meanflow_target, sample_r_t
from ddpm.paths.edm import EDMPath
from ddpm.paths.flow import FlowPath
from ddpm.samplers import builtin_sampler
from ddpm.samplers.consistency import consistency
from ddpm.samplers.meanflow import MeanFlowDenoiser

S = 0.5  # the data's standard deviation in the Gaussian checks


# --- consistency -------------------------------------------------------------------------------
def test_the_consistency_function_is_the_identity_at_sigma_min_exactly():
    path = ConsistencyPath.of(EDMPath(sigma_data=0.5))
    x = torch.randn(16, 3, 4, 4)
    out = 1e3 * torch.randn_like(x)  # whatever the network says
    sigma = torch.full((16,), path.t_min, dtype=torch.float64)
    assert torch.equal(path.x0(out, x, sigma, "F"), x)
    # and above sigma_min the network matters
    assert not torch.allclose(path.x0(out, x, sigma * 1.5, "F"), x)


def test_the_consistency_scalings_are_edms_when_sigma_min_is_zero():
    edm = EDMPath(sigma_data=0.5, sigma_min=1e-12)
    cm = ConsistencyPath.of(edm)
    sigma = torch.logspace(-2, 1.9, 50, dtype=torch.float64)
    torch.testing.assert_close(cm.c_skip(sigma), edm.c_skip(sigma), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(cm.c_out(sigma), edm.c_out(sigma), rtol=1e-9, atol=1e-12)


def test_a_consistency_model_needs_edm_preconditioning():
    with pytest.raises(ConfigError, match="path.precond=edm"):
        ConsistencyPath.of(EDMPath(precond="vp"))
    with pytest.raises(ConfigError, match="path=flow"):
        ConsistencyPath.of(FlowPath())


def test_ect_pairs_shrink_by_q_per_stage_and_clip_at_sigma_min():
    t = torch.logspace(-2, 1.5, 200, dtype=torch.float64)
    r0 = ect_r(t, 0, 0.002)  # stage 0: r = t (1 - n(t) / 2), n(t) = 1 + 8 sigmoid(-t)
    n = 1 + 8 * torch.sigmoid(-t)
    torch.testing.assert_close(r0, (t * (1 - n / 2)).clamp(min=0.002))
    assert bool((r0[t < 0.5] == 0.002).all()) and bool((r0 > t / 3)[t > 10].all())
    for stage in range(0, 8):
        r = ect_r(t, stage, 0.002)
        assert bool((r < t).all() and (r >= 0.002).all())
        free = r > 0.002  # unclipped (then so is the next stage's): t - r halves exactly
        ratio = (t - r)[free] / (t - ect_r(t, stage + 1, 0.002))[free]
        torch.testing.assert_close(ratio, torch.full_like(ratio, 2.0))
    assert [ect_stage(s, 800, 8) for s in (0, 99, 100, 799, 900)] == [0, 0, 1, 7, 7]


def test_ect_loss_is_the_weighted_l2_distance_and_stops_the_targets_gradient():
    f_t = torch.randn(4, 2, 3, requires_grad=True)
    f_r = torch.randn(4, 2, 3, requires_grad=True)
    t, r = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, 1.0, 2.5, 2.0])
    loss = ect_loss(f_t, f_r, t, r)
    expected = (f_t - f_r).flatten(1).norm(dim=1) / (t - r)
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    assert f_r.grad is None and f_t.grad is not None
    huber = ect_loss(f_t, f_r, t, r, c=0.3)
    d = (f_t - f_r).flatten(1).norm(dim=1)
    torch.testing.assert_close(huber, ((d**2 + 0.09).sqrt() - 0.3) / (t - r))


# --- MeanFlow on a Gaussian path -----------------------------------------------------------------
def std(t):
    """The marginal standard deviation of z_t = (1 - t) x + t eps for x ~ N(0, S^2)."""
    return ((1 - t) ** 2 * S**2 + t**2).sqrt()


def exact_u(z, r, t):
    """The average velocity of the Gaussian path: the ODE maps z_t to z_r = z_t std(r)/std(t)
    (the flow of a centred Gaussian scales it), so u = z (1 - std(r)/std(t)) / (t - r), with the
    instantaneous velocity z d/dt log std(t) at r = t."""
    shape = (-1, *[1] * (z.ndim - 1))
    t_, r_ = t.reshape(shape), r.reshape(shape)
    dlog = ((t_ - (1 - t_) * S**2) / std(t_) ** 2).to(z)
    gap = t_ - r_
    safe = torch.where(gap.abs() > 1e-6, gap, torch.ones_like(gap))
    avg = z * (1 - std(r_) / std(t_)) / safe
    return torch.where(gap.abs() > 1e-6, avg, z * dlog)


def test_the_closed_form_average_velocity_is_the_odes_average():
    """Independent check of the reference: integrate v(z, tau) = z dlog std / dtau from t to r."""
    z = torch.tensor([1.3], dtype=torch.float64)
    t, r = torch.tensor([0.9], dtype=torch.float64), torch.tensor([0.2], dtype=torch.float64)
    taus = torch.linspace(0.9, 0.2, 20001, dtype=torch.float64)
    x = z.clone()
    for a, b in zip(taus[:-1], taus[1:]):  # the linear ODE, d log z, by the midpoint rule
        mid = (a + b) / 2
        x = x * torch.exp((b - a) * (mid - (1 - mid) * S**2) / std(mid) ** 2)
    torch.testing.assert_close((z - x) / (t - r), exact_u(z, r, t), rtol=1e-6, atol=1e-8)


def test_the_meanflow_loss_is_zero_at_the_true_average_velocity_and_so_is_its_gradient():
    g = torch.Generator().manual_seed(0)
    n = 4096
    r, t = sample_r_t(n, g, "cpu", ratio=0.5)
    assert bool((r <= t).all()) and 0.4 < float((r < t).float().mean()) < 0.6
    x, eps = S * torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g)
    z = (1 - t)[:, None] * x + t[:, None] * eps
    scale = nn.Parameter(torch.tensor(1.0))

    def u_fn(z, r, t):
        return scale * exact_u(z, r, t)

    marginal_v = exact_u(z, t, t)  # the velocity field itself
    u, target = meanflow_target(u_fn, z, r, t, marginal_v)
    torch.testing.assert_close(target, u.detach(), rtol=1e-5, atol=1e-6)
    loss = adaptive_loss(u, target, p=0.0).mean()
    loss.backward()
    assert float(loss.detach()) < 1e-10 and abs(float(scale.grad)) < 1e-6

    # with the conditional velocity eps - x (what training sees) the loss is not zero, but its
    # gradient vanishes in expectation at the true u, and not at a wrong one
    def grad_at(value: float) -> tuple[float, float]:
        scale.data.fill_(value)
        scale.grad = None
        u, target = meanflow_target(u_fn, z, r, t, eps - x)
        per = adaptive_loss(u, target, p=0.0)
        per.mean().backward()
        return float(scale.grad), float(per.mean().detach())

    big_n = 200_000
    r, t = sample_r_t(big_n, g, "cpu", ratio=0.5)
    x, eps = S * torch.randn(big_n, 1, generator=g), torch.randn(big_n, 1, generator=g)
    z = (1 - t)[:, None] * x + t[:, None] * eps
    at_truth, loss_truth = grad_at(1.0)
    off, _ = grad_at(1.2)
    assert loss_truth > 1e-2
    assert abs(at_truth) < 0.01 < abs(off) / 5


def test_the_adaptive_weight_divides_by_the_stopped_error():
    u = torch.tensor([[1.0, 2.0], [0.0, 0.5]], requires_grad=True)
    target = torch.zeros(2, 2)
    loss = adaptive_loss(u, target, p=1.0, c=1e-3)
    d2 = (u.detach() ** 2).mean(1)
    torch.testing.assert_close(loss.detach(), d2 / (d2 + 1e-3))
    loss.sum().backward()
    torch.testing.assert_close(u.grad, 2 * u.detach() / 2 / (d2[:, None] + 1e-3))


class ExactMeanFlowNet(nn.Module):
    """The Gaussian path's exact average velocity as a two-time network of the flow path
    (``c_noise = (1000 t, 1000 (t - r))``)."""

    def forward(self, x, c_noise, y=None):
        t = c_noise[:, 0].double() / 1000
        r = t - c_noise[:, 1].double() / 1000
        return exact_u(x.double(), r, t).to(x)


def test_one_meanflow_step_of_the_exact_average_velocity_lands_on_the_data_distribution():
    path = FlowPath()
    denoiser = MeanFlowDenoiser(ExactMeanFlowNet(), path, "velocity")
    spec = builtin_sampler("meanflow")
    for steps in (1, 3):
        noise = torch.randn(100_000, 1, generator=torch.Generator().manual_seed(steps))
        x0, sigmas, _ = spec.updated(steps=steps).draw(denoiser, noise)
        assert len(sigmas) == steps + 1
        assert abs(float(x0.std()) - S) < 0.01
    assert denoiser.nfe == 4  # one call a step
    # its instantaneous velocity (r = t) is the flow's denoiser for every ODE sampler
    from ddpm.models.meanflow import InstantVelocity

    plain = MeanFlowDenoiser(InstantVelocity(ExactMeanFlowNet()), path, "velocity")
    x = torch.randn(8, 1, dtype=torch.float64)
    level = 3.0  # t = 0.75: E[x0 | x] = S^2 x / (S^2 + level^2) on the x / alpha scale
    torch.testing.assert_close(plain(x, level).x0.double(), S**2 * x / (S**2 + level**2))


# --- progressive distillation -------------------------------------------------------------------
def test_the_students_one_ddim_step_with_the_target_lands_where_the_teacher_does():
    teacher = lambda x, s: 0.3 * torch.tanh(x) + 0.01 * s.view(-1, 1).to(x)  # noqa: E731
    x = torch.randn(6, 4, dtype=torch.float64)
    s = torch.tensor([80.0, 10.0, 3.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    mid, nxt = s / 2, torch.tensor([20.0, 2.0, 1.0, 0.3, 0.0, 0.0], dtype=torch.float64)
    mid = torch.where(nxt == 0, s / 2, (s + nxt) / 2)
    target = two_step_target(teacher, x, s, mid, nxt)
    x_mid = ddim_step(x, teacher(x, s), s, mid)
    x_next = ddim_step(x_mid, teacher(x_mid, mid), mid, nxt)
    torch.testing.assert_close(ddim_step(x, target, s, nxt), x_next)
    torch.testing.assert_close(truncated_snr_weight(torch.tensor([0.5, 1.0, 4.0])).float(),
                               torch.tensor([4.0, 1.0, 1.0]))  # fmt: skip


def test_a_students_levels_are_every_other_level_of_its_teachers():
    path = EDMPath()
    for n in (1, 2, 8, 32):
        teacher, student = student_levels(path, 2 * n), student_levels(path, n)
        torch.testing.assert_close(teacher[::2], student)
        assert student[0] == path.t_max and student[-1] == 0
    spec = builtin_sampler("ddim").updated(steps=4, spacing="trailing")
    torch.testing.assert_close(spec.step_list(path), student_levels(path, 4))


# --- the consistency sampler --------------------------------------------------------------------
class CountingDenoiser:
    """A denoiser that returns a fixed point and records the levels it was called at."""

    def __init__(self):
        self.path, self.levels, self.nfe = EDMPath(), [], 0

    def __call__(self, x, sigma):
        from ddpm.samplers import Denoised

        self.levels.append(float(sigma))
        self.nfe += 1
        return Denoised(torch.full_like(x, 0.25), x)


def test_the_consistency_sampler_revisits_its_levels_once_each():
    den = CountingDenoiser()
    sigmas = torch.tensor([80.0, 5.0, 0.0], dtype=torch.float64)
    x0 = consistency(den, torch.randn(3, 2), sigmas, levels=[2.0, 0.5])
    assert den.levels == [80.0, 2.0, 0.5] and torch.equal(x0, torch.full((3, 2), 0.25))
    den = CountingDenoiser()
    consistency(den, torch.randn(3, 2), sigmas)
    assert den.levels == [80.0, 5.0]
    spec = builtin_sampler("consistency")
    with pytest.raises(ConfigError, match=r"steps - 1 = 2"):
        spec.updated(steps=3, levels=[0.8])
    with pytest.raises(ConfigError, match="strictly decreasing"):
        spec.updated(steps=3, levels=[0.3, 0.8])


def test_meanflow_and_consistency_samplers_refuse_the_models_they_cannot_sample():
    with pytest.raises(ConfigError, match="sampler=meanflow takes average-velocity steps"):
        builtin_sampler("meanflow").check_serves("diffusion", "CKPT")
    with pytest.raises(ConfigError, match="sample it with sampler=consistency"):
        builtin_sampler("dpm_solver_sde").check_serves("consistency", "CKPT")
    builtin_sampler("consistency").check_serves("diffusion", "CKPT")
    builtin_sampler("euler").check_serves("meanflow", "CKPT")


# --- two time inputs ------------------------------------------------------------------------------
NETS = [
    ("ddpm.nets.unet.UNet", dict(in_channels=1, image_size=8, ch=32, ch_mult=(1, 2)), (2, 1, 8, 8)),
    ("ddpm.nets.simple_unet.SimpleUNet", dict(in_channels=1, image_size=8, channels=(16, 32)), (2, 1, 8, 8)),
    ("ddpm.nets.mlp.MLP", dict(dim=2, hidden=32), (2, 2)),
    ("ddpm.nets.homework_unet.HomeworkUNet", dict(in_channels=1, image_size=8, channels=(8, 16)), (2, 1, 8, 8)),
    ("ddpm.nets.dit.DiT", dict(in_channels=1, image_size=8, hidden_size=32, depth=2, num_heads=2), (2, 1, 8, 8)),
    ("ddpm.nets.diffusers_unet.DiffusersUNet", dict(in_channels=1, image_size=8, block_out_channels=(32, 32), norm_num_groups=8), (2, 1, 8, 8)),
]  # fmt: skip


@pytest.mark.parametrize("target,kwargs,shape", NETS, ids=[n[0].rsplit(".", 1)[-1] for n in NETS])
def test_every_network_takes_a_second_time_input_and_uses_it(target, kwargs, shape):
    from ddpm.targets import locate

    torch.manual_seed(0)
    net = locate(target)(**kwargs, time_inputs=2)
    for p in net.parameters():  # away from the zero initialisations, so every input matters
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(shape)
    a = net(x, torch.tensor([[500.0, 0.0], [500.0, 0.0]]))
    b = net(x, torch.tensor([[500.0, 300.0], [500.0, 300.0]]))
    assert a.shape == x.shape and not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"takes 2 times, \(N, 2\)"):
        net(x, torch.tensor([500.0, 500.0]))


def test_a_network_without_time_inputs_is_refused_for_two_times():
    from ddpm.config.plugin import Plugin
    from ddpm.config.wiring import network_kwargs
    from ddpm.data.info import DataInfo

    class OneTime(nn.Module):
        def __init__(self, dim: int = 2):
            super().__init__()

        def forward(self, x, k):
            return x

    plugin = Plugin("user.OneTime", OneTime, {})
    info = DataInfo("points", (2,), None, "points")
    assert "time_inputs" not in network_kwargs(plugin, info)
    with pytest.raises(ConfigError, match=r"c_noise of shape \(N, 2\); network._target_=user"):
        network_kwargs(plugin, info, time_inputs=2)


def test_sigma_min_is_where_the_sampler_adds_no_noise():
    assert math.isclose(ConsistencyPath.of(EDMPath()).sigma_min, 0.002)
