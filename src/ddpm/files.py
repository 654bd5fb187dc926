"""Where the project's files are: the Hydra config tree the entry points compose."""

from __future__ import annotations

import os
from pathlib import Path


def conf_dir() -> Path:
    """The config tree the package carries, ``ddpm/conf`` (a checkout's ``conf/`` links to it);
    ``$DDPM_CONF_DIR`` replaces it with a tree of your own (a user's own options are better
    added with ``hydra.searchpath``)."""
    if env := os.environ.get("DDPM_CONF_DIR"):
        return Path(env)
    path = Path(__file__).resolve().parent / "conf"
    if not path.is_dir():
        raise FileNotFoundError(
            f"the config folder {path} does not exist: the package was installed without its "
            f"configs; reinstall it (pip install .) or set DDPM_CONF_DIR"
        )
    return path


def read_yaml(path: Path) -> dict:
    """A yaml file as plain data, with numbers such as ``1e-5`` read as floats (YAML 1.2, as
    Hydra reads them; PyYAML's YAML 1.1 would make them strings)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
            r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )
    return yaml.load(path.read_text(), Loader=Loader) or {}  # noqa: S506 - a SafeLoader subclass
