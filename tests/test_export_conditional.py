"""A class-conditional UNet leaves the framework: a UNet2DModel with our class table (the null
label included) and a pipeline shipped in the folder, which diffusers loads offline without
this package and samples with labels and classifier-free guidance."""

import numpy as np
import pytest
import torch

from conftest import compose, run_cli
from ddpm.evaluation.loading import load_model

diffusers = pytest.importorskip("diffusers")


def _conditional_checkpoint(tmp_path):
    """The digits default made class-conditional, with every weight moved far from its
    initialisation (zero-initialised output layers would hide a mapping error)."""
    from ddpm.config import network_kwargs, parse_train
    from ddpm.data.base import DataInfo
    from ddpm.training.build import run_config

    cfg = parse_train(compose("train", "model.conditional=true", run_dir=tmp_path))
    info = DataInfo("digits", (1, 8, 8), 10, "image")
    kwargs = network_kwargs(cfg.network, info, conditional=True)
    torch.manual_seed(0)
    net = cfg.network.fn(**kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    state = {f"{w}.{k}": v for w in ("net", "ema") for k, v in net.state_dict().items()}
    path = tmp_path / "conditional.ckpt"
    torch.save(
        {"state_dict": state, "hyper_parameters": {"run_config": run_config(cfg, info, kwargs)}},
        path,
    )
    return path


@pytest.mark.slow
def test_a_conditional_unet_exports_with_its_labels_and_samples_in_diffusers(tmp_path):
    ckpt = _conditional_checkpoint(tmp_path)
    out = tmp_path / "hub"
    run_cli("-m", "ddpm.export", str(ckpt), str(out))
    assert (out / "pipeline.py").is_file()
    pipe = diffusers.DiffusionPipeline.from_pretrained(
        out, custom_pipeline=str(out), trust_remote_code=True
    )
    assert type(pipe).__name__ == "ClassConditionalPipeline"
    assert pipe.unet.config.num_class_embeds == 11  # ten digits and the null label
    model = load_model(ckpt)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 1, 8, 8, generator=g)
    k, y = torch.tensor([0, 10, 500, 999, 250, 750]), torch.tensor([0, 3, 9, 10, 5, 10])
    with torch.no_grad():
        ours = model.net(x, k, torch.where(y == 10, -1, y))  # -1: our null label
        theirs = pipe.unet(x, k, class_labels=y).sample
    assert (ours - theirs).abs().max() < 1e-5
    assert (ours[:3] - model.net(x[:3], k[:3], None)).abs().max() > 1e-3  # labels matter

    # one guided step of the pipeline, by hand: null + w (conditional - null), then the scheduler
    labels, w = torch.tensor([1, 7]), 2.0
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    images = pipe(class_labels=labels, guidance_scale=w, num_inference_steps=1, output_type="np",
                  generator=torch.Generator().manual_seed(1)).images  # fmt: skip
    pipe.scheduler.set_timesteps(1)
    t = pipe.scheduler.timesteps[0]
    with torch.no_grad():
        cond, null = model.net(x_T, t.expand(2), labels), model.net(x_T, t.expand(2), None)
    x0 = pipe.scheduler.step(null + w * (cond - null), t, x_T).prev_sample
    assert images.shape == (2, 8, 8, 1)
    assert np.abs(images - (x0 / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()).max() < 1e-5
