"""Export to diffusers and safetensors, a diffusers UNet trained here, Hugging Face datasets."""

import json

import numpy as np
import pytest
import torch

from conftest import QUIET, compose, inception_weights, run_cli
from ddpm.checks import ConfigError
from ddpm.evaluation import evaluate
from ddpm.evaluation.loading import load_model
from ddpm.export import export_diffusers, export_safetensors, load_safetensors
from ddpm.training import train

diffusers = pytest.importorskip("diffusers")
datasets = pytest.importorskip("datasets")
pytestmark = pytest.mark.slow


def _fake_checkpoint(tmp_path, *overrides, steps=1):
    """A briefly trained checkpoint (random-looking weights) of the digits default, unconditional
    unless the overrides say otherwise (DDPMPipeline takes no class labels)."""
    run = tmp_path / "run"
    train(compose("train", "model.conditional=false", f"trainer.max_steps={steps}",
                  "callbacks.sample_grid=null", "callbacks.forward_noising=null",
                  "trainer.limit_val_batches=0", *QUIET, *overrides, run_dir=run))  # fmt: skip
    return run / "checkpoints" / "last.ckpt"


def _matches_our_network(ckpt, out, shape):
    pipe = diffusers.DDPMPipeline.from_pretrained(out)
    model = load_model(ckpt)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    k = torch.tensor([0, 10, 500, 999])[: shape[0]]
    with torch.no_grad():
        ours, theirs = model.net(x, k), pipe.unet(x, k).sample
    assert (ours - theirs).abs().max() < 1e-5
    abar = pipe.scheduler.alphas_cumprod.double()
    assert (abar - model.model.path.schedule.alphas_cumprod).abs().max() < 1e-6
    return pipe


def test_a_flow_checkpoint_exports_to_a_pipeline_running_its_euler_sampler(tmp_path):
    """path=flow: DDPMPipeline with FlowMatchEulerDiscreteScheduler, whose timesteps 1000 t are
    our c_noise: its loop is the flow's Euler step on our network, computed by hand here."""
    ckpt = _fake_checkpoint(tmp_path, "path=flow", steps=2)
    export_diffusers(ckpt, tmp_path / "hub")
    pipe = diffusers.DDPMPipeline.from_pretrained(tmp_path / "hub")
    assert isinstance(pipe.scheduler, diffusers.FlowMatchEulerDiscreteScheduler)
    net = load_model(ckpt).net
    x = ours = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    pipe.scheduler.set_timesteps(4)
    ts = [*pipe.scheduler.sigmas.tolist()]  # t = 1 ... 1/1000, then 0
    with torch.no_grad():
        for t, t_next in zip(ts[:-1], ts[1:]):
            c = torch.full((2,), 1000.0 * t)
            x = pipe.scheduler.step(pipe.unet(x, c).sample, c[0], x).prev_sample
            ours = ours + (t_next - t) * net(ours, c)  # dx/dt = velocity
    assert (x - ours).abs().max() < 1e-4
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 8, 8, 1) and np.isfinite(images).all()


def test_an_edm_checkpoint_exports_a_scheduler_whose_loop_is_our_euler_sampler(tmp_path):
    """path=edm: UNet2DModel + EDMEulerScheduler (our preconditioning); its standard loop
    (scale_model_input, unet, step) gives our ``euler`` samples on the same Karras levels."""
    from ddpm.samplers import Denoiser, step_levels
    from ddpm.samplers.euler import euler

    ckpt = _fake_checkpoint(tmp_path, "path=edm", steps=2)
    export_diffusers(ckpt, tmp_path / "hub")
    unet = diffusers.UNet2DModel.from_pretrained(tmp_path / "hub" / "unet")
    scheduler = diffusers.EDMEulerScheduler.from_pretrained(tmp_path / "hub" / "scheduler")
    model = load_model(ckpt).model
    scheduler.set_timesteps(5)
    sigmas = step_levels(model.path, 5, "karras")
    assert torch.allclose(scheduler.sigmas.double(), sigmas, rtol=1e-5)
    x = x_T = 80.0 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(scheduler.scale_model_input(x, t), t.expand(2)).sample
            x = scheduler.step(out, t, x).prev_sample
        ours = euler(Denoiser(lambda x, c: model.net(x, c), model.path, "F"), x_T, sigmas)
    assert (x - ours).abs().max() < 1e-4


