"""Hydra's composition errors as one line a user can act on: the bad key or option, what exists,
and the closest name when it looks like a typo."""

from __future__ import annotations

import re
from pathlib import Path

from ddpm.targets import closest

OPTION = re.compile(r"Could not find '([\w/]+)/([^']+)'")
APPEND = re.compile(r"Could not override '([\w./]+)'")
NOT_IN_STRUCT = re.compile(r"Key '([\w]+)' is not in struct")
PARSE = re.compile(r"Error parsing override '(.*?)'")
INTERPOLATION = re.compile(r"Interpolation key '([\w.]+)' not found")
FULL_KEY = re.compile(r"full_key: ([\w.]+)")
MISSING = re.compile(r"Missing mandatory value: ([\w.]+)")


def group_options(search_dirs: list[Path], group: str) -> list[str]:
    """The options of a config group (yaml files in ``group/`` of every config dir)."""
    names = set()
    for d in search_dirs:
        names |= {p.stem for p in (d / group).glob("*.yaml")}
    return sorted(names)


def options_including(group: str, search_dirs: list[Path]) -> list[str]:
    """The ``GROUP=OPTION`` choices whose defaults list brings in ``group`` (``path=ddpm`` brings
    ``schedule``)."""
    found = set()
    for d in search_dirs:
        for f in d.glob("*/*.yaml"):
            text = f.read_text()
            if f"- /{group}:" in text or f"- /{group}@" in text:
                found.add(f"{f.parent.name}={f.stem}")
    return sorted(found)


def groups(search_dirs: list[Path]) -> list[str]:
    return sorted({p.name for d in search_dirs for p in d.iterdir() if p.is_dir()} - {"hydra"})


def explain(error: BaseException, search_dirs: list[Path], config: dict | None = None) -> str:
    """One line for a composition error (``error.__cause__`` is looked at too)."""
    text = f"{error}\n{error.__cause__ or ''}"
    if m := OPTION.search(text):
        group, option = m.group(1), m.group(2)
        options = group_options(search_dirs, group)
        hint = closest(option, options)
        return (
            f"{group}={option} is not an option of {group}"
            + (f"; did you mean {group}={hint}?" if hint else "")
            + f" (choose one of {', '.join(options) or 'none'})"
        )
    if m := PARSE.search(text):
        override = m.group(1)
        key, _, value = override.partition("=")
        if "=" in value or any(c in value for c in " ,[]{}()"):
            return (
                f"cannot parse the override {override!r}: its value holds '=' or other special "
                f"characters; quote it, e.g. {key}='{value}'"
            )
        detail = text.split("\n")[1].strip() if "\n" in text else ""
        return f"cannot parse the override {override!r}: {detail}"
    if (m := APPEND.search(text)) or (m := NOT_IN_STRUCT.search(text)):
        dotted = m.group(1)
        return unknown_key(dotted, search_dirs, config)
    if m := MISSING.search(text):
        key = (full.group(1) if (full := FULL_KEY.search(text)) else None) or m.group(1)
        return f"{key} is required: pass {key}=VALUE"
    if m := INTERPOLATION.search(text):
        where = FULL_KEY.search(text)
        return (
            f"{where.group(1) if where else 'a value'} refers to {m.group(1)}, which this config "
            f"does not have"
        )
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), str(error))
    return first


def unknown_key(dotted: str, search_dirs: list[Path], config: dict | None) -> str:
    """``schedul=cosine`` or ``model.lr_decy=...``: say what is closest (a group or a key)."""
    head, _, rest = dotted.partition(".")
    if (
        not rest
        and head in groups(search_dirs)
        and (owners := options_including(head, search_dirs))
    ):
        return (
            f"{head}=... applies only with {' or '.join(owners)}, which brings the {head} group; "
            f"this run's choices leave it out (its own options are under its path.* keys)"
        )
    if not rest:
        known = groups(search_dirs) + (list(config) if config else [])
        hint = closest(head, known)
        return f"{head} is not a config group or key" + (
            f"; did you mean {hint}?" if hint else f" (groups: {', '.join(groups(search_dirs))})"
        )
    node = config
    path: list[str] = []
    for part in dotted.split(".")[:-1]:
        if not isinstance(node, dict) or part not in node:
            break
        node, path = node[part], [*path, part]
    last = dotted.split(".")[len(path)]
    target = node.get("_target_") if isinstance(node, dict) else None
    if target and len(dotted.split(".")) == len(path) + 1 and _accepts(target, last):
        return (
            f"{dotted} is an argument of {target} that {'.'.join(path)} does not set yet; add it "
            f"with a plus: +{dotted}=VALUE"
        )
    if isinstance(node, dict):
        hint = closest(last, [k for k in node if not k.startswith("_")])
        where = ".".join(path) or "the config"
        return (
            f"{dotted} is not a key of {where}"
            + (f"; did you mean {'.'.join([*path, hint])}?" if hint else "")
            + " (to add a new key on purpose: +KEY=VALUE)"
        )
    return f"{dotted} is not a key of this config"


def _accepts(target: str, argument: str) -> bool:
    """Whether the class or function ``target`` takes ``argument`` (e.g. a Lightning Trainer
    argument the trainer config does not list)."""
    from ddpm.targets import locate, parameters

    try:
        params, _, _ = parameters(locate(target))
    except Exception:  # noqa: BLE001 - an unimportable target: no suggestion
        return False
    return argument in params
