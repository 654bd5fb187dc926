"""The encoded training data on disk: one file per dataset, split and autoencoder (its name holds
digests of the dataset's config and of the autoencoder's weights, so a changed one gets a new
file; its key also holds the sizes and modification times of the files the config names, so data
rewritten in place at the same path is encoded again), written atomically under a file lock. Every process of a run asks for the same file: the
first to take the lock encodes (on its device, with a progress line) and writes it, the others
wait and read it. A file that cannot be read, or whose contents do not match what it should hold
(format, key, count, checksum), is rebuilt with a warning."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FORMAT = 1
# keys that do not change the encoded items (flips are off while encoding)
IGNORED_DATASET_KEYS = ("batch_size", "num_workers", "flip")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def items_config(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset config less the keys that do not change its items."""
    return {k: v for k, v in dataset.items() if k not in IGNORED_DATASET_KEYS}


def source_stamps(dataset: Mapping[str, Any]) -> dict[str, str]:
    """For each string in the dataset config (nested nodes included) that names a file or folder
    on disk, a digest of the sizes and modification times of its files: what tells data rewritten
    at the same path from the data a cache was encoded from, without reading it."""
    stamps: dict[str, str] = {}

    def visit(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)
        elif isinstance(value, str) and value and os.path.exists(os.path.expanduser(value)):
            root = Path(os.path.expanduser(value))
            files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            stats = [(p.relative_to(root).as_posix(), p.stat()) for p in files]
            stamps[value] = digest([(name, st.st_size, st.st_mtime_ns) for name, st in stats])

    visit(dict(dataset))
    return stamps


def cache_file(cache_dir: Path, dataset: Mapping[str, Any], split: str, fingerprint: str) -> Path:
    name = str(dataset.get("_target_", "data")).rsplit(".", 1)[-1]
    return cache_dir / f"{name}-{digest(items_config(dataset))}-{split}-{fingerprint}.pt"


def checksum(t: Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read(path: Path, key: Mapping[str, Any], count: int) -> tuple[Tensor, Tensor] | None:
    """The cached ``(latents, labels)``, or ``None`` (missing, unreadable or not what ``key``
    and ``count`` say it holds: a warning says it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        z, y = data["latents"], data["labels"]
        problem = (
            "an older format" if data.get("format") != FORMAT else
            "another dataset or autoencoder" if data.get("key") != dict(key) else
            f"{len(z)} items, not {count}" if len(z) != count or len(y) != count else
            "a checksum mismatch" if data.get("checksum") != checksum(z) else None
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - any unreadable file is rebuilt
        problem = f"an unreadable file ({type(e).__name__})"
    if problem is None:
        return z, y
    print(f"warning: the latent cache {path} holds {problem}; rebuilding it", file=sys.stderr)
    return None


def write(path: Path, key: Mapping[str, Any], z: Tensor, y: Tensor) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    state = {"format": FORMAT, "key": dict(key), "latents": z, "labels": y, "checksum": checksum(z)}
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_or_encode(
    path: Path,
    key: Mapping[str, Any],
    count: int,
    encode: Callable[[Callable[[int], None]], tuple[Tensor, Tensor]],
    what: str,
) -> tuple[Tensor, Tensor]:
    """The latents at ``path``, encoded by ``encode(progress)`` when missing or stale."""
    with locked(path):
        cached = read(path, key, count)
        if cached is not None:
            return cached
        start, last = time.monotonic(), [0.0]

        def progress(done: int) -> None:
            now = time.monotonic()
            if now - last[0] > 2 or done == count:
                last[0] = now
                print(f"\rencoding {what}: {done}/{count} ({now - start:.0f}s)", end="",
                      file=sys.stderr, flush=True)  # fmt: skip

        z, y = encode(progress)
        print(file=sys.stderr)
        write(path, key, z.float().cpu().contiguous(), y.long().cpu())
        return z, y