def test_unconditional_digits_exports_to_a_pipeline_that_runs(tmp_path):
    ckpt = _fake_checkpoint(tmp_path, "network.attn_resolutions=[8,4]")  # attention at two widths
    proc = run_cli("-m", "ddpm.export", str(ckpt), str(tmp_path / "hub"))
    assert "wrote diffusers export" in proc.stdout
    pipe = _matches_our_network(ckpt, tmp_path / "hub", (4, 1, 8, 8))
    assert pipe.scheduler.config.prediction_type == "epsilon"
    assert pipe.scheduler.config.variance_type == "fixed_small"
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 8, 8, 1) and np.isfinite(images).all()
    ddim = diffusers.DDIMPipeline.from_pretrained(tmp_path / "hub")
    assert ddim(batch_size=1, num_inference_steps=3, output_type="np").images.shape == (1, 8, 8, 1)


def test_the_trained_reverse_variance_is_exported(tmp_path):
    ckpt = _fake_checkpoint(tmp_path, "model.variance=fixed_large")
    export_diffusers(ckpt, tmp_path / "hub")
    pipe = diffusers.DDPMPipeline.from_pretrained(tmp_path / "hub")
    assert pipe.scheduler.config.variance_type == "fixed_large"


def test_cifar10_preset_exports_with_random_weights(tmp_path):
    """The Ho et al. CIFAR-10 UNet (35.7M parameters) maps onto UNet2DModel exactly."""
    from ddpm.config import network_kwargs, parse_train
    from ddpm.data.base import DataInfo
    from ddpm.training.build import run_config

    cfg = parse_train(compose("train", "experiment=cifar10_ddpm", run_dir=tmp_path))
    info = DataInfo("cifar10", (3, 32, 32), 10, "image")
    kwargs = network_kwargs(cfg.network, info)
    torch.manual_seed(0)
    net = cfg.network.fn(**kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)  # not the zero init, and sharp enough attention to matter
    state = {f"net.{k}": v for k, v in net.state_dict().items()} | {
        f"ema.{k}": v for k, v in net.state_dict().items()
    }
    ckpt = tmp_path / "cifar.ckpt"
    torch.save(
        {"state_dict": state, "hyper_parameters": {"run_config": run_config(cfg, info, kwargs)}},
        ckpt,
    )
    export_diffusers(ckpt, tmp_path / "hub")
    _matches_our_network(ckpt, tmp_path / "hub", (2, 3, 32, 32))


@pytest.mark.parametrize(
    "overrides,reason",
    [
        (["network.ch=48"], "not all multiples of 32"),
        (["model.prediction=mu"], "no diffusers prediction_type"),
        (["path=vp"], "path=vp with model.prediction=eps has no diffusers scheduler"),
        (["path=edm", "path.precond=ve"], "path=edm with path.precond=ve has no diffusers"),
    ],
)
def test_what_diffusers_cannot_express_is_refused_with_the_reason(tmp_path, overrides, reason):
    ckpt = _fake_checkpoint(tmp_path, *overrides)
    with pytest.raises(ConfigError, match=reason):
        export_diffusers(ckpt, tmp_path / "hub")
    proc = run_cli("-m", "ddpm.export", str(ckpt), str(tmp_path / "hub2"), check=False)
    assert proc.returncode == 2 and reason in proc.stderr and "Traceback" not in proc.stderr
    export_safetensors(ckpt, tmp_path / "st")  # any network exports as safetensors


