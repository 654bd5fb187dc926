"""DMD's term on ``model=consistency`` (``model.dmd``; Yin et al. 2024, :mod:`ddpm.fewstep.
distribution_matching`): the two denoisers of its gradient, kept beside the model.

``real`` holds a trained diffusion model's weights (``model.teacher``'s EMA weights) and stays
frozen; ``fake`` starts from the same weights and is trained beside the model with EDM's denoising
loss on the model's judged outputs, so it follows their distribution (DMD sec. 3.2; DMD2, Yin et
al. 2024b, trains it the same way). Both are evaluated as EDM denoisers (Karras et al. 2022,
Table 1), not with the consistency parametrisation, at the judged outputs re-noised to ``ln sigma
~ N(P_mean, P_std^2)`` (EDM's training levels by default, where the teacher learnt; on the digits
lower levels, a median of 0.09, give the same two-call figure).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ddpm.fewstep.adversarial import adaptive_weight
from ddpm.fewstep.distribution_matching import dmd_gradient, dmd_loss
from ddpm.paths import broadcast
from ddpm.paths.edm import EDMPath
from ddpm.training.base import denoised


class ScorePair(nn.Module):
    """``real`` (frozen) and ``fake`` (trained) copies of ``net``, denoisers on ``path`` with
    EDM's parametrisation (a consistency run's :meth:`ConsistencyPath.diffusion`), and the levels
    ``(P_mean, P_std)`` the term re-noises at."""

    def __init__(self, net: nn.Module, path: EDMPath, prediction: str, levels) -> None:
        super().__init__()
        self.real = copy.deepcopy(net).requires_grad_(False).eval()
        self.fake = copy.deepcopy(net)
        self.edm = path
        self.prediction, self.levels = prediction, (float(levels[0]), float(levels[1]))

    def train(self, mode: bool = True) -> ScorePair:
        super().train(mode)
        self.real.eval()  # frozen: no dropout
        return self

    def start(self, state) -> None:
        """Both denoisers from a trained diffusion model's weights."""
        self.real.load_state_dict(state)
        self.fake.load_state_dict(state)

    def denoise(self, net: nn.Module, x: Tensor, sigma: Tensor, labels: Tensor | None) -> Tensor:
        """EDM's ``D(x; sigma)`` of ``net``."""
        return denoised(net, self.edm, x, sigma, labels, self.prediction)

    def forward(
        self, judged: Tensor, labels: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The per-example DMD loss on ``judged`` (its gradient on them: :func:`dmd_gradient`,
        also returned) and the fake denoiser's loss on them detached (EDM's weighted denoising
        loss at levels of its own draw). The gradient's two denoisers run without dropout."""
        mean, std = self.levels
        n, x = judged.shape[0], judged.detach()

        def draw() -> tuple[Tensor, Tensor]:
            sigma = (torch.randn(n, generator=generator, device=x.device) * std + mean).exp()
            return sigma, torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

        sigma, eps = draw()
        x_sigma = x + broadcast(sigma, x) * eps
        was = self.fake.training
        with torch.no_grad():
            d_real = self.denoise(self.real, x_sigma, sigma, labels)
            self.fake.eval()
            d_fake = self.denoise(self.fake, x_sigma, sigma, labels)
            self.fake.train(was)
            gradient = dmd_gradient(x, d_fake, d_real)
        sigma, eps = draw()
        d = self.denoise(self.fake, x + broadcast(sigma, x) * eps, sigma, labels)
        fake_loss = self.edm.loss_weight(sigma) * (d - x).pow(2).flatten(1).mean(1)
        return dmd_loss(judged, gradient), fake_loss, gradient

    def term(
        self,
        judged: Tensor,
        labels: Tensor | None,
        generator: torch.Generator,
        weight: float,
        main_grad: Tensor,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """DMD's loss on the judged outputs, its gradient scaled to ``weight`` times the main
        loss's (``main_grad``; the adversarial term's adaptive weight), plus the fake
        denoiser's loss; and both detached, to log."""
        loss, fake_loss, gradient = self(judged, labels, generator)
        scale = weight * adaptive_weight(main_grad, gradient)
        stats = {"dmd_weight": scale.detach(), "dmd_fake": fake_loss.mean().detach()}
        return scale * loss.mean() + fake_loss.mean(), stats
