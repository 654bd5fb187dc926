"""A small CNN classifier of grey digit images: the feature space of the digits' FID and, with
another seed, a REPA target encoder that runs on a CPU."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class DigitClassifier(nn.Module):
    """A small CNN for grey digit images of any size: two conv blocks, global pooling, a 128-d
    feature layer, and class logits."""

    def __init__(self, num_classes: int = 10, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.feature = nn.Sequential(nn.Flatten(), nn.Linear(512, 128), nn.ReLU())
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.feature(self.conv(x))
        return f, self.head(f)

    def patch_features(self, x: Tensor) -> Tensor:
        """The last convolution's map ``(N, 128, H/2, W/2)``, before the global pooling."""
        return self.conv[:-1](x)


def train_classifier(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 128,
    progress=None,
) -> DigitClassifier:
    """Fit :class:`DigitClassifier` on ``(x, y)`` with a fixed seed (deterministic on the CPU;
    the global random state is left as it was)."""
    with torch.random.fork_rng():
        return _train(x, y, num_classes, epochs, seed, batch_size, progress)


def _train(x, y, num_classes, epochs, seed, batch_size, progress) -> DigitClassifier:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier(num_classes, x.shape[1])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in progress(range(epochs)) if progress else range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            # light augmentation: one-pixel shifts, so the features are robust to sample jitter
            xb = torch.roll(
                x[idx], shifts=tuple(torch.randint(-1, 2, (2,), generator=g).tolist()), dims=(2, 3)
            )
            loss = F.cross_entropy(model(xb)[1], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
