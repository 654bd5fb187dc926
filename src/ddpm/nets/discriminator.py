"""A discriminator ``D(x, y=None) -> logit`` for the adversarial term of few-step models
(``model.adversarial``): a small convolutional network for images, an MLP for points, with the
class entering by projection (Miyato & Koyama 2018, eq. 3: ``logit = psi(h) + embed(y) . h``)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ddpm.checks import ConfigError, PositiveInt


class Discriminator(nn.Module):
    """``D(x, y)`` for data of ``shape`` (``(C, H, W)`` or ``(D,)``).

    * images: a 3x3 convolution to ``channels[0]``, then one stride-2 3x3 convolution per further
      width (LeakyReLU 0.2 between), summed over positions;
    * points: linear layers of the ``channels`` widths;
    * ``num_classes``: the label ``-1`` (dropped labels) is the null class, with no projection.
    """

    def __init__(
        self,
        shape: Sequence[int],
        num_classes: int | None = None,
        channels: Sequence[PositiveInt] = (64, 128, 256),
    ) -> None:
        super().__init__()
        widths = [int(c) for c in channels]
        if not widths:
            raise ConfigError(
                "model.discriminator.channels=[] is empty; give at least one width, e.g. [64, 128]"
            )
        act = nn.LeakyReLU(0.2)
        layers: list[nn.Module]
        if len(shape) == 3:
            layers = [nn.Conv2d(shape[0], widths[0], 3, padding=1), act]
            for a, b in zip(widths, widths[1:]):
                layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), act]
        else:
            layers = [nn.Linear(int(shape[0]), widths[0]), act]
            for a, b in zip(widths, widths[1:]):
                layers += [nn.Linear(a, b), act]
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(widths[-1], 1)
        self.embed = (
            nn.Embedding(num_classes + 1, widths[-1], padding_idx=0) if num_classes else None
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)
        if h.ndim == 4:
            h = h.sum((2, 3))
        logit = self.out(h).squeeze(1)
        if self.embed is not None and y is not None:
            logit = logit + (self.embed(y + 1) * h).sum(1)  # y = -1: the zero row
        return logit
