"""A network that turns to NaN after a number of training forwards: injects a diverging run
through the config system (``network._target_=nan_net.NaNAfter``), as a user network could."""

import torch

from ddpm.nets import MLP


class NaNAfter(MLP):
    def __init__(self, nan_after: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_after, self.calls = nan_after, 0

    def forward(self, x, k, y=None):
        out = super().forward(x, k, y)
        if self.training:
            self.calls += 1
            if self.calls > self.nan_after:
                return out * torch.nan
        return out
