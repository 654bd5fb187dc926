"""A discriminator on a frozen network's features (Sauer et al. 2024, "Fast high-resolution image
synthesis with latent adversarial diffusion distillation", LADD, sec. 3.2): the judged images,
re-noised by the caller, go through a frozen copy of a trained denoiser up to the deepest of its
tapped blocks; a small head on each tapped block's output gives a logit, with the class by
projection (Miyato & Koyama 2018, eq. 3), and the logits are summed.

The features of a network trained to denoise are what tells a sample from the data at that noise
level; re-noising lets the level choose between global structure (high noise) and detail (low).
The class knows nothing of noise: it takes the network's own inputs ``(x_in, c_noise)``, and
``renoise`` tells the caller how to draw the levels (``ln sigma ~ N(P_mean, P_std^2)``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ddpm.checks import ConfigError, PositiveInt


class _Enough(Exception):
    """Raised by the deepest tap: the rest of the network is not run."""


class FeatureDiscriminator(nn.Module):
    """``D(x_in, y, c_noise)`` on the outputs of ``backbone``'s blocks named ``taps`` (names of
    ``backbone.named_modules()``, each a module the forward calls, in the order it calls them).

    * ``backbone``: the frozen network (a copy the caller fills with trained weights);
    * ``shape``, ``num_classes``: the data's (the label ``-1`` is the null class, no projection);
    * ``width``: each head's channels (two 3x3 convolutions, LeakyReLU 0.2, averaged over
      positions, then a linear logit);
    * ``P_mean``, ``P_std``: the re-noising levels the caller draws (``renoise``); the default
      is EDM's training distribution, where the backbone's features were learnt.
    """

    def __init__(
        self,
        shape: Sequence[int],
        num_classes: int | None = None,
        *,
        backbone: nn.Module,
        taps: Sequence[str] = ("down.1.0", "down.4.1", "mid.2"),
        width: PositiveInt = 64,
        P_mean: float = -1.2,
        P_std: float = 1.2,
    ) -> None:
        super().__init__()
        if not taps:
            raise ConfigError("model.discriminator.taps=[] is empty; name at least one block")
        names = dict(backbone.named_modules())
        if unknown := [t for t in taps if t not in names]:
            known = ", ".join(n for n in names if n)[:300]
            raise ConfigError(
                f"model.discriminator.taps={list(unknown)}: no such block of "
                f"{type(backbone).__name__}; its blocks: {known}..."
            )
        self.backbone = backbone.requires_grad_(False).eval()
        self.taps = [str(t) for t in taps]
        self.tapped = [names[t] for t in self.taps]  # (a plain list: they are the backbone's)
        self.renoise = (float(P_mean), float(P_std))
        with torch.no_grad():
            probe = self.features(torch.zeros(1, *shape), torch.zeros(1), None)
        if len(probe) != len(self.taps) or any(f.ndim not in (2, 4) for f in probe):
            raise ConfigError(
                f"model.discriminator.taps={self.taps}: each must be a block the forward calls "
                f"once, with an output of shape (N, C, H, W) or (N, C)"
            )
        act = nn.LeakyReLU(0.2)
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(f.shape[1], width, 3, padding=1), act,
                nn.Conv2d(width, width, 3, padding=1), act,
            ) if f.ndim == 4 else nn.Sequential(nn.Linear(f.shape[1], width), act)
            for f in probe
        )  # fmt: skip
        self.outs = nn.ModuleList(nn.Linear(width, 1) for _ in probe)
        self.embeds = (
            nn.ModuleList(nn.Embedding(num_classes + 1, width, padding_idx=0) for _ in probe)
            if num_classes
            else None
        )

    def train(self, mode: bool = True) -> FeatureDiscriminator:
        super().train(mode)
        self.backbone.eval()  # frozen: its dropout stays off
        return self

    def features(self, x_in: Tensor, c_noise: Tensor, y: Tensor | None) -> list[Tensor]:
        """The tapped blocks' outputs, the backbone run no further than the deepest."""
        out: list[Tensor] = []

        def keep(module: nn.Module, inputs: object, output: Tensor) -> None:
            out.append(output)
            if len(out) == len(self.taps):
                raise _Enough

        hooks = [block.register_forward_hook(keep) for block in self.tapped]
        try:
            self.backbone(x_in, c_noise) if y is None else self.backbone(x_in, c_noise, y)
        except _Enough:
            pass
        finally:
            for hook in hooks:
                hook.remove()
        return out

    def forward(self, x_in: Tensor, y: Tensor | None = None, c_noise: Tensor | None = None):
        if c_noise is None:
            raise TypeError("FeatureDiscriminator judges re-noised inputs: pass c_noise")
        logit: Tensor | float = 0.0
        for i, h in enumerate(self.features(x_in, c_noise, y)):
            z = self.heads[i](h)
            z = z.mean((2, 3)) if z.ndim == 4 else z
            logit = logit + self.outs[i](z).squeeze(1)
            if self.embeds is not None and y is not None:
                logit = logit + (self.embeds[i](y + 1) * z).sum(1)  # y = -1: the zero row
        assert isinstance(logit, Tensor)
        return logit
