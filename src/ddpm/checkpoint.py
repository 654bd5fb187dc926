"""Checkpoint files: safe loading (``torch.load(weights_only=True)`` only, with refusals that say
what the file is) and atomic writing (a kill or a full disk never leaves a truncated file)."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe, or does not match the network."""


def _describe_unreadable(path: Path) -> str | None:
    """What a file that is not a loadable torch checkpoint is, judged from its bytes."""
    size = path.stat().st_size
    if size == 0:
        return f"checkpoint {path} is empty (0 bytes): an interrupted copy or save?"
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError):
            return (
                f"checkpoint {path} is truncated or corrupt ({size} bytes; its zip archive is "
                f"incomplete): an interrupted copy or save? Use another checkpoint of the run"
            )
        if bad is not None:
            return f"checkpoint {path} is corrupt (member {bad} fails its checksum)"
        return None
    if head[:1] == b"\x80":
        return (
            f"refusing to load {path}: it is a raw pickle, not a torch checkpoint of tensors; "
            f"unpickling it could run code. Re-save the weights with torch.save as tensors"
        )
    return f"{path} is not a checkpoint: it is not a torch file ({size} bytes of other data)"


def load_checkpoint(
    path: str | Path, map_location="cpu", require: str = "state_dict", mmap: bool = False
) -> dict:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only. A file that needs
    arbitrary unpickling (a ``__reduce__`` payload, a pickled class) is refused and its payload is
    never executed; a folder, an empty, truncated or foreign file is named as what it is, and so is
    a file without the key ``require`` (a training checkpoint's ``state_dict`` by default).
    ``mmap``: tensors stay on disk until read (large files read piece by piece)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("*.ckpt"))[:3]
        hint = f", e.g. ckpt={found[0]}" if found else ""
        raise CheckpointError(f"{path} is a directory; pass a .ckpt file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass ckpt=PATH to a .ckpt file")
    if (problem := _describe_unreadable(path)) is not None:
        raise CheckpointError(problem)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        pickled = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({pickled.group(1)})" if pickled else ""
        raise CheckpointError(
            f"refusing to load {path}: it holds pickled Python objects{what}, not only tensors "
            f"and plain containers, and unpickling them could run code. Only a checkpoint of "
            f"tensors is loaded; re-save a trusted one that way"
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        ) from None
    if not isinstance(ckpt, dict) or require not in ckpt:
        what = "training checkpoint" if require == "state_dict" else "file of this kind"
        raise CheckpointError(f"{path} is not a ddpm {what} (no {require})")
    return ckpt


def checkpoint_config(ckpt: dict, path: str | Path = "checkpoint") -> dict:
    """The run's resolved configuration (plain containers) saved in every training checkpoint."""
    config = ckpt.get("hyper_parameters", {}).get("run_config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds no run configuration (was it written by train.py?)")
    return config


class SaveError(OSError):
    """A file could not be written; the message names the path and the reason."""

    def __str__(self) -> str:
        return self.args[-1] if self.args else "could not save"


class _WriteRecorder:
    """A file that remembers what interrupted a write. Torch's zip writer turns any exception
    raised in it into an unhelpful "unexpected pos" RuntimeError: an OS error (disk full), but
    also the SystemExit a scheduler's preemption handler raises or a Ctrl-C, which must stay
    what they are."""

    def __init__(self, f) -> None:
        self._f = f
        self.error: BaseException | None = None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except BaseException as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename: a kill mid-save
    leaves the previous file intact, and a failed save (disk full, permissions) leaves no partial
    file and an error that names the path. A signal handler's exit or a Ctrl-C during the write
    is raised as itself (a requeue handler's exit code must reach the scheduler)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    recorder = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            recorder = _WriteRecorder(f)
            torch.save(obj, recorder)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        cause = recorder.error if recorder is not None and recorder.error is not None else e
        if not isinstance(cause, (OSError, RuntimeError)):  # SystemExit, Ctrl-C, a bad object
            raise cause from None
        if isinstance(cause, OSError) and cause.strerror:
            reason = cause.strerror
        else:
            reason = str(cause).splitlines()[0]
        free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else None
        where = f" ({free / 2**20:.0f} MiB free there)" if free is not None else ""
        errno = cause.errno if isinstance(cause, OSError) else None
        raise SaveError(errno, f"could not save checkpoint to {path}: {reason}{where}") from None


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the hidden ``.NAME.tmp-PID`` files that saves killed mid-write left behind (their
    process no longer runs)."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
