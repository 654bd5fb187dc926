"""How long ``protocol=edm`` (3 x 50,000 samples and their Inception features) and ``protocol=edm2``
(also DINOv2 ViT-L/14 features) take on this machine, estimated from measured rates.

    python benchmarks/protocol_throughput.py [--device cuda] [--batch 256] [--nfe 35] [--dinov2]

The network is the CIFAR-10 UNet of Ho et al. (35.7 M parameters; weights do not change the
cost), timed for ``--calls`` network calls on a batch of ``--batch`` 32 x 32 images; Inception
(float64, as evaluate.py runs it) and DINOv2 (float32) with random weights of the right shape.
"""

from __future__ import annotations

import argparse
import time

import torch


def timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def inception(device: str, batch: int):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInit(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True):
            return None

    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pth") as f:
        torch.save({}, f.name)
        model = RandomInit(
            "x", ["2048", "logits_unbiased"], feature_extractor_weights_path=f.name,
            feature_extractor_internal_dtype="float64",
        ).to(device)  # fmt: skip
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    return lambda: model(images)


def dinov2(device: str, batch: int):
    import timm
    from torch.nn import functional as F

    model = timm.create_model("vit_large_patch14_dinov2", num_classes=0, dynamic_img_size=True)
    model = model.to(device).eval()
    images = torch.rand(batch, 3, 32, 32, device=device)

    @torch.no_grad()
    def run():
        return model(F.interpolate(images, size=(224, 224), mode="bicubic", antialias=True))

    return run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256 if torch.cuda.is_available() else 32)
    p.add_argument("--nfe", type=int, default=35, help="network calls per sample (EDM Heun: 35)")
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--samples", type=int, default=50_000)
    p.add_argument("--dinov2", action="store_true", help="also time DINOv2 ViT-L/14 (edm2)")
    a = p.parse_args()
    from ddpm.nets import UNet

    net = UNet(in_channels=3, image_size=32, ch=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,))
    net = net.to(a.device).eval()
    x, t = torch.randn(a.batch, 3, 32, 32, device=a.device), torch.full((a.batch,), 500.0)

    @torch.no_grad()
    def call():
        return net(x, t.to(a.device))

    per_call = timed(call, a.calls, a.device)
    per_feature_batch = timed(inception(a.device, a.batch), a.calls, a.device)
    sample_rate = a.batch / (per_call * a.nfe)
    feature_rate = a.batch / per_feature_batch
    n = 3 * a.samples
    total = n / sample_rate + (n + a.samples) / feature_rate  # + the training set's features once
    print(f"device {a.device}, batch {a.batch}: {sample_rate:.1f} samples/s at {a.nfe} calls; "
          f"Inception {feature_rate:.1f} images/s")  # fmt: skip
    print(f"protocol=edm (3 x {a.samples} samples + features, reference once): "
          f"{total / 3600:.2f} h estimated")  # fmt: skip
    if a.dinov2:
        dino_rate = a.batch / timed(dinov2(a.device, a.batch), a.calls, a.device)
        print(f"DINOv2 ViT-L/14 {dino_rate:.1f} images/s; protocol=edm2: "
              f"{(total + (n + a.samples) / dino_rate) / 3600:.2f} h estimated")  # fmt: skip


if __name__ == "__main__":
    main()
