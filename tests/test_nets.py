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
def test_shapes_options_and_gradients_reach_every_weight(cls, kw, shape, learn_sigma, class_cond):
    """Every weight gets a non-zero gradient. Zero-initialised output layers (Ho et al. start
    each block as the identity) would hide the earlier layers' gradients, so the weights are
    re-drawn first; rows of the class table whose labels are not in the batch get none."""
    torch.manual_seed(0)
    net = cls(**kw, learn_sigma=learn_sigma, num_classes=10, class_cond=class_cond)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    x = torch.randn(shape)
    y = torch.tensor([0, 9, -1]) if class_cond else None
    out = (
        net(x, torch.tensor([0, 10, 999]), y) if class_cond else net(x, torch.tensor([0, 10, 999]))
    )
    assert out.shape == (shape[0], shape[1] * (2 if learn_sigma else 1), *shape[2:])
    out.pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        if name.endswith("class_embed.table.weight"):
            used = torch.tensor([0, 9, 10])  # labels 0 and 9, and -1 -> the null row 10
            assert (p.grad[used].abs().sum(1) > 0).all() and p.grad[1:9].abs().sum() == 0
        else:
            assert p.grad.abs().sum() > 0, name
    assert (net.class_embed is not None) == class_cond


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


@pytest.mark.parametrize("h,w", [(4, 6), (5, 3), (1, 7)])
def test_attention_is_softmax_of_scaled_dot_products_over_positions(h, w):
    """AttnBlock against the definition (Vaswani et al. eq. 1, one head of the full width, Ho et
    al.'s residual form): ``x + W_o softmax(Q K^T / sqrt(c)) V`` over the ``h w`` positions of
    the group-normalised input, with ``Q, K, V = W_{q,k,v} xn`` (the 1x1 convolutions' weights)."""
    from ddpm.nets.unet import AttnBlock

    torch.manual_seed(0)
    c = 8
    block = AttnBlock(c).double()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=1.0)  # sharp attention: a swapped q/k or a mean would show
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    xn = block.norm(x).flatten(2)  # (b, c, hw)
    wq, wk, wv = block.qkv.weight[:, :, 0, 0].chunk(3)
    bq, bk, bv = block.qkv.bias.chunk(3)
    q, k, v = (torch.einsum("oc,bcn->bno", W, xn) + b for W, b in [(wq, bq), (wk, bk), (wv, bv)])
    attn = torch.softmax(q @ k.transpose(1, 2) / c**0.5, dim=-1)  # (b, hw, hw)
    out = torch.einsum("oc,bnc->bon", block.proj.weight[:, :, 0, 0], attn @ v)
    expected = x + (out + block.proj.bias[:, None]).reshape(2, c, h, w)
    assert attn.max() > 3 / (h * w)  # far from uniform, so a mean over positions would fail
    assert torch.allclose(block(x), expected, atol=1e-10)
