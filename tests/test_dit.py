"""The DiT network: the paper's architecture and initialisation, the same output as diffusers'
DiTTransformer2DModel on the same weights, its parameter counts, and training on every path."""

import pytest
import torch

from conftest import compose, run_cli
from ddpm.checks import ConfigError
from ddpm.config import parse_train
from ddpm.nets import DiT
from ddpm.nets.dit import PRESETS, dit_time_features, sincos_2d

diffusers = pytest.importorskip("diffusers")
from ddpm.export.diffusers_dit import dit_config, to_diffusers  # noqa: E402

SMALL = dict(in_channels=3, image_size=8, patch_size=2, hidden_size=64, depth=3, num_heads=4)


def far_from_init(net: DiT, scale: float = 0.3) -> DiT:
    """The zero-initialised modulation and output layers would hide most mapping mistakes."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.mark.parametrize(
    "conditioning,classes,learn",
    [("shared", 10, True), ("per_block", 10, False), ("shared", None, False)],
)
def test_diffusers_dit_computes_our_output_on_the_same_weights(
    conditioning, classes, learn, tmp_path
):
    kw = dict(SMALL, num_classes=classes, class_cond=classes is not None, learn_sigma=learn,
              conditioning=conditioning)  # fmt: skip
    torch.manual_seed(0)
    net = far_from_init(DiT(**kw))
    to_diffusers(net, kw).save_pretrained(tmp_path)
    theirs = diffusers.DiTTransformer2DModel.from_pretrained(tmp_path).eval()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0.0, 1.5, 17.0, 250.0, 999.0, 612.3])
    y = (
        torch.tensor([0, 3, 9, 1, 2, 10 if classes else 0]) if classes else None
    )  # 10: the null class
    with torch.no_grad():
        ours = net(x, t, None if y is None else torch.where(y == 10, -1, y))
        out = theirs(
            x, t, class_labels=y if y is not None else torch.zeros(6, dtype=torch.long)
        ).sample
    assert ours.shape == (6, 3 * (2 if learn else 1), 8, 8)
    assert ours.abs().max() > 1.0  # far from the zero initialisation
    torch.testing.assert_close(out, ours, atol=1e-5, rtol=1e-5)


def test_a_wrong_mapping_would_be_caught():
    kw = dict(SMALL, num_classes=10, class_cond=True)
    net = far_from_init(DiT(**kw))
    theirs = to_diffusers(net, kw)
    with torch.no_grad():  # swap two projections: the outputs must then differ
        a = theirs.transformer_blocks[1].attn1
        a.to_q.weight.copy_(a.to_k.weight.clone())
    x, t, y = torch.randn(2, 3, 8, 8), torch.tensor([3.0, 400.0]), torch.tensor([1, 2])
    with torch.no_grad():
        assert (theirs(x, t, class_labels=y).sample - net(x, t, y)).abs().max() > 1e-3


def test_dit_xl_2_has_the_papers_and_diffusers_parameter_counts():
    kw = dict(in_channels=4, image_size=32, num_classes=1000, class_cond=True, learn_sigma=True,
              patch_size=2, hidden_size=1152, depth=28, num_heads=16)  # fmt: skip
    with torch.device("meta"):
        shared = sum(p.numel() for p in DiT(**kw).parameters())
        per_block = sum(p.numel() for p in DiT(**kw, conditioning="per_block").parameters())
        theirs = diffusers.DiTTransformer2DModel(**dit_config(kw))
        count = sum(p.numel() for p in theirs.parameters())
        emb = sum(p.numel() for p in theirs.transformer_blocks[0].norm1.emb.parameters())
    assert per_block == count  # diffusers' layout: each block its own time and class embedding
    assert shared == count - 27 * emb  # the paper's: one embedding
    # the paper's 675,129,632 (Peebles & Xie, Table 4: 675M) counts the frozen 256x1152 position
    # table as a parameter; ours is a buffer
    assert shared + 256 * 1152 == 675_129_632


def test_presets_are_table_1():
    from ddpm.cli.preflight import plain  # noqa: F401  (the configs compose)

    for name, (depth, width, heads) in {"s_2": PRESETS["S"], "b_4": PRESETS["B"],
                                        "l_2": PRESETS["L"], "xl_2": PRESETS["XL"]}.items():  # fmt: skip
        net = compose("train", f"network=dit_{name}")["network"]
        assert (net["depth"], net["hidden_size"], net["num_heads"]) == (depth, width, heads)
        assert net["patch_size"] == int(name[-1])


def test_zero_initialisation_makes_the_network_output_zero_and_blocks_the_identity():
    net = DiT(**SMALL, num_classes=10, class_cond=True, learn_sigma=True).eval()
    x = torch.randn(2, 3, 8, 8)
    assert net(x, torch.tensor([5.0, 9.0]), torch.tensor([1, -1])).abs().max() == 0
    h = torch.randn(2, 16, 64)
    torch.testing.assert_close(net.blocks[0](h, torch.randn(2, 64)), h)


def test_embeddings_are_the_formulas():
    pos = sincos_2d(8, 3)  # token (r, c) = r * 3 + c: [sin/cos(c w), sin/cos(r w)], w = 1, 1/100
    r, c = 2, 1
    w = torch.tensor([1.0, 0.01])
    expect = torch.cat([torch.sin(c * w), torch.cos(c * w), torch.sin(r * w), torch.cos(r * w)])
    torch.testing.assert_close(pos[r * 3 + c], expect)
    f = dit_time_features(torch.tensor([2.0]), 8)  # w_i = 10000^(-i/3), cos first
    w = 10000 ** (-torch.arange(4) / 3)
    torch.testing.assert_close(f[0], torch.cat([torch.cos(2 * w), torch.sin(2 * w)]))


def test_bf16_forward_is_close_to_float32():
    net = far_from_init(DiT(**SMALL, num_classes=10, class_cond=True), 0.05)
    x, t, y = torch.randn(4, 3, 8, 8), torch.rand(4) * 999, torch.tensor([0, 1, 2, -1])
    with torch.no_grad():
        ref = net(x, t, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, t, y).float()
    assert (low - ref).abs().max() < 0.05 * ref.abs().max()


def test_a_patch_size_that_does_not_divide_the_image_is_one_line():
    with pytest.raises(ConfigError, match=r"patch_size=3 does not divide the input size 8"):
        parse_train(compose("train", "network=dit_s_2", "network.patch_size=3"))
    proc = run_cli("train.py", "network=dit_s_4", "network.patch_size=3", check=False)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "patch_size=3 does not divide the input size 8" in proc.stderr
    assert "Traceback" not in proc.stderr


TINY = ("network=dit_s_2", "network.hidden_size=32", "network.depth=2", "network.num_heads=2")


@pytest.mark.parametrize("path", ["ddpm", "vp", "edm", "flow"])
def test_dit_trains_and_samples_with_guidance_on_every_path(path, tmp_path):
    from conftest import QUIET
    from ddpm.evaluation import sample
    from ddpm.training import train

    run = tmp_path / "run"
    train(compose("train", *TINY, f"path={path}", "trainer.max_steps=4", "trainer.limit_val_batches=0",
                  "callbacks.sample_grid.every_n_steps=0", "callbacks.checkpoint.every_n_train_steps=4",
                  *QUIET, run_dir=run))  # fmt: skip
    out = sample(compose("sample", f"ckpt={run}/checkpoints/last.ckpt", "num_samples=4",
                         "sampler=heun", "sampler.steps=3", "guidance_scale=2.0",
                         run_dir=tmp_path / "s"))  # fmt: skip
    import numpy as np

    images = np.load(out / "samples.npz")["images"]
    assert images.shape == (4, 8, 8, 1)
    if path == "ddpm":  # the exported transformer is the EMA network, to 1e-5
        from ddpm.evaluation.loading import load_model
        from ddpm.export import export_diffusers

        export_diffusers(run / "checkpoints" / "last.ckpt", tmp_path / "exp")
        theirs = diffusers.DiTTransformer2DModel.from_pretrained(tmp_path / "exp" / "transformer")
        assert (tmp_path / "exp" / "scheduler" / "scheduler_config.json").is_file()
        net = far_from_init(load_model(run / "checkpoints" / "last.ckpt").net)
        theirs.load_state_dict(to_diffusers(net, net_kwargs(run)).state_dict())
        x, t, y = torch.randn(3, 1, 8, 8), torch.tensor([1.0, 50.0, 900.0]), torch.tensor([0, 5, 9])
        with torch.no_grad():
            torch.testing.assert_close(theirs.eval()(x, t, class_labels=y).sample, net(x, t, y),
                                       atol=1e-5, rtol=1e-5)  # fmt: skip


def net_kwargs(run):
    config = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    network = dict(config["run_config"]["network"])
    network.pop("_target_")
    return network


def test_the_imagenet_presets_are_the_papers_recipes_and_name_what_to_provide(tmp_path):
    dit = compose("train", "experiment=imagenet256_dit_xl")
    assert dit["network"]["_target_"] == "ddpm.nets.DiT" and dit["network"]["depth"] == 28
    assert dit["latent"]["_target_"] == "ddpm.latents.DiffusersVAE"
    model = dit["model"]
    assert model["optimizer"]["_target_"] == "torch.optim.AdamW" and model["lr"] == 1e-4
    assert model["optimizer"]["weight_decay"] == 0.0 and model["ema_decay"] == 0.9999
    assert (model["variance"], model["loss"], model["conditional"]) == (
        "learned_range",
        "hybrid",
        True,
    )
    assert dit["dataset"]["batch_size"] == 256 and dit["schedule"]["name"] == "linear"
    sit = compose("train", "experiment=imagenet256_sit_repa")
    assert sit["path"]["_target_"] == "ddpm.paths.flow.FlowPath"
    assert sit["model"]["repa"] | {} == {**sit["model"]["repa"], "encoder": "vit_base_patch14_dinov2.lvd142m",
                                         "depth": 8, "weight": 0.5}  # fmt: skip
    with pytest.raises(ConfigError, match="needs latent.path=DIR"):
        parse_train(dit)
    with pytest.raises(ConfigError, match="needs model.repa.weights=FILE"):
        parse_train(sit)


@pytest.mark.slow
def test_a_compiled_dit_trains_and_its_checkpoint_samples_uncompiled(tmp_path):
    from conftest import QUIET
    from ddpm.evaluation import sample
    from ddpm.training import train

    run = tmp_path / "run"
    train(compose("train", *TINY, "model.compile=true", "trainer.max_steps=3", "trainer.limit_val_batches=0",
                  "callbacks.sample_grid.every_n_steps=0", *QUIET, run_dir=run))  # fmt: skip
    out = sample(compose("sample", f"ckpt={run}/checkpoints/last.ckpt", "num_samples=2",
                         "sampler=euler", "sampler.steps=2", run_dir=tmp_path / "s"))  # fmt: skip
    assert (out / "samples.npz").is_file()
