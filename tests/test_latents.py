"""Latent diffusion: training on an autoencoder's latents (a diffusers AutoencoderKL folder or a
VAE of ours), samples decoded to the data's shape, the latent cache (reuse, invalidation,
corruption) and the refusals of data an autoencoder cannot encode."""

import numpy as np
import pytest
import torch

from conftest import QUIET, compose, run_cli
from ddpm.checks import ConfigError
from ddpm.config import parse_train

diffusers = pytest.importorskip("diffusers")

TINY_DIT = ("network=dit_s_2", "network.hidden_size=32", "network.depth=2", "network.num_heads=2")
RUN = ("trainer.limit_val_batches=0", "callbacks.sample_grid.every_n_steps=0",
       "callbacks.checkpoint.every_n_train_steps=3", "trainer.max_steps=3", *QUIET)  # fmt: skip


def save_autoencoder(folder, channels=1, levels=2, latent_channels=4):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=channels, out_channels=channels, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(8 * 2**i for i in range(levels)), layers_per_block=1,
        norm_num_groups=4, sample_size=8, scaling_factor=0.5,
    )  # fmt: skip
    vae.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    return save_autoencoder(tmp_path_factory.mktemp("ae"))


def latent_overrides(folder, cache):
    return ("latent=diffusers_vae", f"latent.path={folder}", f"latent.cache_dir={cache}")


def test_a_dit_trains_on_autoencoder_latents_and_samples_decoded_images(autoencoder, tmp_path):
    from ddpm.evaluation import evaluate, sample
    from ddpm.latents import DiffusersVAE
    from ddpm.training import train

    run = tmp_path / "run"
    train(
        compose(
            "train",
            *TINY_DIT,
            *latent_overrides(autoencoder, tmp_path / "cache"),
            *RUN,
            run_dir=run,
        )
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    stored = torch.load(ckpt, weights_only=True)["hyper_parameters"]["run_config"]
    assert stored["latent_shape"] == [4, 4, 4] and stored["data_shape"] == [1, 8, 8]
    assert stored["latent"]["scaling_factor"] == 0.5  # the autoencoder config's
    out = sample(compose("sample", f"ckpt={ckpt}", "num_samples=5", "sampler=ddim", "sampler.steps=4",
                         run_dir=tmp_path / "s"))  # fmt: skip
    npz = np.load(out / "samples.npz")
    assert npz["images"].shape == (5, 8, 8, 1) and npz["latents"].shape == (5, 4, 4, 4)
    ae = DiffusersVAE(str(autoencoder), scaling_factor=0.5)  # samples are the decoded latents
    torch.testing.assert_close(
        ae.decode(torch.from_numpy(npz["latents"])), torch.from_numpy(npz["samples"])
    )
    metrics = evaluate(compose("evaluate", f"ckpt={ckpt}", "num_samples=20", "sampler=ddim",
                               "sampler.steps=2", run_dir=tmp_path / "e"))  # fmt: skip
    assert np.isfinite(metrics["fid"])  # scored in pixel space by the digits' classifier
    with pytest.raises(ConfigError, match="likelihood of latents"):
        evaluate(
            compose("evaluate", f"ckpt={ckpt}", "num_samples=4", "bpd=ode", run_dir=tmp_path / "b")
        )


def test_our_vae_is_the_autoencoder_of_a_latent_model(tmp_path):
    from ddpm.evaluation import sample
    from ddpm.training import train

    vae_run = tmp_path / "vae"
    train(compose("train", "experiment=digits_latent_ae", "trainer.max_steps=3",
                  "callbacks.checkpoint.every_n_train_steps=3", "trainer.limit_val_batches=0",
                  "callbacks.sample_grid.every_n_steps=0", *QUIET, run_dir=vae_run))  # fmt: skip
    run = tmp_path / "run"
    overrides = (
        "latent=vae",
        f"latent.ckpt={vae_run}/checkpoints/last.ckpt",
        f"latent.cache_dir={tmp_path}/c",
    )
    cfg = parse_train(compose("train", *TINY_DIT, *overrides, *RUN, run_dir=run))
    from ddpm.training.build import build_datamodule

    data = build_datamodule(cfg)
    data.resolve()
    z = torch.stack([data.train_set[i][0] for i in range(len(data.train_set))]).double()
    assert z.shape[1:] == (4, 4, 4)
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.pow(2).mean()) - 1) < 1e-4  # auto factors
    train(cfg)
    out = sample(compose("sample", f"ckpt={run}/checkpoints/last.ckpt", "num_samples=3",
                         "sampler=euler", "sampler.steps=2", run_dir=tmp_path / "s"))  # fmt: skip
    assert np.load(out / "samples.npz")["images"].shape == (3, 8, 8, 1)


def _datamodule(autoencoder, cache):
    from ddpm.training.build import build_datamodule

    return build_datamodule(
        parse_train(compose("train", *TINY_DIT, *latent_overrides(autoencoder, cache)))
    )


