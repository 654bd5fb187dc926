"""The entry points' shared shell: compose the config with Hydra, check every job's config before
any work, run one library call, and turn every failure a user can fix into one ``error:`` line
with a documented exit code (no traceback).

Exit codes: 0 done; 2 bad input (config, checkpoint, data); 3 the loss diverged; 130 Ctrl-C and
143 SIGTERM (both after saving ``last.ckpt``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ddpm.checkpoint import CheckpointError
from ddpm.checks import ConfigError
from ddpm.data.info import DatasetNotFoundError

if TYPE_CHECKING:
    from ddpm.training.errors import NonFiniteLossError, RunTerminated

USER_ERRORS = (
    ConfigError,
    CheckpointError,
    DatasetNotFoundError,
    ValueError,
    FileNotFoundError,
    PermissionError,
    OSError,
    ImportError,  # an optional extra that is not installed (diffusers, datasets, ...)
)


def fail(error: BaseException | str, code: int = 2) -> None:
    """Print ``error: <message>`` on stderr and exit non-zero: bad input is not a crash."""
    print(f"error: {error}", file=sys.stderr)
    sys.stderr.flush()
    raise SystemExit(code)


def _run_stops() -> tuple[type[NonFiniteLossError] | type[RunTerminated], ...]:
    """A run's stops (divergence, SIGTERM), once the training code is loaded: evaluated when an
    exception arrives, so ``--help`` and config checks never import the training package."""
    errors = sys.modules.get("ddpm.training.errors")
    return (errors.NonFiniteLossError, errors.RunTerminated) if errors else ()


def call(fn: Callable, *args) -> Any:
    """``fn(*args)`` with the user errors and stops of a run mapped to their exit codes."""
    try:
        return fn(*args)
    except _run_stops() as e:
        if os.environ.get("DDPM_TRACEBACK"):
            raise
        fail(e, e.exit_code)
    except USER_ERRORS as e:
        if os.environ.get("DDPM_TRACEBACK"):  # for debugging the framework itself
            raise
        fail(e, 2)


def _task(config_name: str, fn: Callable | str) -> Callable:
    from ddpm.config import PARSERS

    def task(cfg) -> None:
        nonlocal fn
        from ddpm.cli.hydra_ddp import install, isolated_job
        from ddpm.cli.preflight import plain

        install()  # DDP ranks relaunched with the Hydra job's own overrides
        if isinstance(fn, str):  # "module:function", imported when a job runs (not for --cfg)
            import importlib

            module, _, name = fn.partition(":")
            fn = getattr(importlib.import_module(module), name)
        job = cast(Callable, fn)  # a function by now (imported above when it was named)
        with isolated_job():  # each job of a sweep gets its own process group and DDP env
            call(lambda: job(PARSERS[config_name](plain(cfg))))

    return task


def run(config_name: str, fn: Callable | str) -> None:
    """``python SCRIPT.py [hydra overrides]``: the whole entry point for ``fn(typed config)``.
    ``fn`` may be named as ``"module:function"``: it is imported only once the config is checked,
    so ``--help`` and a config error answer without importing Lightning."""
    import hydra
    from hydra._internal.utils import get_args_parser

    from ddpm.cli.help import print_help
    from ddpm.cli.preflight import preflight
    from ddpm.config import PARSERS
    from ddpm.files import conf_dir

    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    conf = conf_dir()
    args = get_args_parser().parse_args()
    if args.help:
        call(print_help, config_name, conf, args)
        return
    if not (args.shell_completion or args.hydra_help or args.experimental_rerun):
        # --cfg and --info print the composed config: composed (a misspelt key or option is one
        # line), not parsed, so an incomplete config still prints
        parse = None if args.cfg or args.info else PARSERS[config_name]
        call(preflight, config_name, conf, args, parse)
    main = hydra.main(config_path=str(conf), config_name=config_name, version_base=None)
    main(_task(config_name, fn))()
