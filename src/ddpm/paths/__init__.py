"""Formulations ("paths"): one module each, ``conf/path/NAME.yaml`` naming the class.

========= ================================================================ =====================
path      forward process; training levels; network target                 paper
========= ================================================================ =====================
ddpm      the seed's discrete VP chain at its trained indices; k ~ U{0..T-1};  Ho et al. 2020
          eps / x0 / v / mu, the VLB losses, Algorithm 1's variances
vp        continuous VP, linear or cosine alpha_bar(t); t ~ U(1e-5, 1);      Song et al. 2021
          eps / x0 / v / velocity
edm       x_0 + sigma eps; ln sigma ~ N(-1.2, 1.2^2); preconditioned F       Karras et al. 2022
          (Table 1: edm, vp or ve columns)
flow      (1 - t) x_0 + t eps; t uniform or logit-normal (+ shift), optional Lipman et al. 2023;
          OT coupling; velocity eps - x_0 / x0 / eps                       Esser et al. 2024
========= ================================================================ =====================

Every path is the same process in noise levels ``sigma / alpha`` on the ``x / alpha`` scale
(:mod:`ddpm.paths.base`), which is what samplers see.
"""

from ddpm.paths.base import Path, as_levels, broadcast
from ddpm.paths.ddpm import DDPMPath
from ddpm.paths.edm import EDMPath
from ddpm.paths.flow import FlowPath
from ddpm.paths.vp import VPPath
from ddpm.schedule import Schedule


def as_path(path: Path | Schedule) -> Path:
    """A path, or a :class:`~ddpm.schedule.Schedule` taken as its discrete chain."""
    return DDPMPath(path) if isinstance(path, Schedule) else path


__all__ = [
    "DDPMPath",
    "EDMPath",
    "FlowPath",
    "Path",
    "VPPath",
    "as_levels",
    "as_path",
    "broadcast",
]
