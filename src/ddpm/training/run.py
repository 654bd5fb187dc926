"""``train(cfg)``: the one library call behind train.py."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

import lightning as L
import torch
from lightning.fabric.utilities.data import AttributeDict
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ddpm.checkpoint import load_checkpoint
from ddpm.config import TrainConfig, parse_train
from ddpm.training.build import build_datamodule, build_module, build_trainer, checkpoint_dirs
from ddpm.training.errors import NonFiniteLossError, RunInterrupted, RunTerminated
from ddpm.training.quiet import silence_known_noise
from ddpm.training.requeue import PreemptionAtStepEnd, record_job, requeued_checkpoint
from ddpm.training.resume import check_resume
from ddpm.training.run_dir import (
    check_run_dir,
    check_writable,
    clear_previous_run,
    is_child_rank,
    run_dir_lock,
)
from ddpm.training.run_log import LOGGER, run_log, say


def train(cfg: TrainConfig | Mapping) -> L.Trainer:
    """Train the model ``cfg`` describes (a :class:`TrainConfig`, or train.py's composed config
    as plain values). Every check runs before training starts; the run dir holds the
    checkpoints, sample grids and logs. Raises :class:`NonFiniteLossError` when the loss diverges
    and :class:`RunTerminated` on SIGTERM (after saving ``last.ckpt``)."""
    if not isinstance(cfg, TrainConfig):
        cfg = parse_train(cfg)
    silence_known_noise()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    main = not is_child_rank()
    lock = run_dir_lock(cfg.run_dir) if main else contextlib.nullcontext()
    with lock, run_log(cfg.run_dir, main):
        try:
            return _train(cfg, main)
        except Exception as e:  # the stop the terminal will show, in the log too
            LOGGER.error(f"error: {e}")
            raise


def _train(cfg: TrainConfig, main: bool) -> L.Trainer:
    if cfg.ckpt_path is None and (requeued := requeued_checkpoint(cfg.run_dir)) is not None:
        cfg = dataclasses.replace(cfg, ckpt_path=str(requeued))
        say(f"requeued job: resuming from {requeued}")
    if main:
        check_run_dir(cfg.run_dir, cfg.ckpt_path, cfg.overwrite)
        say(f"run directory: {Path(cfg.run_dir).resolve()}")
    ckpt = load_checkpoint(cfg.ckpt_path) if cfg.ckpt_path else None  # refuses unsafe files
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    if ckpt is not None:
        hparams = cast(AttributeDict, module.hparams)  # save_hyperparameters stores one
        check_resume(ckpt, cast(str, cfg.ckpt_path), hparams.run_config)  # ckpt: loaded from it
    elif main and cfg.overwrite and (removed := clear_previous_run(cfg.run_dir)):
        say(f"overwrite=true: removed the previous run's {', '.join(removed)}")
    if main:
        record_job(cfg.run_dir)
    trainer = build_trainer(cfg, ckpt["global_step"] if ckpt is not None else None, main)
    if main:
        size = 2 * sum(p.numel() * p.element_size() for p in module.parameters()) + 2**20
        for folder in checkpoint_dirs(trainer):
            check_writable(folder, size)
    saved = f"last.ckpt was saved in {Path(cfg.run_dir) / 'checkpoints'}"
    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning, not declared
    preemption = next((c for c in callbacks if isinstance(c, PreemptionAtStepEnd)), None)
    try:
        with (
            _sigint_seen() as interrupted,
            preemption.installed() if preemption else contextlib.nullcontext(),
        ):
            try:
                trainer.fit(
                    module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True
                )
            except SystemExit:
                if not interrupted:
                    raise
                # Lightning ran the callbacks' on_exception (last.ckpt saved), then sys.exit(1)
                raise RunInterrupted(
                    f"interrupted (Ctrl-C) at step {trainer.global_step}; {saved}"
                ) from None
    except NonFiniteLossError as e:
        raise NonFiniteLossError(_diverged(e, cfg), e.step) from None
    except SIGTERMException:
        raise RunTerminated(f"terminated at step {trainer.global_step}; {saved}") from None
    finally:
        if any(isinstance(lg, WandbLogger) for lg in trainer.loggers):
            import wandb

            wandb.finish()
    if main:
        run = Path(cfg.run_dir).resolve()
        say(f"done: {run / 'checkpoints' / 'last.ckpt'} (sample grids in {run / 'samples'})")
    return trainer


@contextlib.contextmanager
def _sigint_seen() -> Iterator[list]:
    """Record a Ctrl-C (still raised as KeyboardInterrupt), so the run can report it as such."""
    seen: list = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _diverged(e: NonFiniteLossError, cfg: TrainConfig) -> str:
    """Say what was kept and what to try, as things are (not as they might be)."""
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        step = torch.load(last, map_location="cpu", weights_only=True).get("global_step", "?")
        kept = f"{last} (step {step}) is kept"
    else:
        kept = "no checkpoint had been written yet"
    advice = ["lower model.lr"]
    if not cfg.trainer.kwargs.get("gradient_clip_val"):
        advice.append("set trainer.gradient_clip_val=1.0")
    advice.append("check the data")
    return f"{e.what} at step {e.step}; stopping. {kept}; {', '.join(advice)}"
