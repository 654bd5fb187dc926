"""The LightningModule, EMA and timestep sampling, in-process on tiny data."""

import lightning as L
import pytest
import torch

from conftest import fit_quietly
from ddpm.data import Toy2DDataModule
from ddpm.nets import MLP
from ddpm.schedule import make_schedule
from ddpm.timestep_sampler import ImportanceSampler
from ddpm.training import DiffusionModule, NonFiniteLossError
from ddpm.training.ema import ema_decay_at, ema_update


def _module(**kw):
    cfg = {"data_shape": [2], "num_classes": None}
    return DiffusionModule(
        MLP(dim=2, hidden=64, depth=2),
        make_schedule("linear", 100),
        decoder="gaussian",
        lr=3e-3,
        run_config=cfg,
        ema_decay=0.9,
        **kw,
    )


def _fit(module, steps, size=256):
    L.seed_everything(0)
    return fit_quietly(
        module, Toy2DDataModule("gaussians", size=size, test_size=64, batch_size=64), steps
    )


# Each objective judged by its own loss on the training points. The v/min-SNR loss keeps a large
# irreducible part (the denoiser's real uncertainty on an 8-component mixture), hence its factor.
@pytest.mark.parametrize(
    "prediction,loss,factor",
    [("eps", "simple", 0.3), ("v", "min_snr", 0.8), ("mu", "simple", 0.1), ("x0", "vlb", 0.1)],
)
def test_loss_falls_when_overfitting_a_tiny_set(prediction, loss, factor):
    module = _module(prediction=prediction, loss=loss)
    dm = Toy2DDataModule("gaussians", size=256, test_size=64, batch_size=256)
    x0, y = next(iter(dm.train_dataloader()))
    x0, y = x0.repeat(8, 1), y.repeat(8)

    def objective() -> float:
        g = torch.Generator().manual_seed(1)
        return module._losses(module.net, x0, y, g)[0]["loss"].mean().item()

    before = objective()
    _fit(module, 300)
    after = objective()
    assert after < factor * before, (before, after)


def test_ema_tracks_the_weights_with_warmup():
    assert ema_decay_at(0, 0.9999, True) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.9999, True) == 0.9999
    assert ema_decay_at(0, 0.9, False) == 0.9
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    ema_update(a, b, 0.75)
    assert torch.allclose(a.weight, 0.75 * before + 0.25 * b.weight)


def test_module_updates_ema_every_step_and_ema_differs_from_raw():
    module = _module()
    _fit(module, 20)
    assert module._ema_updates == 20
    raw = torch.cat([p.flatten() for p in module.net.parameters()])
    ema = torch.cat([p.flatten() for p in module.ema.parameters()])
    assert not torch.allclose(raw, ema)
    assert all(not p.requires_grad for p in module.ema.parameters())


def test_importance_sampler_is_unbiased_and_follows_loss_scale():
    T = 4
    s = ImportanceSampler(T, history=3, uniform_prob=0.0)
    losses = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    for _ in range(3):
        s.update(torch.arange(T), losses)
    p = s.probs()
    assert torch.allclose(p, losses / losses.sum())
    torch.manual_seed(0)
    k, w = s.sample(200_000, "cpu")
    estimate = (w.double() * losses[k]).mean()
    assert estimate.item() == pytest.approx(losses.mean().item(), rel=0.02)


def test_non_finite_loss_stops_with_the_step():
    class Broken(MLP):
        def forward(self, x, k, y=None):
            return super().forward(x, k) * float("nan")

    module = DiffusionModule(
        Broken(dim=2, hidden=16, depth=1), make_schedule("linear", 100), decoder="gaussian",
        run_config={"data_shape": [2]},
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* at step 0"):
        _fit(module, 5)


def test_learned_variance_trains_with_the_hybrid_loss_and_samples():
    module = DiffusionModule(
        MLP(dim=2, hidden=64, depth=2, learn_sigma=True),
        make_schedule("linear", 100),
        decoder="gaussian",
        loss="hybrid",
        variance="learned_range",
        timestep_sampling="importance",
        run_config={"data_shape": [2]},
    )
    _fit(module, 10)
    x = module.generate(16)
    assert x.shape == (16, 2) and torch.isfinite(x).all()


def test_load_from_checkpoint_rebuilds_the_module_from_its_run_config(tmp_path):
    """Lightning's own loading works with no other argument (CONTRACT.md, Extending), and the
    state dict holds each weight once."""
    from conftest import train_in_process

    train_in_process(tmp_path, steps=4)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    module = DiffusionModule.load_from_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert set(state) == {f"net.{k}" for k in module.net.state_dict()} | {
        f"ema.{k}" for k in module.ema.state_dict()
    }
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert module.path.num_timesteps == 1000 and module.prediction == "eps"
    assert module.hparams.prediction == "eps"  # auto, resolved when the config was parsed
    assert module.generate(4, sampler=None).shape == (4, 2)
