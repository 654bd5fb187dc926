"""``model=progressive_distill``: progressive distillation (Salimans & Ho 2022, Algorithm 2) of a
trained diffusion model (``model.teacher=CKPT``) into a student of fewer DDIM steps, round by
round (:mod:`ddpm.fewstep.distill`).

Round ``i`` (training steps ``i * round_steps`` to ``(i + 1) * round_steps``) distils a teacher
of ``steps / 2^i`` steps into a student of half as many; at the round's start the student's
weights become the teacher (the paper's ``theta <- eta``). The teacher is part of the module's
state, so every checkpoint (the preset writes one per round) resumes mid-round exactly. Sample a
student of ``N`` steps with ``sampler=ddim sampler.spacing=trailing sampler.steps=N``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor

from ddpm.checks import ConfigError, PositiveInt
from ddpm.fewstep.distill import student_levels, truncated_snr_weight, two_step_target
from ddpm.likelihood import mean_flat
from ddpm.paths import broadcast
from ddpm.random import step_generator
from ddpm.samplers import Denoiser
from ddpm.training.base import dropped_labels, with_labels
from ddpm.training.module import DiffusionModule


class ProgressiveDistillModule(DiffusionModule):
    """A diffusion module trained to match its teacher's two DDIM steps in one.

    * ``teacher``: a diffusion checkpoint of ours on a continuous path (same network and data);
      its EMA weights start the student and the first teacher.
    * ``steps`` (64): the first teacher's DDIM steps; ``rounds`` (6): halvings, so the last
      student takes ``steps / 2^rounds``; ``round_steps``: training steps per round (a run
      longer than ``rounds * round_steps`` keeps training the last student; a checkpoint states
      its ``student_steps``).
    """

    start_key = "teacher"

    def __init__(
        self,
        *args,
        teacher: str | None = None,
        steps: PositiveInt = 64,
        rounds: PositiveInt = 6,
        round_steps: PositiveInt = 300,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.path.discrete:
            raise ConfigError(
                "model=progressive_distill halves step lists in continuous time; path=ddpm's "
                "levels are its trained indices: distil a path=vp, edm or flow model"
            )
        self.teacher = copy.deepcopy(self.net).requires_grad_(False).eval()
        self.teacher_round = 0

    @classmethod
    def check_config(cls, options: dict, network_cls=None) -> None:
        super().check_config(options, network_cls)
        if "teacher" in options and not options["teacher"]:  # (the module checks a subset)
            raise ConfigError(
                "model=progressive_distill needs model.teacher=CKPT (a diffusion checkpoint of "
                "ours whose steps it halves)"
            )
        steps, rounds = options.get("steps", 64), options.get("rounds", 6)
        if steps % 2**rounds:
            odd = next(i for i in range(rounds) if (steps // 2**i) % 2)
            raise ConfigError(
                f"model.steps={steps} cannot be halved model.rounds={rounds} times (round {odd} "
                f"would halve an odd {steps // 2**odd} steps); use a multiple of {2**rounds}, "
                f"e.g. model.steps={2**rounds * max(1, round(steps / 2**rounds))}"
            )

    def start_from(self, state: Mapping[str, Tensor]) -> None:
        super().start_from(state)
        self.teacher.load_state_dict(state)

    @property
    def round(self) -> int:
        return min(self.global_step // self.hparams.round_steps, self.hparams.rounds - 1)

    def student_steps(self, round: int | None = None) -> int:
        return self.hparams.steps // 2 ** ((self.round if round is None else round) + 1)

    def denoiser(self, net, labels: Tensor | None) -> Denoiser:
        return Denoiser(with_labels(net, labels), self.path, self.prediction)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        if self.teacher_round != self.round:  # a new round: the student teaches, and the
            state = self.net.state_dict()  # averages start over with the new student
            self.start_from(state)
            self._ema_updates = 0
            self.teacher_round = self.round
        x0, y = batch[:2]
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        h, n = self.hparams, x0.shape[0]
        levels = student_levels(self.path, 2 * self.student_steps())
        i = 2 * torch.randint(0, self.student_steps(), (n,), generator=g, device=self.device)
        i = i.cpu()
        s, mid, s_next = levels[i], levels[i + 1], levels[i + 2]
        noise = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
        labels = dropped_labels(y, h.cond_drop_prob, g) if h.conditional else None
        x = x0 + broadcast(s, x0) * noise
        with torch.no_grad():
            teacher = self.denoiser(self.teacher, labels)
            target = two_step_target(lambda x, lv: teacher(x, lv).x0, x, s, mid, s_next)
        student = self.denoiser(self.net, labels)(x, s).x0
        loss = (mean_flat((student - target) ** 2) * truncated_snr_weight(s).to(x0)).mean()
        self.check_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log_step()
        if self.logs_this_step():
            self.log("train/student_steps", float(self.student_steps()))
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["teacher_round"] = self.teacher_round
        checkpoint["student_steps"] = self.student_steps(self.teacher_round)  # the round trained

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.teacher_round = int(checkpoint.get("teacher_round", 0))
