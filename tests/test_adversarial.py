"""The adversarial term of few-step models (``model.adversarial``): its losses against closed
forms (the Bayes-optimal discriminator of two Gaussians is their log density ratio; R1 of a linear
discriminator is its weight's squared norm), the discriminator network, and the one-backward
training step keeping the model's and the discriminator's gradients apart."""

import math

import pytest
import torch

from ddpm.checks import ConfigError
from ddpm.fewstep.adversarial import (
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    r1_penalty,
)
from ddpm.fewstep.consistency import sampler_outputs
from ddpm.nets.discriminator import Discriminator


def test_the_discriminator_loss_is_minimised_by_the_log_density_ratio():
    """Logistic regression on features (1, x, x^2) of two Gaussians: minimising the loss over a
    large sample recovers log N(x; 1, 0.5^2) - log N(x; 0, 1) (data minus model), coefficient by
    coefficient."""
    g = torch.Generator().manual_seed(0)
    n = 200_000
    real = 1.0 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    fake = torch.randn(n, generator=g, dtype=torch.float64)

    def features(x):
        return torch.stack([torch.ones_like(x), x, x * x], 1)

    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = discriminator_loss(features(real) @ w, features(fake) @ w).mean()
        loss.backward()
        return loss

    opt.step(closure)
    # log(N(x;1,.25)/N(x;0,1)) = -2 (x - 1)^2 + x^2 / 2 + log 2 = -1.5 x^2 + 4 x - 2 + log 2
    expected = torch.tensor([-2 + math.log(2), 4.0, -1.5], dtype=torch.float64)
    torch.testing.assert_close(w.detach(), expected, atol=0.05, rtol=0)


def test_the_generator_loss_is_minus_the_log_probability_of_being_taken_for_data():
    logits = torch.tensor([-3.0, 0.0, 2.5])
    expected = -torch.log(torch.sigmoid(logits))
    torch.testing.assert_close(generator_loss(logits), expected)
    # falls as the discriminator is fooled
    assert bool((generator_loss(logits).diff() < 0).all())


def test_r1_of_a_linear_discriminator_is_its_weights_squared_norm():
    w = torch.tensor([0.5, -2.0, 1.0])
    x = torch.randn(7, 3, requires_grad=True)
    penalty = r1_penalty(x @ w + 0.3, x)
    torch.testing.assert_close(penalty, torch.full((7,), float(w.pow(2).sum())))
    # the graph is kept: it trains the discriminator's weights
    v = w.clone().requires_grad_(True)
    r1_penalty(x @ v, x).sum().backward()
    assert v.grad is not None
    torch.testing.assert_close(v.grad, 2 * 7 * w)


def test_the_adaptive_weight_matches_the_gradient_norms():
    main, adv = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.5])
    assert float(adaptive_weight(main, adv)) == pytest.approx(10.0)
    assert float(adaptive_weight(main, torch.zeros(2), max_weight=50.0)) == 50.0


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (2,)])
def test_the_discriminator_gives_one_logit_per_example_and_projects_the_class(shape):
    torch.manual_seed(0)
    disc = Discriminator(shape, num_classes=10, channels=(8, 16))
    x = torch.randn(5, *shape)
    y = torch.tensor([0, 1, 2, 3, 4])
    out = disc(x, y)
    assert out.shape == (5,)
    with torch.no_grad():
        disc.embed.weight[1:].normal_()  # a trained projection (it starts random too)
    # the null label (dropped labels, -1) is the unconditional logit; a class changes it
    torch.testing.assert_close(disc(x, torch.full((5,), -1)), disc(x))
    assert not torch.allclose(disc(x, y), disc(x, (y + 1) % 10))
    assert float(disc.embed.weight[0].detach().abs().sum()) == 0.0


def _module(adversarial: float, *overrides: str):
    from conftest import TOY_OVERRIDES, compose
    from ddpm.config import parse_train
    from ddpm.training.build import build_module

    cfg = parse_train(compose("train", *TOY_OVERRIDES, "path=edm", "model=consistency",
                              "sampler=consistency", "model.init=null",
                              f"model.adversarial={adversarial}", *overrides))  # fmt: skip
    torch.manual_seed(0)
    return build_module(cfg, cfg.dataset.build())


