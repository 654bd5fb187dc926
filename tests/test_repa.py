"""REPA: the alignment term's math, that a zero weight leaves training exactly as without REPA,
that the term is logged with our digits encoder and with a timm encoder from a weights file, on
pixels and on latents, and the one-line refusals."""

import csv

import pytest
import torch

from conftest import QUIET, compose
from ddpm.checks import ConfigError
from ddpm.config import parse_train
from ddpm.repa import alignment_loss, resample_features

TINY_DIT = ("network=dit_s_2", "network.hidden_size=32", "network.depth=3", "network.num_heads=2")
RUN = ("trainer.limit_val_batches=0", "callbacks.sample_grid.every_n_steps=0",
       "callbacks.checkpoint.every_n_train_steps=4", "trainer.max_steps=4",
       "trainer.log_every_n_steps=1", *QUIET)  # fmt: skip


def test_the_alignment_loss_is_minus_the_mean_cosine():
    a = torch.randn(3, 5, 8)
    torch.testing.assert_close(alignment_loss(a, 2 * a), -torch.ones(3))
    torch.testing.assert_close(alignment_loss(a, -a), torch.ones(3))
    b = torch.zeros(1, 2, 2)
    b[0, 0, 0], b[0, 1, 1] = 1.0, 1.0
    c = torch.zeros(1, 2, 2)
    c[0, 0, 1], c[0, 1, 1] = 1.0, 1.0  # token 0 orthogonal, token 1 equal
    torch.testing.assert_close(alignment_loss(b, c), torch.tensor([-0.5]))


def test_features_are_resampled_to_the_token_grid_row_major():
    f = torch.arange(16.0).reshape(1, 1, 4, 4)
    tokens = resample_features(f, (2, 2))
    torch.testing.assert_close(tokens[0, :, 0], torch.tensor([2.5, 4.5, 10.5, 12.5]))
    assert resample_features(f, (8, 8)).shape == (1, 64, 1)
    torch.testing.assert_close(resample_features(f, (4, 4))[0, :, 0], torch.arange(16.0))


@pytest.fixture(scope="module")
def repa_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("repa_cache")


def _train(run, *overrides):
    from ddpm.training import train

    train(compose("train", *TINY_DIT, *RUN, *overrides, run_dir=run))
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def _logged(run, key):
    with open(run / "logs" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [float(r[key]) for r in rows if r.get(key)]


def test_a_zero_weight_trains_exactly_as_without_repa_and_the_term_is_logged(repa_cache, tmp_path):
    repa = ("model.repa.encoder=digits", "model.repa.depth=2", f"model.repa.cache_dir={repa_cache}")
    plain = _train(tmp_path / "plain")
    zero = _train(tmp_path / "zero", *repa, "model.repa.weight=0")
    on = _train(tmp_path / "on", *repa, "model.repa.weight=1.0")
    nets = [{k: v for k, v in c["state_dict"].items() if k.startswith(("net.", "ema."))}
            for c in (plain, zero, on)]  # fmt: skip
    assert nets[0].keys() == nets[1].keys()
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])
    assert any(not torch.equal(nets[0][k], nets[2][k]) for k in nets[0])
    assert any(k.startswith("repa_head.") for k in on["state_dict"])
    values = _logged(tmp_path / "on", "train/repa")
    assert len(values) == 4 and all(-1 <= v <= 1 for v in values)


def test_a_timm_encoder_from_a_weights_file_on_latents(repa_cache, tmp_path):
    timm = pytest.importorskip("timm")
    diffusers = pytest.importorskip("diffusers")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    save_file(
        {k: v.contiguous() for k, v in vit.state_dict().items()}, tmp_path / "vit.safetensors"
    )
    ae = tmp_path / "ae"
    diffusers.AutoencoderKL(in_channels=1, out_channels=1, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                            layers_per_block=1, norm_num_groups=4).save_pretrained(ae)  # fmt: skip
    run = tmp_path / "run"
    _train(run, "model.repa.encoder=vit_tiny_patch16_224", f"model.repa.weights={tmp_path}/vit.safetensors",
           "model.repa.image_size=32", "model.repa.depth=1", "latent=diffusers_vae",
           f"latent.path={ae}", f"latent.cache_dir={tmp_path}/cache")  # fmt: skip
    assert len(_logged(run, "train/repa")) == 4


def test_repa_refusals_are_one_line_before_work(tmp_path):
    cases = {
        (
            "model.repa.encoder=digits",
            "model.repa.depth=4",
        ): "model.repa.depth=4: depth 4 is outside the network's 1..3 blocks",
        (
            "model.repa.encoder=vit_tiny_patch16_224",
            "model.repa.depth=2",
        ): "needs model.repa.weights=FILE",
        (
            "model.repa.encoder=vit_tiny_patch16_224",
            "model.repa.depth=2",
            f"model.repa.weights={tmp_path}/x",
        ): "is not a file",
        ("model.repa.encoder=digits", "model.repa.weight=-1"): "model.repa.weight=-1 is not valid",
    }
    for overrides, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            parse_train(compose("train", *TINY_DIT, *overrides))
    with pytest.raises(ConfigError, match="exposes none .* use network=dit_s_2"):
        parse_train(compose("train", "model.repa.encoder=digits"))  # the default UNet


def test_a_repa_checkpoint_loads_without_its_encoder_and_resume_compares_the_term(
    repa_cache, tmp_path
):
    from ddpm.training import DiffusionModule
    from ddpm.training.resume import model_differences

    run = tmp_path / "run"
    repa = ("model.repa.encoder=digits", "model.repa.depth=2", f"model.repa.cache_dir={repa_cache}")
    ckpt = _train(run, *repa)
    module = DiffusionModule.load_from_checkpoint(
        run / "checkpoints" / "last.ckpt", weights_only=True
    )
    head = {
        k[len("repa_head.") :]: v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("repa_head.")
    }
    assert all(torch.equal(module.repa_head.state_dict()[k], v) for k, v in head.items())
    stored = ckpt["hyper_parameters"]["run_config"]
    assert stored["model"]["repa"]["feature_dim"] == 128
    now = {**stored, "model": {**stored["model"], "repa": {**stored["model"]["repa"], "depth": 3}}}
    assert any("model.repa=" in d for d in model_differences(stored, now))
    off = {**stored, "model": {**stored["model"], "repa": {"encoder": None}}}
    assert any("model.repa=" in d for d in model_differences(stored, off))
    assert model_differences(stored, stored) == []
