"""Flow matching / rectified flow with the linear interpolant (Lipman et al. 2023, "Flow matching
for generative modeling"; Liu et al. 2023, "Flow straight and fast"):
``x_t = (1 - t) x_0 + t eps`` for ``t`` in [0, 1], the network regressing the velocity
``dx_t / dt = eps - x_0`` (``prediction: velocity``; ``x0`` and ``eps`` are the same model with
another target, as SiT separates them, Ma et al. 2024).

Training times (``time_sampling``): ``uniform``, or ``logit_normal`` (Esser et al. 2024, SD3,
eq. 19: ``t = sigmoid(m + s z)``), then the resolution shift of SD3 sec. 5.3.2,
``t -> shift t / (1 + (shift - 1) t)`` (``shift: 1`` is none). ``coupling: ot`` pairs data and
noise within each batch by the exact optimal assignment (Tong et al. 2024, OT-CFM; Pooladian et
al. 2023): :func:`ddpm.paths.coupling.ot_pairs`.

In noise levels ``level = t / (1 - t)``: the flow's Euler step in ``t`` is the Euler (= DDIM) step
in ``level`` on the ``x / (1 - t)`` scale, exactly, so every sampler of ours runs on it. Sampling
runs from ``t_max = 0.999`` (level 999; ``t = 1`` has no finite level) to ``t_min = 0.002``; the
prior is ``N(0, I)`` at ``t_max``. The network receives ``c_noise = 1000 t`` (the scale of the
discrete chain's indices, as diffusers' ``FlowMatchEulerDiscreteScheduler`` feeds it).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor

from ddpm.checks import PositiveFloat, Range
from ddpm.paths.base import Path
from ddpm.paths.coupling import ot_pairs

TimeSampling = Literal["uniform", "logit_normal"]
Coupling = Literal["independent", "ot"]
SCALE = 1000.0  # c_noise = 1000 t


class FlowPath(Path):
    """The linear interpolant (``conf/path/flow.yaml``)."""

    name: ClassVar[str] = "flow"
    predictions: ClassVar[tuple[str, ...]] = ("velocity", "x0", "eps")
    training_only: ClassVar[tuple[str, ...]] = ("time_sampling", "m", "s", "shift", "coupling")

    def __init__(
        self,
        time_sampling: TimeSampling = "uniform",
        m: float = 0.0,
        s: PositiveFloat = 1.0,
        shift: PositiveFloat = 1.0,
        coupling: Coupling = "independent",
        t_min: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.002,
        t_max: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.999,
    ) -> None:
        self.time_sampling, self.m, self.s, self.shift = time_sampling, m, s, shift
        self.coupling, self.t_min, self.t_max = coupling, t_min, t_max
        self.check_range()

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def d_alpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def time_at(self, level: Tensor) -> Tensor:
        level = torch.as_tensor(level, dtype=torch.float64)
        return level / (1.0 + level)

    def time_fraction(self, t: Tensor) -> Tensor:
        return t.clamp(0, 1)

    def sample_times(self, n: int, generator, device) -> Tensor:
        if self.time_sampling == "uniform":
            t = torch.rand(n, generator=generator, device=device)
        else:
            t = torch.sigmoid(self.m + self.s * torch.randn(n, generator=generator, device=device))
        return self.shift * t / (1.0 + (self.shift - 1.0) * t)

    def couple(self, x0: Tensor, noise: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.coupling == "independent":
            return noise
        return noise[ot_pairs(x0, noise, labels).to(noise.device)]

    def c_noise(self, t: Tensor) -> Tensor:
        return SCALE * t.float()

    def time_from_c_noise(self, c: Tensor) -> Tensor:
        return c.double() / SCALE
