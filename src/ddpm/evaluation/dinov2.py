"""DINOv2 features for FD-DINOv2 (Stein et al. 2023, "Exposing flaws of generative model
evaluation metrics"; the headline metric of EDM2): the class token of DINOv2 ViT-L/14 (1024-d)
for images resized to 224 x 224 (bicubic, antialiased) and normalised with ImageNet statistics.

The network is timm's port of DINOv2, built from a weights file the user provides: the official
``dinov2_vitl14_pretrain.pth`` (facebookresearch/dinov2; timm converts its keys) or timm's own
``model.safetensors`` of ``vit_large_patch14_dinov2.lvd142m``. Nothing is downloaded. The one
numerical difference from the official code: timm interpolates the 37 x 37 position embedding to
the 16 x 16 patch grid with antialiasing, the official code without; FD-DINOv2 values therefore
agree with published ones to the precision of that interpolation, not to the bit.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from ddpm.config.protocol import missing_dinov2_weights
from ddpm.evaluation.extractors import FeatureExtractor
from ddpm.figures import to_uint8

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DINOv2Extractor(FeatureExtractor):
    """``arch`` and ``arch_kwargs`` name the timm model (tests build small random ones)."""

    def __init__(
        self,
        weights_path: str | Path | None,
        device="cpu",
        batch_size: int = 64,
        arch: str = "vit_large_patch14_dinov2",
        image_size: int = 224,
        **arch_kwargs,
    ) -> None:
        if not weights_path or not Path(weights_path).expanduser().is_file():
            raise FileNotFoundError(missing_dinov2_weights(weights_path))
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn

        from ddpm.repa.encoders import load_state

        model = timm.create_model(
            arch, pretrained=False, num_classes=0, dynamic_img_size=True, **arch_kwargs
        )
        try:
            state = checkpoint_filter_fn(load_state(Path(weights_path).expanduser()), model)
            model.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError, OSError, KeyError) as e:
            raise ValueError(
                f"fid.dinov2_weights={weights_path} are not weights of {arch}: "
                f"{str(e).splitlines()[0][:200]}"
            ) from None
        self.model = model.to(device).eval().requires_grad_(False)
        self.name = f"dinov2-{arch.removeprefix('vit_').removesuffix('_dinov2')}"
        self.device, self.batch_size, self.image_size = device, batch_size, image_size

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        mean = torch.tensor(IMAGENET_MEAN, device=self.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=self.device)[:, None, None]
        feats = []
        for chunk in x.split(self.batch_size):
            img = to_uint8(chunk).to(self.device).float()  # what a saved image would show
            if img.shape[1] == 1:
                img = img.repeat(1, 3, 1, 1)
            size = (self.image_size,) * 2
            img = F.interpolate(img, size=size, mode="bicubic", antialias=True) / 255
            feats.append(self.model((img - mean) / std).double().cpu())  # the class token
        width = int(self.model.num_features)
        return torch.cat(feats) if feats else torch.zeros(0, width, dtype=torch.float64)
