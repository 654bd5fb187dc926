"""What every model trained by train.py shares: a network and its EMA copy, the optimiser with
warm-up and cosine decay, and the guards that stop a run on a non-finite loss or gradient."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import Tensor, nn

from ddpm.config import data_info
from ddpm.config.plugin import Plugin
from ddpm.data.info import DataInfo
from ddpm.power_ema import gamma_from_sigma_rel, power_ema_beta
from ddpm.training.ema import ema_decay_at, ema_update
from ddpm.training.errors import NonFiniteLossError

if TYPE_CHECKING:
    from lightning.fabric.utilities.data import AttributeDict

    from ddpm.paths.base import Path


def dropped_labels(y: Tensor, drop_prob: float, generator: torch.Generator | None) -> Tensor:
    """The labels a conditional network trains on: each replaced by the null label ``-1`` with
    probability ``drop_prob``, so the same network is also the unconditional model
    (classifier-free guidance, Ho & Salimans 2022)."""
    drop = torch.rand(y.shape[0], generator=generator, device=y.device) < drop_prob
    return torch.where(drop, torch.full_like(y, -1), y)


def with_labels(net: Callable[..., Tensor], labels: Tensor | None) -> Callable[..., Tensor]:
    """``net`` as ``fn(x, c_noise)``: called with ``labels`` when there are some (a conditional
    network), else as it is."""
    return net if labels is None else (lambda x, c_noise: net(x, c_noise, labels))


def denoised(
    net: Callable[..., Tensor],
    path: Path,
    x: Tensor,
    sigma: Tensor,
    labels: Tensor | None,
    prediction: str,
) -> Tensor:
    """``path``'s estimate of ``x0`` by ``net`` at ``x`` (level ``sigma``): the network called on
    the path's inputs (``labels``: the classes, ``-1`` the null one), its output read as
    ``prediction``."""
    x_in, c_noise = path.network_input(x, sigma)
    return path.x0(with_labels(net, labels)(x_in, c_noise), x, sigma, prediction)


class AveragedModule(L.LightningModule):
    """``self.net`` is trained, ``self.ema`` (a frozen copy, ``ema.*`` in the state dict) is its
    exponential moving average, used for sampling and evaluation.

    Subclasses define ``eval_loss(net, batch, batch_idx)`` (validation and test, logged as
    ``val/loss``/``test/loss``) and call ``self.save_hyperparameters(...)`` with at least ``lr``,
    ``warmup_steps``, ``lr_decay`` (none | cosine, to 0 at ``max_steps``), ``max_steps``,
    ``ema_decay``, ``ema_warmup`` and ``ema_every``; with ``ema_sigma_rels`` (``ema=posthoc``) the
    averages are instead EDM2's power-function EMAs of those widths, ``self.ema`` the first;
    ``optimizer`` is a partial taking the
    parameters and ``lr`` (Hydra ``_partial_: true``). ``compile`` compiles the network's forward
    in place (``nn.Module.compile``), so the state dict keeps one key per weight.
    """

    if TYPE_CHECKING:
        # Lightning types it AttributeDict | MutableMapping; save_hyperparameters stores an
        # AttributeDict, whose attributes the modules read (self.hparams.lr)
        @property
        def hparams(self) -> AttributeDict: ...

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable | None = None,
        compile: bool = False,
        channels_last: bool = False,
        ema_decay: float = 0.9999,
        ema_sigma_rels: Sequence[float] | None = None,
    ) -> None:
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"model.ema_decay must lie in [0, 1), got {ema_decay}")
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.ema = copy.deepcopy(self.net).requires_grad_(False).eval()
        # post-hoc EMA (ema=posthoc): power-function averages, the first one is self.ema
        self.ema_sigma_rels = [float(s) for s in ema_sigma_rels or ()]
        self.ema_gammas = [gamma_from_sigma_rel(s) for s in self.ema_sigma_rels]
        self.ema_profiles = nn.ModuleList(copy.deepcopy(self.ema) for _ in self.ema_gammas[1:])
        if compile:
            self.net.compile()
        self.optimizer_fn = optimizer or partial(torch.optim.Adam)
        self._ema_updates = 0

    @cached_property
    def data(self) -> DataInfo:
        """The data the model is trained on, as the run config states it (read once)."""
        return data_info(self.hparams.run_config or {})

    def heads(self) -> list[nn.Module]:
        """Modules trained beside the network (REPA's projector, a discriminator): the optimiser
        updates them too, and their gradients are clipped on their own (none here)."""
        return []

    def trainable_parameters(self):
        """What the optimiser updates: the network's parameters and the heads'."""
        return [p for module in (self.net, *self.heads()) for p in module.parameters()]

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):
        """The network and each head are clipped on their own, so the network's clipping (by its
        own norm) is that of the run without heads."""
        if not self.heads() or not gradient_clip_val:
            return super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )
        for module in (self.net, *self.heads()):
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(module.parameters(), gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(module.parameters(), gradient_clip_val)

    @staticmethod
    def stored_plugin(run_config: Mapping[str, Any] | None, key: str) -> Any:
        """``model.KEY`` of a stored run config, built (``None`` when the config has no such
        key): what ``load_from_checkpoint`` passes for an argument Hydra instantiates on a run,
        the optimizer or a discriminator (``_partial_``: it takes the rest of its arguments)."""
        model = (run_config or {}).get("model") or {}
        return Plugin.from_config(model[key], f"model.{key}").build() if key in model else None

    @classmethod
    def check_network(cls, network_cls) -> str | None:
        """Why a network class cannot be trained by this module (``None``: it can)."""
        return None

    def logs_this_step(self) -> bool:
        """Whether the loggers write this training step's values (every ``log_every_n_steps`` and
        when the run stops; Lightning drops the ``on_step`` values of the other steps). Per-step
        diagnostics are logged only then: ``self.log`` costs ~1.5 ms a call on CPU, which for
        seven of them was 3% of a digits step (``benchmarks/train_throughput.py``). ``step`` is
        logged every step: ``ModelCheckpoint`` names files from the logged value."""
        return self.trainer._logger_connector.should_update_logs

    def log_step(self) -> None:
        """Log the step every logger records for this batch: the optimizer steps done once it is
        applied, the number the checkpoints and sample grid of this moment carry too (Lightning
        would record one less). Called from ``training_step``, before the callbacks run."""
        self.log("step", float(self.global_step + 1))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Lightning 2.6 restores this logging counter one ahead of global_step on resume, which
        # shifts the logging cadence (rows at 49, 59 instead of 50, 60); with one optimizer the
        # two count the same optimizer steps
        self.trainer.fit_loop.epoch_loop._batches_that_stepped = self.global_step

    def check_finite(self, loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite loss ({loss.item()})", self.global_step)

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        if not grads:
            return
        total = torch.nn.utils.get_total_norm(grads)  # fused (foreach) over the tensors
        if not torch.isfinite(total):
            raise NonFiniteLossError("non-finite gradient norm", self.global_step)
        if self.logs_this_step():
            self.log("train/grad_norm", total)

    def start_from(self, state: Mapping[str, Tensor]) -> None:
        """Another run's weights as the network and every average (``model.init``)."""
        for module in (self.net, *self.averages()):
            module.load_state_dict(state)

    def averages(self) -> list[nn.Module]:
        """The EMA networks: ``self.ema``, then the other post-hoc profiles."""
        return [self.ema, *self.ema_profiles]

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimizer's step, then the averages' update: part of the step itself, so a
        checkpoint written after it (a periodic one too) holds the step's averages and a resume
        from it continues them exactly."""
        super().optimizer_step(*args, **kwargs)
        if self.ema_gammas:  # EDM2 eq. 5, t = optimizer steps so far
            self._ema_updates += 1
            for average, gamma in zip(self.averages(), self.ema_gammas):
                ema_update(average, self.net, power_ema_beta(self._ema_updates, gamma))
        elif (self.global_step + 1) % self.hparams.ema_every == 0:  # the step about to count
            decay = ema_decay_at(self._ema_updates, self.hparams.ema_decay, self.hparams.ema_warmup)
            ema_update(self.ema, self.net, decay)
            self._ema_updates += 1

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.logs_this_step():
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self):
        opt = self.optimizer_fn(self.trainable_parameters(), lr=self.hparams.lr)
        warmup, decay, max_steps = (
            self.hparams.warmup_steps,
            self.hparams.lr_decay,
            self.hparams.max_steps,
        )

        def factor(step: int) -> float:
            f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
            if decay == "cosine" and max_steps > 0:
                progress = min(1.0, max(0, step - warmup) / max(1, max_steps - warmup))
                f *= 0.5 * (1 + math.cos(math.pi * progress))
            return f

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- validation / test: the subclass's loss with the EMA weights and fixed noise -------------
    def eval_loss(self, net: nn.Module, batch, batch_idx: int) -> Tensor:
        raise NotImplementedError

    def _evaluate(self, batch, batch_idx: int, stage: str) -> Tensor:
        loss = self.eval_loss(self.ema, batch, batch_idx)
        n = len(batch[0])
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True, batch_size=n)
        self.log("step", float(self.global_step), batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx: int) -> Tensor:
        return self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx: int) -> Tensor:
        return self._evaluate(batch, batch_idx, "test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ema_updates"] = self._ema_updates
        # the global generator draws the next epoch's data order: a resume continues it
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._ema_updates = int(checkpoint.get("ema_updates", 0))
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if fitting and (state := checkpoint.get("torch_rng_state")) is not None:
            torch.set_rng_state(state.cpu())  # a resume, not load_from_checkpoint