def test_one_backward_trains_the_model_and_the_discriminator_each_on_its_own_loss():
    """The discriminator's gradient does not depend on the model's adversarial weight (the model's
    term sees it detached), and the model's gradient is its consistency loss's plus a part linear
    in that weight (the discriminator's loss and R1 do not reach it)."""
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    sigma = torch.full((32,), 1.5, dtype=torch.float64)
    noisy = x0 + 1.5 * torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    grads = {}
    for a in (0.0, 1.0, 3.0):
        module = _module(max(a, 1.0))
        module.hparams.adversarial = a
        fake = module.consistency_fn(module.net, noisy, sigma, None)
        main = (fake - x0).pow(2).sum(1).mean()
        term, stats = module.judging_terms(x0, fake, None, main) if a else (0.0, {})
        (main + term).backward()
        grads[a] = (
            torch.cat([p.grad.flatten() for p in module.net.parameters()]),
            torch.cat([p.grad.flatten() for p in module.discriminator.parameters()]) if a else None,
        )
        assert a == 0 or set(stats) == {"adv_g", "adv_d", "adv_r1", "adv_weight"}
    torch.testing.assert_close(grads[3.0][1], grads[1.0][1])
    plain, one, three = grads[0.0][0], grads[1.0][0], grads[3.0][0]
    assert not torch.allclose(one, plain)
    torch.testing.assert_close(three - plain, 3 * (one - plain), rtol=1e-4, atol=1e-6)


def test_a_discriminator_without_widths_is_one_error_line(tmp_path):
    from conftest import run_cli

    proc = run_cli("train.py", "path=edm", "model=consistency", "sampler=consistency",
                   "model.init=null", "model.adversarial=1", "model.discriminator.channels=[]",
                   f"hydra.run.dir={tmp_path}", check=False)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr, lines
    assert "model.discriminator.channels=[] is empty" in errors[0]
    assert lines[-1] == errors[0]
    with pytest.raises(ConfigError, match="is empty"):
        Discriminator((1, 8, 8), channels=())


def test_sampler_outputs_are_algorithm_1_with_the_gradient_on_the_last_call_only():
    """Part ``k`` of the batch is the consistency sampler's output after ``k + 1`` calls, written
    out here by hand (Song et al. 2023, Algorithm 1), on the same draws; the gradient reaches the
    model through each example's last call only, with the earlier calls' outputs as constants."""
    w = torch.tensor(0.7, requires_grad=True)

    def f(x, sigma, index):
        return w * x / (1 + sigma[:, None])

    plan, sigma_min, n = [80.0, 2.5, 0.5], 0.002, 6
    noises = [torch.randn(n, 3, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    out = sampler_outputs(f, plan, noises, sigma_min)
    expected, last_inputs = [], []
    with torch.no_grad():
        for i in range(n):
            calls = i * len(plan) // n + 1
            x0 = f(plan[0] * noises[0][i : i + 1], torch.tensor([plan[0]]), None)
            x, level = plan[0] * noises[0][i : i + 1], plan[0]
            for k in range(1, calls):
                x = x0 + math.sqrt(plan[k] ** 2 - sigma_min**2) * noises[k][i : i + 1]
                level = plan[k]
                x0 = f(x, torch.tensor([level]), None)
            expected.append(x0)
            last_inputs.append(x / (1 + level))
    torch.testing.assert_close(out, torch.cat(expected))
    out.sum().backward()
    torch.testing.assert_close(w.grad, torch.cat(last_inputs).sum())


def test_with_adversarial_steps_the_discriminator_judges_the_samplers_outputs():
    """With ``adversarial_steps=2`` the discriminator's fakes are the sampler's: the first half
    one call from the prior at ``sigma_max`` (on the term's own stream), the second half two
    calls; the model's gradient then differs from the term on the pairs' outputs."""
    from ddpm.random import step_generator

    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    noisy = x0 + 1.5 * torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
    sigma = torch.full((16,), 1.5)
    grads, judged = {}, []
    for steps in (0, 2):
        module = _module(0.1, f"model.adversarial_steps={steps}")
        module.discriminator.register_forward_hook(lambda m, a, o: judged.append(a[0].detach()))
        fake = module.consistency_fn(module.net, noisy, sigma, None)
        main = (fake - x0).pow(2).sum(1).mean()
        judged.clear()
        term, _ = module.judging_terms(x0, fake, None, main)
        (main + term).backward()
        grads[steps] = torch.cat([p.grad.flatten() for p in module.net.parameters()])
    assert not torch.allclose(grads[0], grads[2])
    g = step_generator(module.hparams.seed + 7, 0, 0, module.device)
    z = torch.randn(x0.shape, generator=g)
    top = torch.full((16,), float(module.path.t_max))
    with torch.no_grad():
        first = module.consistency_fn(module.net, top[:, None] * z, top, None)
    torch.testing.assert_close(judged[0][:8], first[:8])
    assert not torch.allclose(judged[0][8:], first[8:])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ("model.adversarial=0", "model.adversarial_steps=2"),
            "has no effect with model.adversarial=0",
        ),
        (("model.adversarial_levels=[1.0]",), "needs model.adversarial_steps > 0"),
        (("model.adversarial_steps=3", "model.adversarial_levels=[1.0]"), "give 2 levels"),
        (("model.adversarial_steps=2", "model.adversarial_levels=[90.0]"), "below sigma_max=80"),
    ],
)
def test_sampler_judging_settings_that_would_be_ignored_or_refused_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _module(0.1, *overrides)
