"""The feature discriminator (``model/discriminator=features``, LADD): its logits against the
tapped blocks' outputs taken by hand, the backbone frozen and run no further than its deepest tap,
the re-noised inputs the consistency module gives it, where its trained weights come from, and the
settings it refuses."""

import pytest
import torch

from conftest import build_toy_module, run_cli, train_in_process
from ddpm.checks import ConfigError
from ddpm.nets import FeatureDiscriminator, UNet

TAPS = ("down.1.0", "mid.2")
FEATURES = ("model/discriminator=features", "model.discriminator.taps=[layers.0,layers.1]")
CONSISTENCY = ("path=edm", "model=consistency", "sampler=consistency", "model.adversarial=0.1")


def _unet(dropout=0.0):
    torch.manual_seed(0)
    return UNet(in_channels=1, image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1,
                attn_resolutions=(4,), dropout=dropout, num_classes=10)  # fmt: skip


def test_the_logit_sums_a_head_on_each_tapped_block_and_the_backbone_is_frozen():
    backbone = _unet()
    disc = FeatureDiscriminator((1, 8, 8), 10, backbone=backbone, taps=TAPS, width=16)
    for embed in disc.embeds:
        embed.weight.data[1:].normal_()  # a trained projection
    x = torch.randn(5, 1, 8, 8, requires_grad=True)
    c, y = torch.rand(5), torch.arange(5)
    seen, later = {}, []
    names = dict(backbone.named_modules())
    for tap in TAPS:
        names[tap].register_forward_hook(lambda m, a, out, tap=tap: seen.__setitem__(tap, out))
    names["up.0.0"].register_forward_hook(lambda m, a, out: later.append(out))
    logits = disc(x, y, c)
    assert logits.shape == (5,) and later == []  # the blocks after the deepest tap do not run
    expected = sum(
        head(seen[tap]).mean((2, 3)) @ out.weight[0] + out.bias + (emb(y + 1) * head(seen[tap]).mean((2, 3))).sum(1)
        for tap, head, out, emb in zip(TAPS, disc.heads, disc.outs, disc.embeds)
    )  # fmt: skip
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(disc(x, (y + 1) % 10, c), logits)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the model's term reaches its outputs
    assert all(p.grad is None for p in disc.backbone.parameters())
    assert all(p.grad is not None for p in disc.heads.parameters())


def test_the_backbone_stays_in_eval_mode():
    disc = FeatureDiscriminator((1, 8, 8), 10, backbone=_unet(dropout=0.5), taps=TAPS)
    disc.train()
    x, c = torch.randn(4, 1, 8, 8), torch.rand(4)
    assert not disc.backbone.training
    torch.testing.assert_close(disc(x, None, c), disc(x, None, c))  # its dropout is off


@pytest.mark.parametrize(
    "taps, message",
    [(("down.1.0", "nope"), r"taps=\['nope'\]: no such block"), (("down",), "a block the forward")],
)
def test_taps_that_name_no_block_or_a_block_never_called_are_refused(taps, message):
    with pytest.raises(ConfigError, match=message):
        FeatureDiscriminator((1, 8, 8), 10, backbone=_unet(), taps=taps)


def _module(*overrides):
    return build_toy_module(*CONSISTENCY, *FEATURES, *overrides)


def test_the_discriminator_judges_the_networks_inputs_at_renoised_images(toy_edm_ckpt, tmp_path):
    """``D`` gets ``path.network_input(x + sigma eps, sigma)`` with ``ln sigma ~ N(P_mean,
    P_std^2)`` on the term's own stream; its backbone holds ``model.teacher``'s EMA weights,
    or ``model.init``'s without a teacher."""
    from ddpm.paths import broadcast
    from ddpm.random import step_generator

    other = tmp_path / "other"
    train_in_process(other, "path=edm", "seed=5", steps=2)
    teacher = other / "checkpoints" / "last.ckpt"
    module = _module(
        f"model.init={toy_edm_ckpt}", f"model.teacher={teacher}", "model.discriminator.P_mean=-0.5"
    )
    stored = torch.load(teacher, weights_only=True)["state_dict"]
    for name, p in module.discriminator.backbone.state_dict().items():
        torch.testing.assert_close(p, stored[f"ema.{name}"], rtol=0, atol=0)
    assert not torch.equal(module.net.state_dict()["inp.weight"], stored["ema.inp.weight"])
    x = torch.randn(6, 2)
    got = module.discriminator_inputs()(x)
    g = step_generator(module.hparams.seed + 11, 0, 0, module.device)
    sigma = (torch.randn(6, generator=g) * 1.2 - 0.5).exp()
    eps = torch.randn(6, 2, generator=g)
    want = module.path.network_input(x + broadcast(sigma, x) * eps, sigma)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    alone = _module(f"model.init={toy_edm_ckpt}").discriminator.backbone.state_dict()
    init = torch.load(toy_edm_ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(v, init[f"ema.{k}"]) for k, v in alone.items())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ((*FEATURES, "model.init=null"), "give model.teacher=CKPT"),
        (("model.init=null", "model.teacher=x.ckpt"), "has neither"),
    ],
)
def test_a_feature_discriminator_without_weights_or_a_teacher_without_one_is_refused(
    overrides, message, tmp_path
):
    """One ``error:`` line, before any work."""
    proc = run_cli("train.py", "experiment=toy2d", *CONSISTENCY, *overrides,
                   f"hydra.run.dir={tmp_path}", check=False)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr, lines
    assert message in errors[0] and lines[-1] == errors[0]