def test_the_cache_is_reused_rebuilt_when_stale_and_when_corrupt(
    autoencoder, tmp_path, capsys, monkeypatch
):
    from ddpm.latents import DiffusersVAE

    calls = []
    encode = DiffusersVAE.encode_mean
    monkeypatch.setattr(
        DiffusersVAE, "encode_mean", lambda self, x: calls.append(len(x)) or encode(self, x)
    )
    first = _datamodule(autoencoder, tmp_path).latents("train")[0]
    files = sorted(tmp_path.glob("*-train-*.pt"))
    assert len(files) == 1 and sum(calls) == len(first)
    calls.clear()
    again = _datamodule(autoencoder, tmp_path).latents("train")[0]  # reuse: nothing encoded
    assert calls == [] and torch.equal(again, first)

    state = torch.load(files[0], weights_only=True)  # stale: another key under this name
    state["key"]["autoencoder"] = "something else"
    torch.save(state, files[0])
    rebuilt = _datamodule(autoencoder, tmp_path).latents("train")[0]
    assert sum(calls) == len(first) and torch.equal(rebuilt, first)
    assert "holds another dataset or autoencoder; rebuilding it" in capsys.readouterr().err

    calls.clear()
    files[0].write_bytes(files[0].read_bytes()[:1000])  # corrupt: a truncated file
    assert torch.equal(_datamodule(autoencoder, tmp_path).latents("train")[0], first)
    assert sum(calls) == len(first) and "unreadable file" in capsys.readouterr().err

    other = save_autoencoder(tmp_path / "other", latent_channels=2)  # another autoencoder: new file
    z = _datamodule(other, tmp_path).latents("train")[0]
    assert z.shape[1] == 2 and len(list(tmp_path.glob("*-train-*.pt"))) == 2


def test_data_rewritten_at_the_same_path_is_encoded_again(autoencoder, tmp_path, capsys):
    from ddpm.evaluation.outputs import write_samples
    from ddpm.training.build import build_datamodule

    pool = tmp_path / "pool"

    def latents(seed: int | None) -> torch.Tensor:
        if seed is not None:  # a new pool of 40 labelled digits at the same path
            x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1
            write_samples(pool, x, is_image=True, labels=torch.arange(40) % 10)
        samples = ("dataset=samples", f"dataset.path={pool / 'samples.npz'}")
        cfg = compose("train", *TINY_DIT, *latent_overrides(autoencoder, tmp_path), *samples)
        return build_datamodule(parse_train(cfg)).latents("train")[0]

    first = latents(0)
    assert torch.equal(latents(None), first)  # the same file: read back from the cache
    assert "rebuilding" not in capsys.readouterr().err
    second = latents(1)  # rewritten in place: the cache's key no longer matches
    assert "holds another dataset or autoencoder; rebuilding it" in capsys.readouterr().err
    assert second.shape == first.shape and not torch.allclose(second, first)
    assert len(list(tmp_path.glob("*-train-*.pt"))) == 1


def test_bad_autoencoders_are_refused_in_one_line_before_work(autoencoder, tmp_path):
    (tmp_path / "empty").mkdir()
    unet = tmp_path / "unet"  # what UNet2DModel.save_pretrained writes
    unet.mkdir()
    (unet / "config.json").write_text('{"_class_name": "UNet2DModel", "in_channels": 1}')
    (unet / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    rgb = save_autoencoder(tmp_path / "rgb", channels=3)
    deep = save_autoencoder(tmp_path / "deep", levels=5)  # downsamples by 16 > 8
    cases = {
        (): "latent=diffusers_vae needs latent.path=DIR",
        (f"latent.path={tmp_path / 'empty'}",): "is not an autoencoder folder",
        (f"latent.path={unet}",): "holds a UNet2DModel, not an AutoencoderKL",
        (f"latent.path={rgb}",): "encodes 3-channel images; the data digits have 1 channels",
        (f"latent.path={deep}",): "downsamples by 16; the data digits are 8x8",
        (
            f"latent.path={autoencoder}",
            "network.patch_size=8",
        ): "patch_size=8 does not divide the input size 4",
    }
    for overrides, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            parse_train(compose("train", *TINY_DIT, "latent=diffusers_vae", *overrides))
    proc = run_cli("train.py", "latent=diffusers_vae", f"latent.path={unet}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: latent.path=")
    with pytest.raises(ConfigError, match="model=vae has none"):
        parse_train(
            compose(
                "train",
                "experiment=digits_vae",
                "latent=diffusers_vae",
                f"latent.path={autoencoder}",
            )
        )


@pytest.mark.slow
def test_two_processes_share_one_encoding_of_the_data(autoencoder, tmp_path):
    cache = tmp_path / "cache"
    proc = run_cli("train.py", *TINY_DIT, *latent_overrides(autoencoder, cache), *RUN,
                   "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
                   f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert len(list(cache.glob("*-train-*.pt"))) == 1 and len(list(cache.glob("*-test-*.pt"))) == 1
    import re

    finished = re.findall(r"encoding digits train[^:]*: (\d+)/(\d+)", proc.stderr)
    assert sum(a == b for a, b in finished) == 1  # one process encoded, the other read the file


def test_a_changed_autoencoder_is_refused_when_sampling_and_resuming(tmp_path):
    from ddpm.evaluation import sample
    from ddpm.training import train
    from ddpm.training.resume import model_differences

    folder = save_autoencoder(tmp_path / "ae")
    run = tmp_path / "run"
    train(compose("train", *TINY_DIT, *latent_overrides(folder, tmp_path / "c"), *RUN, run_dir=run))
    ckpt = run / "checkpoints" / "last.ckpt"
    stored = torch.load(ckpt, weights_only=True)["hyper_parameters"]["run_config"]
    assert stored["latent"]["path"] == str(folder.resolve()) and stored["latent"]["fingerprint"]
    other = {**stored, "latent": {**stored["latent"], "scaling_factor": 0.25}}
    assert any(d.startswith("latent=") for d in model_differences(stored, other))
    save_autoencoder(folder, latent_channels=4, levels=2)  # the same shape, other weights
    torch.manual_seed(1)
    vae = diffusers.AutoencoderKL.from_pretrained(folder)
    with torch.no_grad():
        next(vae.parameters()).add_(1.0)
    vae.save_pretrained(folder)
    with pytest.raises(ConfigError, match="whose weights have changed since"):
        sample(compose("sample", f"ckpt={ckpt}", "num_samples=2", run_dir=tmp_path / "s"))
