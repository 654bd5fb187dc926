"""``model=consistency``: Easy Consistency Tuning (Geng et al. 2025, "Consistency models made
easy", ECT) of a trained EDM model (``model.init=CKPT``), or consistency training from scratch
(``model.init=null``), on the EDM path with the consistency parametrisation
(:mod:`ddpm.fewstep.consistency`).

Of ECT's and sCM's (Lu & Song 2025) choices this takes ECT's: discrete pairs ``(t, r)`` on the same
noise draw with a ``t - r`` that shrinks stage by stage, because it tunes an EDM checkpoint of ours
as it is (sCM needs the TrigFlow parametrisation and its network changes) and needs no JVP through
the network (a third of the cost per step on a CPU).

``model.adversarial > 0`` adds the adversarial term of consistency trajectory models (Kim et al.
2024, CTM; :mod:`ddpm.fewstep.adversarial`): a discriminator (``model.discriminator``, trained by
the same optimiser with the R1 penalty) judges the one-step outputs ``f(x_t, t)`` of the step's
own pairs against the batch's data, and the term's gradient on those outputs is scaled to the
consistency loss's (times ``adversarial``). A distribution-level term, it can take the model past
its teacher's ODE, which the consistency loss alone cannot. With ``model.adversarial_steps=N`` it
judges instead what the model is sampled with: the consistency sampler's outputs after 1 to ``N``
calls (:func:`~ddpm.fewstep.consistency.sampler_outputs`; DMD2's backward simulation). With
``model/discriminator=features`` the discriminator reads a frozen trained network's features at
re-noised images (:class:`ddpm.nets.FeatureDiscriminator`; LADD), that of ``model.teacher`` or
else of ``model.init``. ``model.dmd > 0`` adds DMD's distribution-matching term on the same judged
outputs (Yin et al. 2024; :mod:`ddpm.training.distribution_matching`), its real denoiser
``model.teacher``, its gradient scaled like the adversarial term's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ddpm.checks import (
    NON_NEGATIVE,
    ConfigError,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
)
from ddpm.fewstep.adversarial import adaptive_weight, discriminator_loss, generator_loss, r1_penalty
from ddpm.fewstep.consistency import (
    ConsistencyPath,
    ect_loss,
    ect_r,
    ect_stage,
    sampler_outputs,
)
from ddpm.models import ConsistencyModel
from ddpm.nets.discriminator import Discriminator
from ddpm.paths import broadcast
from ddpm.random import fork_init, step_generator
from ddpm.training.adversarial_settings import adversarial_plan, check_teacher, takes
from ddpm.training.base import denoised, dropped_labels
from ddpm.training.distribution_matching import ScorePair
from ddpm.training.module import DiffusionModule


class ConsistencyModule(DiffusionModule):
    """A diffusion module whose network is a consistency function ``f(x, sigma)``.

    * ``init``: an EDM checkpoint of ours (same network, data and ``sigma_data``) whose EMA
      weights start the tuning; ``null`` trains from scratch.
    * ``stages`` (8), ``q`` (2), ``k`` (8), ``b`` (1): ECT's schedule of ``r`` (the run's
      ``max_steps`` split into ``stages``; :func:`~ddpm.fewstep.consistency.ect_r`); the levels
      ``t`` are the path's log-normal (ECT's ``P_mean = -1.1``, ``P_std = 2``: set them as
      ``path.P_mean`` and ``path.P_std``, as the presets do).
    * ``huber_c`` (0): the pseudo-Huber constant of the metric.
    * ``adversarial`` (0: none): the adversarial term's weight relative to the consistency loss;
      ``discriminator``: its network (a partial, Hydra's ``_partial_: true``, taking the data's
      ``shape`` and ``num_classes``; :class:`ddpm.nets.discriminator.Discriminator` by
      default); ``r1_gamma``: the R1 penalty's ``gamma``.
    * ``adversarial_steps`` (0: the step's one-step outputs ``f(x_t, t)``, as CTM): ``N`` judges
      the consistency sampler's outputs instead, a share of the batch after each of 1 to ``N``
      calls, at the levels of ``sampler=consistency sampler.steps=N``; ``adversarial_levels``
      gives its revisited levels (``sampler.levels``: ``N - 1`` of them; ``null``: trailing).
    * ``teacher``: a checkpoint of ours whose EMA weights are the feature discriminator's frozen
      network (``null``: ``init``'s) and DMD's real denoiser; refused where neither uses it.
    * ``dmd`` (0: none): DMD's term on the judged outputs, its gradient ``dmd`` times the
      consistency loss's; ``dmd_P_mean``, ``dmd_P_std``: the levels ``ln sigma ~ N(P_mean,
      P_std^2)`` its denoisers see the outputs at. Needs ``teacher``, a diffusion checkpoint.

    ``init`` may also be a consistency checkpoint of ours, to tune it further (with the
    adversarial term, say; ``stages=1 q=256`` keeps the ``t - r`` of the last of 8 stages).
    """

    model_family = ConsistencyModel
    start_key = "init"

    def __init__(
        self,
        *args,
        init: str | None = None,
        stages: PositiveInt = 8,
        q: Annotated[float, Range(1, lo_open=True)] = 2.0,
        k: Annotated[float, NON_NEGATIVE] = 8.0,
        b: PositiveFloat = 1.0,
        huber_c: Annotated[float, NON_NEGATIVE] = 0.0,
        adversarial: Annotated[float, NON_NEGATIVE] = 0.0,
        discriminator: Callable[..., nn.Module] | None = None,
        r1_gamma: Annotated[float, NON_NEGATIVE] = 0.1,
        adversarial_steps: NonNegativeInt = 0,
        adversarial_levels: Sequence[float] | None = None,
        teacher: str | None = None,
        dmd: Annotated[float, NON_NEGATIVE] = 0.0,
        dmd_P_mean: float = -1.2,
        dmd_P_std: PositiveFloat = 1.2,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.path = ConsistencyPath.of(self.path)
        self.adversarial_plan = adversarial_plan(
            self.path, adversarial + dmd, adversarial_steps, adversarial_levels
        )
        self.discriminator: nn.Module | None = None
        if adversarial > 0:
            stored = self.hparams.run_config  # load_from_checkpoint: the node it names
            build: Callable[..., nn.Module] = (
                discriminator or self.stored_plugin(stored, "discriminator") or Discriminator
            )
            classes = self.data.num_classes if self.hparams.conditional else None
            extra = {"backbone": copy.deepcopy(self.net)} if takes(build, "backbone") else {}
            seed = self.hparams.seed + 2  # its own draw: the data order stays the run's
            self.discriminator = fork_init(
                seed, lambda: build(shape=tuple(self.data.shape), num_classes=classes, **extra)
            )
        self.score_pair: ScorePair | None = None
        if dmd > 0:
            levels = (dmd_P_mean, dmd_P_std)
            self.score_pair = ScorePair(self.net, self.path.diffusion(), self.prediction, levels)
        check_teacher(teacher, init, self.discriminator, dmd)

    def heads(self) -> list[nn.Module]:
        mine = [m for m in (self.discriminator, self.score_pair) if m is not None]
        return [*super().heads(), *mine]

    def start_from(self, state: Mapping[str, Tensor]) -> None:
        """``model.init``'s weights; also the feature discriminator's backbone's, unless
        ``model.teacher`` gives it its own (:meth:`start_backbone`, loaded after this)."""
        super().start_from(state)
        self.start_backbone(state)

    def start_backbone(self, state: Mapping[str, Tensor]) -> None:
        """The trained weights of the feature discriminator's frozen network (if it has one)."""
        backbone = getattr(self.discriminator, "backbone", None)
        if backbone is not None:
            backbone.load_state_dict(state)

    def other_starts(self) -> dict[str, Callable[[Mapping[str, Tensor]], None]]:
        """Further checkpoints a fresh run starts parts from: ``model.teacher``'s EMA weights
        are the feature discriminator's backbone and DMD's two denoisers (then it must be a
        diffusion model: its ``kinds``)."""
        pair = self.score_pair

        def teacher(state: Mapping[str, Tensor]) -> None:
            self.start_backbone(state)
            if pair is not None:
                pair.start(state)

        if pair is not None:
            teacher.kinds = ("diffusion",)  # type: ignore[attr-defined]
        return {"teacher": teacher}

    @classmethod
    def check_config(cls, options: dict, network_cls=None) -> None:
        super().check_config(options, network_cls)
        if options.get("prediction", "auto") not in ("auto", "F"):
            raise ConfigError(
                f"model.prediction={options['prediction']}: a consistency model outputs EDM's F "
                f"(model.prediction=auto)"
            )

    @property
    def stage(self) -> int:
        return ect_stage(self.global_step, self.hparams.max_steps, self.hparams.stages)

    def consistency_fn(self, net, x: Tensor, sigma: Tensor, labels: Tensor | None) -> Tensor:
        """``f(x, sigma)`` of ``net`` (labels ``-1``: the null class)."""
        return denoised(net, self.path, x, sigma, labels, self.prediction)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x0, y = batch[:2]
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        n, path, h = x0.shape[0], self.path, self.hparams
        t = path.sample_times(n, g, self.device).clamp(2 * path.t_min, path.t_max)
        r = ect_r(t, self.stage, path.t_min, h.q, h.k, h.b)
        noise = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
        labels = dropped_labels(y, h.cond_drop_prob, g) if h.conditional else None
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # both passes draw the same dropout masks
            f_t = self.consistency_fn(self.net, x0 + broadcast(t, x0) * noise, t, labels)
        with torch.no_grad():
            f_r = self.consistency_fn(self.net, x0 + broadcast(r, x0) * noise, r, labels)
        per_example = ect_loss(f_t, f_r, t, r, h.huber_c)
        loss = per_example.mean()
        total, stats = loss, dict[str, Tensor]()
        if self.discriminator is not None or self.score_pair is not None:
            terms, stats = self.judging_terms(x0, f_t, labels, loss)
            total = loss + terms
        self.check_finite(total)
        self.log("train/loss", loss, prog_bar=True)  # the consistency loss
        self.log_step()
        if self.logs_this_step():
            self.log("train/stage", float(self.stage))
            self.log("train/mse", (f_t.detach() - f_r).pow(2).flatten(1).mean(1).mean())
            self.log("train/t_minus_r", (t - r).mean())
            for name, value in stats.items():
                self.log(f"train/{name}", value)
        return total

    def judging_terms(
        self, x0: Tensor, fake: Tensor, labels: Tensor | None, main: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The adversarial term and DMD's (those the run has) on the judged outputs: the pairs'
        one-step outputs ``fake``, or the sampler's (:meth:`sampled`); each scaled to the
        consistency loss ``main``'s gradient on ``fake``."""
        judged = self.sampled(x0, labels) if self.adversarial_plan else fake
        (main_grad,) = torch.autograd.grad(main, fake, retain_graph=True)
        total, stats = torch.zeros((), device=fake.device), dict[str, Tensor]()
        if self.discriminator is not None:
            adversarial, stats = self.adversarial_term(x0, judged, labels, main_grad)
            total = total + adversarial
        if self.score_pair is not None:  # its draws: a stream of its own
            h = self.hparams
            g = step_generator(h.seed + 13, self.global_rank, self.global_step, self.device)
            dmd, more = self.score_pair.term(judged, labels, g, h.dmd, main_grad)
            total, stats = total + dmd, {**stats, **more}
        return total, stats

    def adversarial_term(
        self, x0: Tensor, judged: Tensor, labels: Tensor | None, main_grad: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The model's adversarial loss on the judged outputs (the pairs' one-step outputs, or
        the sampler's: :meth:`sampled`), scaled so its gradient on them is ``adversarial`` times
        the consistency loss's (``main_grad``, on the pairs' outputs); plus the discriminator's
        loss with the R1 penalty (and these terms detached, to log). One backward trains both:
        the model's term sees the discriminator's weights detached, the discriminator's sees the
        outputs detached."""
        disc, h = self.discriminator, self.hparams
        assert disc is not None
        inputs = self.discriminator_inputs()
        fake_in, real_in = inputs(judged), inputs(x0.detach())
        frozen = {name: p.detach() for name, p in disc.named_parameters()}
        fake_logits = functional_call(disc, frozen, (fake_in[0], labels, *fake_in[1:]))
        g_loss = generator_loss(fake_logits).mean()
        (adv_grad,) = torch.autograd.grad(g_loss, judged, retain_graph=True)
        weight = h.adversarial * adaptive_weight(main_grad, adv_grad)
        real = real_in[0].detach().requires_grad_(h.r1_gamma > 0)
        real_logits = disc(real, labels, *real_in[1:])
        fake_in = tuple(t.detach() for t in fake_in)
        d_loss = discriminator_loss(real_logits, disc(fake_in[0], labels, *fake_in[1:])).mean()
        stats = {"adv_g": g_loss, "adv_d": d_loss, "adv_weight": weight}
        term = weight * g_loss + d_loss
        if h.r1_gamma > 0:
            stats["adv_r1"] = r1 = r1_penalty(real_logits, real).mean()
            term = term + 0.5 * h.r1_gamma * r1
        return term, {name: value.detach() for name, value in stats.items()}

    def discriminator_inputs(self) -> Callable[[Tensor], tuple[Tensor, ...]]:
        """What the discriminator is called with for a batch of images: the images themselves,
        or, for one that judges re-noised images (its ``renoise = (P_mean, P_std)``: LADD, Sauer
        et al. 2024, sec. 3.2), the network's inputs ``(x_in, c_noise)`` at ``x + sigma eps``
        with ``ln sigma ~ N(P_mean, P_std^2)``, drawn from a stream of their own."""
        renoise = getattr(self.discriminator, "renoise", None)
        if renoise is None:
            return lambda x: (x,)
        (mean, std), h = renoise, self.hparams
        g = step_generator(h.seed + 11, self.global_rank, self.global_step, self.device)

        def inputs(x: Tensor) -> tuple[Tensor, ...]:
            sigma = (torch.randn(x.shape[0], generator=g, device=x.device) * std + mean).exp()
            eps = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
            return self.path.network_input(x + broadcast(sigma, x) * eps, sigma)

        return inputs

    def sampled(self, x0: Tensor, labels: Tensor | None) -> Tensor:
        """The consistency sampler's outputs along ``adversarial_plan`` for a batch like ``x0``
        with the batch's labels, from their own random stream (the pairs' draws stay the run's)."""
        seed = self.hparams.seed + 7  # apart from the pairs' (seed) and D's initial draw (+ 2)
        g = step_generator(seed, self.global_rank, self.global_step, self.device)
        noises = [
            torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
            for _ in self.adversarial_plan
        ]

        def f(x: Tensor, sigma: Tensor, index: Tensor) -> Tensor:
            y = labels[index] if labels is not None else None
            return self.consistency_fn(self.net, x, sigma, y)

        return sampler_outputs(f, self.adversarial_plan, noises, float(self.path.t_min))
