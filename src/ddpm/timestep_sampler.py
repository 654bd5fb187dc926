"""How training picks times: from a path's own distribution, and on the discrete chain uniformly
or by importance for the VLB objective."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

TimestepSampling = Literal["uniform", "importance"]


class TimeSampler:
    """Training times from a path's own distribution (its ``sample_times``), weight 1."""

    def __init__(self, path) -> None:
        self.path = path

    def sample(self, n: int, device, generator=None) -> tuple[Tensor, Tensor]:
        return self.path.sample_times(n, generator, device), torch.ones(n, device=device)

    def update(self, t: Tensor, losses: Tensor) -> None:
        pass


class UniformSampler:
    """``k ~ U{0..T-1}``, weight 1 (Ho et al. Algorithm 1)."""

    def __init__(self, num_timesteps: int) -> None:
        self.T = num_timesteps

    def sample(
        self, n: int, device, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        k = torch.randint(0, self.T, (n,), device=device, generator=generator)
        return k, torch.ones(n, device=device)

    def update(self, k: Tensor, losses: Tensor) -> None:
        pass


class ImportanceSampler(UniformSampler):
    """Nichol & Dhariwal (2021) eq. 18: ``p_t ∝ sqrt(E[L_t^2])`` from the last ``history`` losses
    of each step, uniform until every step has that many; the loss is reweighted by ``1/(T p_t)``
    so its expectation is unchanged. Mixed with 1e-3 uniform mass as in their code's spirit."""

    def __init__(self, num_timesteps: int, history: int = 10, uniform_prob: float = 1e-3) -> None:
        super().__init__(num_timesteps)
        self.history, self.uniform_prob = history, uniform_prob
        self.losses = torch.zeros(num_timesteps, history, dtype=torch.float64)
        self.counts = torch.zeros(num_timesteps, dtype=torch.long)

    def probs(self) -> Tensor:
        if bool((self.counts < self.history).any()):
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        w = (self.losses**2).mean(1).sqrt()
        p = w / w.sum()
        return p * (1 - self.uniform_prob) + self.uniform_prob / self.T

    def sample(
        self, n: int, device, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        p = self.probs()
        k = torch.multinomial(p, n, replacement=True)
        weights = 1.0 / (self.T * p[k])
        return k.to(device), weights.to(device=device, dtype=torch.float32)

    def update(self, k: Tensor, losses: Tensor) -> None:
        for kk, loss in zip(k.tolist(), losses.detach().double().cpu().tolist()):
            if self.counts[kk] == self.history:
                self.losses[kk, :-1] = self.losses[kk, 1:].clone()
                self.losses[kk, -1] = loss
            else:
                self.losses[kk, self.counts[kk]] = loss
                self.counts[kk] += 1

    def state_dict(self) -> dict:
        return {"losses": self.losses, "counts": self.counts}

    def load_state_dict(self, state: dict) -> None:
        self.losses, self.counts = state["losses"].clone(), state["counts"].clone()
