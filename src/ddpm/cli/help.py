"""``SCRIPT.py --help``: what this script takes, and nothing it would refuse: its config groups
with their options (the one chosen marked), its keys with their current values, the exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from ddpm.cli.messages import group_options
from ddpm.cli.preflight import search_dirs

# What the keys a group brings (or a protocol sets) are for; the root config's own keys are
# described by their comments in conf/<script>.yaml.
GROUP_KEYS = {
    "model": "the model family and its training: prediction, loss, lr, EMA, conditioning",
    "dataset": "the data: its files, image size, batch size, workers",
    "network": "the network's architecture (shape and classes come from the data)",
    "path": "the formulation: forward process, training noise levels, loss weight",
    "schedule": "the betas of the discrete chain (path=ddpm)",
    "sampler": "the sampler and its options (steps, spacing, eta, order, ...)",
    "trainer": "Lightning Trainer arguments: devices, precision, max_steps, ...",
    "logger": "where the metrics go (csv, tensorboard, wandb)",
    "callbacks": "checkpoints, sample grids, progress (any of them =null to drop it)",
    "ema": "the averaged weights: one EMA or post-hoc EMA snapshots",
    "latent": "the autoencoder whose latents the model trains on (none: pixels)",
    "protocol": "how evaluate.py scores: seed sets, reference, metrics, headline",
    "num_samples": "how many samples to draw (evaluate.py: the protocol sets it)",
    "run_dir": "where this run writes (hydra.run.dir=DIR sets it)",
}


def key_descriptions(root_yaml: Path) -> dict[str, str]:
    """``key: value  # description`` comments of a root config's top-level keys."""
    import re

    out = {}
    for line in root_yaml.read_text().splitlines():
        if m := re.match(r"^(\w+):[^#]*#\s*(.+)$", line):
            out[m.group(1)] = m.group(2).strip()
    return out | {k: v for k, v in GROUP_KEYS.items() if k not in out}


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
    body = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=False))
    body.pop("hydra", None)
    described = key_descriptions(conf / f"{config_name}.yaml")
    lines += ["", "Top-level keys:"]
    lines += [f"  {key}: {described.get(key, '')}".rstrip() for key in body]
    lines += ["", "Keys (KEY=VALUE; +KEY=VALUE adds a key a config does not have):"]
    lines += ["  " + line for line in OmegaConf.to_yaml(body).rstrip().splitlines()]
    lines += [
        "",
        "Exit codes: 0 done; 2 bad input (one 'error:' line names it); 3 the loss diverged;",
        "130 Ctrl-C, 143 SIGTERM (after saving last.ckpt). See docs/guarantees.md.",
    ]
    print("\n".join(lines))
