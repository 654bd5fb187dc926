"""path=edm (Karras et al. 2022): Table 1's preconditionings, training levels and loss weight,
sigma_data measured from the data."""

import argparse
import math

import pytest
import torch

from conftest import REPO, compose, train_in_process
from ddpm.checks import ConfigError
from ddpm.cli.preflight import preflight
from ddpm.config import PARSERS, parse_train
from ddpm.paths import EDMPath
from path_checks import (
    check_exact_network_denoises_to_the_posterior_mean,
    check_exact_network_minimises_the_loss,
    check_forward_process,
)

SIGMAS = torch.tensor([0.002, 0.1, 0.5, 3.0, 80.0], dtype=torch.float64)


@pytest.mark.parametrize("precond", ["edm", "vp", "ve"])
def test_the_exact_network_denoises_and_minimises_the_loss(precond):
    path = EDMPath(precond)
    check_forward_process(path)
    check_exact_network_denoises_to_the_posterior_mean(path, "F")
    check_exact_network_minimises_the_loss(path, "F")


def test_table_1_preconditioning_written_out():
    """Table 1, each column, at five levels: c_skip, c_out, c_in, c_noise, and the loss weight
    lambda with lambda c_out^2 = 1 (so the loss on F is unweighted)."""
    sd, s = 0.5, SIGMAS
    edm = EDMPath("edm", sigma_data=sd)
    assert torch.allclose(edm.c_skip(s), sd**2 / (s**2 + sd**2))
    assert torch.allclose(edm.c_out(s), s * sd / (s**2 + sd**2).sqrt())
    assert torch.allclose(edm.c_in(s), 1 / (sd**2 + s**2).sqrt())
    assert torch.allclose(edm.c_noise(s).double(), s.log() / 4, atol=1e-6)
    assert torch.allclose(edm.loss_weight(s), (s**2 + sd**2) / (s * sd) ** 2)
    vp = EDMPath("vp")
    t = ((0.1**2 + 2 * 19.9 * torch.log1p(s**2)).sqrt() - 0.1) / 19.9  # sigma^-1 of the VP SDE
    assert torch.allclose(vp.c_noise(s).double(), 999 * t, rtol=1e-6)
    assert torch.allclose(vp.c_out(s), -s) and torch.allclose(vp.c_in(s), 1 / (1 + s**2).sqrt())
    ve = EDMPath("ve")
    assert torch.allclose(ve.c_noise(s).double(), (s / 2).log(), atol=1e-6)
    assert torch.allclose(ve.c_out(s), s) and torch.allclose(ve.c_skip(s), torch.ones_like(s))
    for path in (edm, vp, ve):
        assert torch.allclose(path.loss_weight(s) * path.c_out(s) ** 2, torch.ones_like(s))


def test_training_levels_are_log_normal():
    path = EDMPath(P_mean=-1.2, P_std=1.2)
    n = 100_000
    log_sigma = path.sample_times(n, torch.Generator().manual_seed(0), "cpu").log()
    assert abs(log_sigma.mean().item() + 1.2) < 4 * 1.2 / math.sqrt(n)
    assert abs(log_sigma.std().item() / 1.2 - 1) < 4 / math.sqrt(2 * n)


def test_the_loss_is_lambda_times_the_squared_error_of_d():
    """``losses`` works on F; it equals lambda(sigma) ||D - x_0||^2 (Table 1) computed from D."""
    path = EDMPath()
    g = torch.Generator().manual_seed(0)
    x0, noise, out = (torch.randn(8, 3, generator=g, dtype=torch.float64) for _ in range(3))
    sigma = path.sample_times(8, g, "cpu").double()
    x = path.q_sample(x0, sigma, noise)
    d = path.x0(out, x, sigma, "F")
    lam = path.loss_weight(sigma)
    expected = lam * ((d - x0) ** 2).mean(1)
    assert torch.allclose(path.losses(out, x0, x, sigma, noise, "F")["loss"], expected)


def test_sigma_data_auto_is_measured_from_the_data_and_stored(tmp_path):
    train_in_process(tmp_path, "path=edm", "path.sigma_data=auto", steps=2)
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    sd = stored["hyper_parameters"]["run_config"]["path"]["sigma_data"]
    from ddpm.data import Toy2DDataModule
    from ddpm.data.base import dataset_tensors

    x = dataset_tensors(Toy2DDataModule("moons", size=512).train_set)[0]
    assert sd == pytest.approx(float(x.double().std()), rel=1e-6) and sd != 0.5


def test_predictions_and_options_it_does_not_have_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="model.prediction=eps is not defined on path=edm"):
        parse_train(compose("train", "path=edm", "model.prediction=eps"))
    with pytest.raises(ConfigError, match=r"model.loss=vlb needs path=ddpm \(the VLB terms"):
        parse_train(compose("train", "path=edm", "model.loss=vlb"))
    with pytest.raises(ConfigError, match="path.precond='vq' is not valid; choose one of edm, vp"):
        parse_train(compose("train", "path=edm", "path.precond=vq"))
    with pytest.raises(ConfigError, match="path.sigma_min=90 is not valid; it must be below"):
        parse_train(compose("train", "path=edm", "path.sigma_min=90"))
    with pytest.raises(ConfigError, match="path.sigma_data=-1 is not valid; it must be"):
        parse_train(compose("train", "path=edm", "path.sigma_data=-1"))
    args = argparse.Namespace(overrides=["path=edm", "schedule=cosine"], multirun=False,
                              config_dir=None)  # fmt: skip
    with pytest.raises(ConfigError, match="schedule=... applies only with path=ddpm"):
        preflight("train", REPO / "conf", args, PARSERS["train"])


def test_its_time_is_discretized_as_karras_et_al_eq_5():
    """The time-based spacings are stated in sigma^(1/7): uniform is the Karras schedule."""
    from ddpm.samplers import step_levels

    path = EDMPath()
    assert torch.allclose(step_levels(path, 9, "uniform"), step_levels(path, 9, "karras"))
    u = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    mid = ((0.002 ** (1 / 7) + 80 ** (1 / 7)) / 2) ** 7
    assert torch.allclose(path.time_grid(u), torch.tensor([0.002, mid, 80.0], dtype=torch.float64))
