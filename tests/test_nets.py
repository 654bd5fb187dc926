"""Networks: shapes, options, errors. (Parameter count of the CIFAR-10 UNet: test_config.py.)"""

import pytest
import torch

from ddpm.nets import MLP, SimpleUNet, UNet
from ddpm.nets.embeddings import timestep_embedding


@pytest.mark.parametrize(
    "cls,kw,shape",
    [
        (
            UNet,
            dict(in_channels=1, image_size=8, ch=32, ch_mult=(1, 2), attn_resolutions=(4,)),
            (3, 1, 8, 8),
        ),
        (SimpleUNet, dict(in_channels=3, image_size=16, channels=(16, 32)), (3, 3, 16, 16)),
        (MLP, dict(dim=2, hidden=32), (3, 2)),
    ],
)
@pytest.mark.parametrize("learn_sigma", [False, True])
@pytest.mark.parametrize("class_cond", [False, True])
def test_shapes_options_and_gradients(cls, kw, shape, learn_sigma, class_cond):
    net = cls(**kw, learn_sigma=learn_sigma, num_classes=10, class_cond=class_cond)
    x = torch.randn(shape)
    y = torch.tensor([0, 9, -1]) if class_cond else None
    out = net(x, torch.tensor([0, 10, 999]), y)
    assert out.shape == (shape[0], shape[1] * (2 if learn_sigma else 1), *shape[2:])
    out.pow(2).mean().backward()
    assert (
        all(p.grad is not None for p in net.parameters() if p.requires_grad and p.ndim > 0)
        or class_cond
    )


def test_class_embedding_changes_the_output():
    net = MLP(dim=2, hidden=32, num_classes=3, class_cond=True)
    x, k = torch.randn(2, 2), torch.tensor([5, 5])
    assert not torch.allclose(net(x, k, torch.tensor([0, 0])), net(x, k, torch.tensor([1, 1])))
    assert torch.allclose(net(x, k, None), net(x, k, torch.tensor([-1, -1])))


def test_real_valued_timesteps_embed_smoothly():
    e = timestep_embedding(torch.tensor([10.0, 10.001, 500.0]), 64)
    assert (e[0] - e[1]).abs().max() < 1e-2 < (e[0] - e[2]).abs().max()


def test_indivisible_image_size_is_refused():
    with pytest.raises(ValueError, match="not divisible by 2\\^2"):
        UNet(in_channels=1, image_size=10, ch=32, ch_mult=(1, 2, 2))
