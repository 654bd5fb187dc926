"""``SCRIPT.py --help``: what this script takes, and nothing it would refuse: its config groups
with their options (the one chosen marked), its keys with their current values, the exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from ddpm.cli.messages import group_options
from ddpm.cli.preflight import search_dirs


def print_help(config_name: str, conf: Path, args: argparse.Namespace) -> None:
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    from ddpm.checks import ConfigError
    from ddpm.cli.messages import explain

    GlobalHydra.instance().clear()
    search_path = create_automatic_config_search_path(None, None, str(conf))
    if args.config_dir:
        search_path.prepend("command-line", f"file://{Path(args.config_dir).resolve()}")
    hydra = Hydra.create_main_hydra2(task_name=config_name, config_search_path=search_path)
    dirs = search_dirs(conf, args, list(args.overrides))
    try:
        cfg = hydra.compose_config(config_name, list(args.overrides), run_mode=RunMode.RUN)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(explain(e, dirs)) from None
    finally:
        GlobalHydra.instance().clear()
    choices = {
        g: c for g, c in cfg.hydra.runtime.choices.items() if not g.startswith("hydra/") and c
    }
    lines = [cfg.hydra.help.header.rstrip(), "", "Config groups (GROUP=OPTION; * = chosen):"]
    for group in sorted(choices):
        options = [f"{o}*" if o == choices[group] else o for o in group_options(dirs, group)]
        lines.append(f"  {group}: {', '.join(options)}")
    if config_name == "train":
        lines.append(
            f"  hydra/launcher: basic*, {', '.join(group_options(dirs, 'hydra/launcher'))}"
        )
    body = OmegaConf.to_container(cfg, resolve=False)
    body.pop("hydra", None)
    lines += ["", "Keys (KEY=VALUE; +KEY=VALUE adds a key a config does not have):"]
    lines += ["  " + line for line in OmegaConf.to_yaml(body).rstrip().splitlines()]
    lines += [
        "",
        "Exit codes: 0 done; 2 bad input (one 'error:' line names it); 3 the loss diverged;",
        "130 Ctrl-C, 143 SIGTERM (after saving last.ckpt). See README.md.",
    ]
    print("\n".join(lines))
