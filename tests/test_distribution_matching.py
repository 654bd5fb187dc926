"""DMD's term (``model.dmd``; Yin et al. 2024): its gradient with exact Gaussian denoisers moves a
generator onto the data and vanishes there, its loss hands that gradient to autograd, the two
denoisers (on the EDM path the consistency path was made from) start from the teacher and only
the fake one trains, and the settings it refuses."""

import pytest
import torch

from conftest import TOY_OVERRIDES, build_toy_module, run_cli, train_in_process
from ddpm.fewstep.consistency import ConsistencyPath
from ddpm.fewstep.distribution_matching import dmd_gradient, dmd_loss
from ddpm.paths.edm import EDMPath

CONSISTENCY = ("path=edm", "model=consistency", "sampler=consistency")


def _gaussian_denoiser(mean: torch.Tensor, var: float):
    """The exact ``D(x; sigma) = E[x0 | x0 + sigma eps = x]`` of ``x0 ~ N(mean, var I)``."""
    return lambda x, sigma: mean + var / (var + sigma**2) * (x - mean)


def test_a_consistency_path_gives_back_the_edm_path_it_was_made_from():
    edm = EDMPath(sigma_data=0.7, sigma_min=0.01, sigma_max=50.0)
    back = ConsistencyPath.of(edm).diffusion()
    assert type(back) is EDMPath and vars(back) == vars(edm)
    sigma = torch.logspace(-2, 1.5, 20, dtype=torch.float64)
    x, out = torch.randn(20, 3), torch.randn(20, 3)
    torch.testing.assert_close(back.x0(out, x, sigma, "F"), edm.x0(out, x, sigma, "F"))
    # the consistency scalings differ at these levels, so the round trip is not a no-op
    assert not torch.allclose(ConsistencyPath.of(edm).c_skip(sigma), edm.c_skip(sigma))


def test_descending_the_gradient_with_exact_denoisers_moves_a_generator_onto_the_data():
    """A generator ``x = b + z`` (``z ~ N(0, I)``) against data ``N(mu, I)``, both denoisers
    exact (the fake one follows ``b``): descending DMD's loss moves ``b`` to ``mu``; at ``b =
    mu`` the gradient is zero on every draw."""
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([1.5, -0.5])
    b = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([b], lr=0.05)
    for _ in range(400):
        x = b + torch.randn(256, 2, generator=g)
        sigma = torch.exp(torch.randn(256, 1, generator=g) * 0.5)
        x_sigma = x.detach() + sigma * torch.randn(256, 2, generator=g)
        d_fake = _gaussian_denoiser(b.detach(), 1.0)(x_sigma, sigma)
        d_real = _gaussian_denoiser(mu, 1.0)(x_sigma, sigma)
        opt.zero_grad()
        dmd_loss(x, dmd_gradient(x.detach(), d_fake, d_real)).mean().backward()
        opt.step()
    torch.testing.assert_close(b.detach(), mu, atol=0.05, rtol=0)
    x = mu + torch.randn(64, 2, generator=g)
    same = _gaussian_denoiser(mu, 1.0)(x + 0.3 * torch.randn(64, 2, generator=g), 0.3)
    assert torch.equal(dmd_gradient(x, same, same), torch.zeros_like(x))


def test_the_gradient_is_weighted_by_each_examples_mean_distance_and_handed_to_autograd():
    """``(D_fake - D_real) / mean |x - D_real|`` per example (eq. 8's weighting), and the loss's
    gradient on ``x`` is that gradient."""
    g = torch.Generator().manual_seed(1)
    x, d_fake, d_real = (torch.randn(3, 1, 4, 4, generator=g) for _ in range(3))
    got = dmd_gradient(x, d_fake, d_real)
    for i in range(3):
        torch.testing.assert_close(
            got[i], (d_fake[i] - d_real[i]) / (x[i] - d_real[i]).abs().mean()
        )
    x = x.requires_grad_()
    dmd_loss(x, got).sum().backward()
    torch.testing.assert_close(x.grad, got)


def _module(*overrides):
    return build_toy_module(*CONSISTENCY, *overrides)


def test_both_denoisers_start_from_the_teacher_and_only_the_fake_one_trains(toy_edm_ckpt, tmp_path):
    """``real`` and ``fake`` hold ``model.teacher``'s EMA weights (not ``model.init``'s); at the
    start they agree, so the term's gradient is zero; a backward trains the fake denoiser, not
    the real one, which stays in eval mode; once they differ, the loss hands the outputs the
    gradient."""
    other = tmp_path / "other"
    train_in_process(other, "path=edm", "seed=5", steps=2)
    teacher = other / "checkpoints" / "last.ckpt"
    module = _module(f"model.init={toy_edm_ckpt}", f"model.teacher={teacher}", "model.dmd=0.5")
    pair = module.score_pair
    stored = torch.load(teacher, weights_only=True)["state_dict"]
    for net in (pair.real, pair.fake):
        for name, p in net.state_dict().items():
            torch.testing.assert_close(p, stored[f"ema.{name}"], rtol=0, atol=0)
    assert pair in module.heads()
    assert type(pair.edm) is EDMPath and type(module.path) is ConsistencyPath  # EDM's scalings
    module.train()
    assert not pair.real.training and pair.fake.training
    judged = torch.randn(16, 2, requires_grad=True)
    loss, fake_loss, gradient = pair(judged, None, torch.Generator().manual_seed(0))
    assert torch.equal(gradient, torch.zeros_like(gradient))
    (loss.sum() + fake_loss.sum()).backward()
    assert all(p.grad is None for p in pair.real.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pair.fake.parameters())
    with torch.no_grad():
        for p in pair.fake.parameters():
            p.add_(0.05 * torch.randn_like(p))
    judged.grad = None
    loss, _, gradient = pair(judged, None, torch.Generator().manual_seed(1))
    assert gradient.abs().sum() > 0
    loss.sum().backward()
    torch.testing.assert_close(judged.grad, gradient)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("model.dmd=0.5",), "give model.teacher=CKPT"),
        (("model.dmd=0.5", "model.teacher=CONSISTENCY"), "must be a diffusion model"),
        (("model.adversarial_steps=2",), "model.adversarial=0 and model.dmd=0"),
    ],
)
def test_dmd_without_a_diffusion_teacher_is_refused(overrides, message, toy_edm_ckpt, tmp_path):
    """One ``error:`` line, before any work: DMD's real denoiser is a diffusion model's."""
    if "model.teacher=CONSISTENCY" in overrides:
        consistency = tmp_path / "consistency"
        train_in_process(consistency, *CONSISTENCY, f"model.init={toy_edm_ckpt}", steps=2)
        overrides = (overrides[0], f"model.teacher={consistency / 'checkpoints' / 'last.ckpt'}")
    proc = run_cli("train.py", *TOY_OVERRIDES, *CONSISTENCY, f"model.init={toy_edm_ckpt}",
                   *overrides, f"hydra.run.dir={tmp_path / 'run'}", check=False)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr, lines
    assert message in errors[0] and lines[-1] == errors[0]
