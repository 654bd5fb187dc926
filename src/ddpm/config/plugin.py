"""A replaceable part as configured: ``_target_`` (a class or function, from this package or a
user's) and its keyword arguments, checked against the target's own signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddpm.checks import ConfigError
from ddpm.targets import check_call, locate, parameters


@dataclass(frozen=True)
class Plugin:
    """``fn(**kwargs)`` described by a config node. Values that are themselves ``_target_`` nodes
    (an optimizer with ``_partial_: true``) are nested plugins, built first."""

    target: str
    fn: Callable
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    partial: bool = False
    key: str = ""

    @classmethod
    def from_config(cls, node: Mapping[str, Any], key: str, provided: Iterable[str] = ()) -> Plugin:
        """Check ``node`` (a ``_target_`` mapping) against the target's signature; ``provided``
        names the arguments the framework passes itself (the network, the data's shape...)."""
        if not isinstance(node, Mapping) or "_target_" not in node:
            raise ConfigError(f"{key} must be a config node with a _target_ (got {node!r})")
        node = dict(node)
        target = node.pop("_target_")
        partial = bool(node.pop("_partial_", False))
        for meta in [k for k in node if k.startswith("_") and k.endswith("_")]:
            node.pop(meta)
        fn = locate(target, f"{key}._target_")
        kwargs = {
            k: cls.from_config(v, f"{key}.{k}") if isinstance(v, Mapping) and "_target_" in v else v
            for k, v in node.items()
        }
        plain = {k: v for k, v in kwargs.items() if not isinstance(v, Plugin)}
        check_call(
            fn, plain, key, provided=[*provided, *(set(kwargs) - set(plain))], partial=partial
        )
        return cls(target, fn, kwargs, partial, key)

    @property
    def name(self) -> str:
        return self.target.rsplit(".", 1)[-1]

    def accepts(self, argument: str) -> bool:
        params, _, var_kw = parameters(self.fn)
        return argument in params or var_kw

    def build(self, **extra) -> Any:
        """Call the target with its arguments (nested plugins built) plus ``extra``."""
        kwargs = {k: v.build() if isinstance(v, Plugin) else v for k, v in self.kwargs.items()}
        kwargs.update(extra)
        if self.partial:
            return functools.partial(self.fn, **kwargs)
        return self.fn(**kwargs)

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_target_": self.target}
        if self.partial:
            out["_partial_"] = True
        for k, v in self.kwargs.items():
            out[k] = v.to_config() if isinstance(v, Plugin) else v
        return out

    def with_kwargs(self, **kwargs) -> Plugin:
        return Plugin(self.target, self.fn, {**self.kwargs, **kwargs}, self.partial, self.key)

    @property
    def is_class(self) -> bool:
        return inspect.isclass(self.fn)


def optional_plugin(node, key: str, provided: Iterable[str] = ()) -> Plugin | None:
    """A node that may be switched off with ``=null``."""
    if node is None:
        return None
    return Plugin.from_config(node, key, provided)


def unknown_keys(node: Mapping, known: Iterable[str], where: str, hints: Mapping[str, str] = {}):  # noqa: B006
    """Refuse keys a config does not have (e.g. ``+dataset=toy2d`` given to sample.py), naming
    the closest known key or why the key does not belong there."""
    from ddpm.targets import closest

    known = list(known)
    for key in node:
        if key in known:
            continue
        if key in hints:
            raise ConfigError(f"{key} is not a key of {where}: {hints[key]}")
        match = closest(key, known)
        raise ConfigError(
            f"{key} is not a key of {where}" + (f"; did you mean {match}?" if match else "")
        )
