"""Before any work: compose the config of every job the command line asks for (one, or every job
of a ``-m`` sweep) and turn it into the typed config, so that a bad value anywhere fails at once,
with one line, instead of after the first jobs ran."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf, open_dict

from ddpm.checks import ConfigError
from ddpm.cli.messages import explain


def search_dirs(conf: Path, args: argparse.Namespace, overrides: list[str]) -> list[Path]:
    """Every config dir Hydra will search: ours, ``--config-dir`` and ``hydra.searchpath``."""
    dirs = [conf]
    if args.config_dir:
        dirs.insert(0, Path(args.config_dir).resolve())
    for o in overrides:
        if o.startswith("hydra.searchpath="):
            for item in o.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("file://"):
                    dirs.append(Path(item[len("file://") :]))
    return [d for d in dirs if d.is_dir()]


def plain(cfg: DictConfig, run_dir: str | None = None) -> dict[str, Any]:
    """The composed config without Hydra's own node, resolved to plain values (``${hydra:...}``
    interpolations from the Hydra node when it is there)."""
    if "hydra" in cfg:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
        if run_dir is not None and OmegaConf.is_interpolation(cfg, "run_dir"):
            cfg.run_dir = run_dir
    return cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))


def job_overrides(args: argparse.Namespace) -> list[list[str]]:
    """One override list per job: the command line, or every combination of a sweep."""
    if not args.multirun:
        return [list(args.overrides)]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(args.overrides))
    try:
        return BasicSweeper.split_arguments(parsed, None)[0]
    except Exception:  # noqa: BLE001 - a sweep type only another sweeper knows: check its base
        return [[o for o in args.overrides if "," not in o]]


def preflight(
    config_name: str, conf: Path, args: argparse.Namespace, parse: Callable[[dict], Any] | None
) -> None:
    """Compose and parse every job's config; raise ConfigError with one line on the first bad
    one (naming the job of a sweep). ``parse=None`` only composes (``--cfg``, ``--info``: a
    misspelt key or option is refused, an incomplete config is still printed)."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    for override in args.overrides:  # a malformed override is named before anything else
        try:
            parser.parse_overrides([override])
        except HydraException as e:
            e.args = (f"Error parsing override '{override}'\n{e}",)
            raise ConfigError(explain(e, search_dirs(conf, args, args.overrides))) from None
    jobs = job_overrides(args)
    search_path = create_automatic_config_search_path(None, None, str(conf))
    if args.config_dir:
        search_path.prepend("command-line", f"file://{Path(args.config_dir).resolve()}")
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(task_name=config_name, config_search_path=search_path)
    try:
        for n, overrides in enumerate(jobs):
            dirs = search_dirs(conf, args, overrides)
            where = f" (job {n} of the sweep: {' '.join(overrides)})" if len(jobs) > 1 else ""
            base: dict | None = None
            try:
                cfg = hydra.compose_config(config_name, overrides, run_mode=RunMode.RUN)
                base = cast(dict, OmegaConf.to_container(cfg, resolve=False))
                if parse is not None:
                    parse(plain(cfg, run_dir=f"<{config_name} run dir>"))
            except ConfigError as e:
                raise ConfigError(f"{e}{where}") from None
            except (HydraException, OmegaConfBaseException) as e:
                if base is None:  # composition failed: the config of the group choices alone
                    base = _base_config(hydra, config_name, overrides)
                raise ConfigError(f"{explain(e, dirs, base)}{where}") from None
    finally:
        GlobalHydra.instance().clear()


def _base_config(hydra, config_name: str, overrides=()) -> dict | None:
    """The config that the overrides' group choices compose (``experiment=toy2d``, not
    ``dataset.nme=...``), so a misspelt key is matched against the keys it would have had; the
    defaults alone when those fail too."""
    from hydra.types import RunMode

    choices = [
        o for o in overrides
        if "=" in o and "." not in o.split("=", 1)[0] and not o.startswith(("+", "~"))
    ]  # fmt: skip
    for attempt in (choices, []):
        try:
            cfg = hydra.compose_config(config_name, attempt, run_mode=RunMode.RUN)
            return cast(dict, OmegaConf.to_container(cfg, resolve=False))
        except Exception:  # noqa: BLE001 - the next attempt, or no config to suggest from
            continue
    return None
