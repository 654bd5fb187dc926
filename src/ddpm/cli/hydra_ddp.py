"""DDP inside Hydra runs and multiruns.

Lightning starts ranks 1..N-1 by re-running the script with ``sys.argv`` plus
``hydra.run.dir=<run dir>``. Under ``-m`` that re-runs the *whole sweep* in every child, and
points them at the run dir instead of the sweep job's dir (Lightning #15737, #18175). We replace
the command with the job's own resolved overrides (no ``-m``) and its real output dir, and isolate
each job's process group and environment so the next job of the sweep starts clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence

_DDP_ENV = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "GLOBAL_RANK",
    "RANK",
    "PL_GLOBAL_SEED",
    "PL_SEED_WORKERS",
)


def hydra_job_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command that starts rank ``local_rank`` of the current Hydra job, and its cwd."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hc = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    for source in hc.runtime.config_sources:  # --config-dir DIR of the parent
        if source.provider == "command-line" and source.schema == "file":
            command += ["--config-dir", source.path]
    command += list(hc.overrides.task)
    command += [o for o in hc.overrides.hydra if o.startswith("hydra.searchpath=")]
    command += [
        f'hydra.run.dir="{hc.runtime.output_dir}"',
        f"hydra.job.name={hc.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def install() -> None:
    """Make Lightning's subprocess launcher use :func:`hydra_job_command`."""
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as trainer_launcher

    # lightning.pytorch imports the function by name, so both bindings are replaced.
    fabric_launcher._hydra_subprocess_cmd = hydra_job_command
    trainer_launcher._hydra_subprocess_cmd = hydra_job_command


@contextlib.contextmanager
def isolated_job() -> Iterator[None]:
    """Run one job of a sweep: on exit destroy its process group and restore the DDP environment
    variables, so the next job spawns its own ranks instead of believing it is one."""
    saved = {k: os.environ.get(k) for k in _DDP_ENV}
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
