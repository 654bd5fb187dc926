"""Progress of a run in steps toward ``max_steps``, with rate and ETA: a live bar on a terminal, a
plain line every ``every_n_steps`` steps in a log file (nohup, SLURM), where a bar would print
nothing until the end."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks.progress import ProgressBar

from ddpm.checks import NonNegativeInt
from ddpm.training.run_log import say

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class StepProgress(ProgressBar):
    """Steps done out of ``trainer.max_steps`` (a resumed run starts where it stopped), steps per
    second, time left, the latest loss. ``every_n_steps``: how often a line is printed without a
    terminal (0: every 5% of the run); ``tty`` forces one mode (``None``: ask stderr)."""

    def __init__(self, every_n_steps: NonNegativeInt = 0, tty: bool | None = None) -> None:
        super().__init__()
        self.every_n_steps, self.tty = every_n_steps, tty
        self._enabled = True
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _is_tty(self) -> bool:
        return sys.stderr.isatty() if self.tty is None else self.tty

    def on_train_start(self, trainer, module) -> None:
        self._start_step, self._start = trainer.global_step, time.monotonic()
        self._total = trainer.max_steps
        self._every = self.every_n_steps or max(1, self._total // 20)
        if not (self._enabled and trainer.is_global_zero):
            return
        if self._is_tty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("step"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[rate]} | eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[loss]}"),
                console=None,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                "train", total=self._total, completed=self._start_step, rate="", loss=""
            )
        else:
            print(f"training: step {self._start_step}/{self._total}", file=sys.stderr, flush=True)

    def _status(self, trainer) -> tuple[float, float, str]:
        done = trainer.global_step - self._start_step
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self._total - trainer.global_step) / rate if rate > 0 else float("nan")
        loss = trainer.callback_metrics.get("train/loss")
        return rate, eta, f"loss {float(loss):.4g}" if loss is not None else ""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        step = trainer.global_step
        if self._bar is not None:
            rate, _, loss = self._status(trainer)
            task = cast("TaskID", self._task)  # added with the bar
            self._bar.update(task, completed=step, rate=f"{rate:.2f} steps/s", loss=loss)
        elif step % self._every == 0 or step == self._total:
            rate, eta, loss = self._status(trainer)
            pct = 100 * step / max(self._total, 1)
            print(
                f"step {step}/{self._total} ({pct:.0f}%) | {rate:.2f} steps/s | "
                f"eta {_duration(eta) if eta == eta else '?'}" + (f" | {loss}" if loss else ""),
                file=sys.stderr,
                flush=True,
            )

    def on_train_end(self, trainer, module) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self._enabled and trainer.is_global_zero:
            elapsed = time.monotonic() - self._start
            print(
                f"training done: step {trainer.global_step}/{self._total} in {_duration(elapsed)}",
                file=sys.stderr,
                flush=True,
            )

    def on_exception(self, trainer, module, exception) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class RunSummary(Callback):
    """One line when training starts: the network, its size, the data and the plan (Lightning's
    model summary table also counts the EMA copy as a second model and prints FLOPs it never
    measured); at the end, ``DIR/timing.json``: the wall time of this run's training, from the
    first batch to the last step (start-up and the final save excluded), and its steps."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if not hasattr(self, "_start"):
            self._start, self._first_step = time.monotonic(), trainer.global_step

    def on_train_end(self, trainer, module) -> None:
        if not trainer.is_global_zero or not hasattr(self, "_start"):
            return
        seconds = time.monotonic() - self._start
        steps = trainer.global_step - self._first_step
        path = Path(trainer.default_root_dir) / "timing.json"
        record = {
            "train_seconds": round(seconds, 2),
            "steps": steps,
            "max_steps": trainer.max_steps,
        }
        path.write_text(json.dumps(record, indent=2) + "\n")

    def on_train_start(self, trainer, module) -> None:  # after a checkpoint is restored
        if not trainer.is_global_zero:
            return
        net = module.net
        n = sum(p.numel() for p in net.parameters())
        dm = trainer.datamodule
        info: Any = getattr(dm, "info", None)  # a latent data module (pixel_info) has one
        data = f"{info.name} {tuple(info.shape)}" if info is not None else type(dm).__name__
        if (pixel := getattr(dm, "pixel_info", None)) is not None:  # a latent model's data
            data = f"{info.name} {tuple(pixel.shape)} as latents {tuple(info.shape)}"
        resumed = f", resuming at step {trainer.global_step}" if trainer.global_step else ""
        copies = len(getattr(module, "averages", lambda: [None])())
        averages = "an EMA copy" if copies == 1 else f"{copies} post-hoc EMA copies"
        say(
            f"{type(net).__name__}: {n / 1e6:.2f} M parameters (+ {averages}); data {data}; "
            f"{trainer.max_steps} steps on {trainer.num_devices} x "
            f"{type(trainer.accelerator).__name__.removesuffix('Accelerator').lower()}{resumed}"
        )