def test_safetensors_export_loads_into_a_network_built_from_its_config(tmp_path):
    from safetensors.torch import load_file

    ckpt = _fake_checkpoint(tmp_path, "model.variance=learned_range", "model.loss=hybrid", steps=3)
    for ema in (True, False):
        out = tmp_path / f"st-{ema}"
        run_cli(
            "-m",
            "ddpm.export",
            str(ckpt),
            str(out),
            "--format",
            "safetensors",
            "--use-ema",
            str(ema).lower(),
        )
        weights = load_file(out / "model.safetensors")
        assert json.loads((out / "config.json").read_text())["weights"] == ("ema" if ema else "raw")
        reference = load_model(ckpt, use_ema=ema).net.state_dict()
        assert set(weights) == set(reference) and all(
            torch.equal(weights[k], reference[k]) for k in weights
        )
        net = load_safetensors(out)
        x, k = torch.randn(2, 1, 8, 8), torch.tensor([3, 900])
        assert torch.equal(net(x, k), load_model(ckpt, use_ema=ema).net(x, k))


def test_a_diffusers_unet_trains_samples_and_evaluates_here(tmp_path):
    ckpt = _fake_checkpoint(tmp_path, "network=diffusers_unet", "model.conditional=true", steps=4)
    m = evaluate(compose("evaluate", f"ckpt={ckpt}", "num_samples=20", "sampler.steps=3",
                         "class_label=[1,2]", "progress=false", f"fid.cache_dir={tmp_path / 'c'}",
                         run_dir=tmp_path / "e"))  # fmt: skip
    assert np.isfinite(m["fid"]) and m["nfe"] == 3 and "label_accuracy" in m


def test_train_and_evaluate_on_a_saved_hugging_face_dataset(hf_folder, tmp_path):
    common = ["dataset=hf", f"dataset.path={hf_folder}", "dataset.image_size=8", "dataset.num_workers=0",
              "dataset.batch_size=8"]  # fmt: skip
    run = tmp_path / "run"
    train(compose("train", *common, "network.ch=32", "trainer.max_steps=3", "model.conditional=true",
                  "callbacks.sample_grid.num_samples=4", "trainer.limit_val_batches=1", *QUIET, run_dir=run))  # fmt: skip
    model = load_model(run / "checkpoints" / "last.ckpt")
    assert model.recipe.data.shape == (3, 8, 8) and model.recipe.data.num_classes == 3
    weights = inception_weights(tmp_path)
    m = evaluate(compose("evaluate", f"ckpt={run}/checkpoints/last.ckpt", "num_samples=10",
                         "sampler.steps=2", "progress=false", f"fid.weights_path={weights}",
                         f"fid.cache_dir={tmp_path / 'cache'}", run_dir=tmp_path / "e"))  # fmt: skip
    assert m["feature_extractor"] == "inception-v3-compat" and np.isfinite(m["fid"])
    (cached,) = (tmp_path / "cache").glob("features-hf-toy_images-8-test-*.pt")
    assert torch.load(cached, weights_only=True).shape == (
        12,
        2048,
    )  # scored against its test split
    dm = model.datamodule()
    assert len(dm.test_set) == 12 and len(dm.train_set) == 40  # its own test split
    x, y = dm.train_set[0]
    assert x.shape == (3, 8, 8) and x.min() >= -1 and x.max() <= 1 and y in (0, 1, 2)


def test_hub_names_offline_and_bad_folders_say_what_to_provide(tmp_path, monkeypatch):
    from ddpm.data import hf

    monkeypatch.setattr(hf, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(hf.DatasetNotFoundError, match="save_to_disk.*dataset.path=DIR"):
        hf.HFDataModule("someone/some-dataset").check_available()
    (tmp_path / "empty").mkdir()
    with pytest.raises(hf.DatasetNotFoundError, match="is not a dataset datasets can read"):
        hf.HFDataModule(str(tmp_path / "empty")).check_available()
