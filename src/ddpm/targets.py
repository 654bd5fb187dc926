"""Targets a config names (``_target_``): finding them by dotted path, and checking a call
against the target's own signature and annotations before making it."""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ddpm.checks import ConfigError, check_value


def locate(path: str, key: str = "_target_"):
    """The object at a dotted path (``package.module.name``), or a clear error."""
    if not isinstance(path, str) or not path:
        raise ConfigError(
            f"{key}={path!r} is not valid; it must be a dotted path to a class or function"
        )
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue  # not a module: a shorter prefix may be
            raise ConfigError(f"{key}={path} cannot be imported: {e}") from None
        except Exception as e:  # noqa: BLE001 - a user's module may raise anything on import
            raise ConfigError(f"{key}={path} cannot be imported: {type(e).__name__}: {e}") from None
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise ConfigError(
        f"{key}={path} cannot be found; check the spelling, and that its module is on PYTHONPATH"
    )


def type_hints(fn) -> dict[str, Any]:
    """Resolved annotations of a function or class constructor, with ``Annotated`` extras; any
    annotation that cannot be resolved counts as ``Any``."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - forward references to names only imported for type checkers
        module = sys.modules.get(getattr(target, "__module__", ""), None)
        hints = {}
        for name, ann in getattr(target, "__annotations__", {}).items():
            try:
                hints[name] = eval(ann, vars(module)) if isinstance(ann, str) else ann  # noqa: S307
            except Exception:  # noqa: BLE001
                hints[name] = Any
        return hints


def parameters(fn) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """``(named parameters, their annotations, accepts **kwargs)`` of a function or class; for a
    class whose ``__init__`` forwards ``**kwargs`` to its parent, the parent's parameters too."""
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    if inspect.isclass(fn):
        chain = [c for c in fn.__mro__ if "__init__" in vars(c) and c is not object]
    else:
        chain = [fn]
    var_kw = False
    for obj in chain:
        try:
            sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
        except (TypeError, ValueError):
            return params, hints, True
        own_hints = type_hints(obj)
        var_kw = False
        for name, p in sig.parameters.items():
            if name == "self" or p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                var_kw = True
                continue
            if name not in params:
                # a parent's parameters are optional here: the child may pass them itself
                params[name] = p if obj is chain[0] else p.replace(default=None)
                hints[name] = own_hints.get(name, Any)
        if not var_kw:
            break
    return params, hints, var_kw


def closest(name: str, options: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return match[0] if match else None


def check_call(
    fn: Callable,
    kwargs: Mapping[str, Any],
    prefix: str,
    provided: Iterable[str] = (),
    partial: bool = False,
) -> None:
    """Check ``fn(**kwargs)`` before calling it: every key is a parameter (unless ``fn`` takes
    ``**kwargs``), every value fits its annotation, and every required parameter is given (by
    ``kwargs``, by the framework in ``provided``, or later for a ``partial``). Errors name
    ``prefix.key``."""
    params, hints, var_kw = parameters(fn)
    name = getattr(fn, "__qualname__", str(fn))
    for key, value in kwargs.items():
        if key.startswith("_") and key.endswith("_"):
            continue  # _target_, _partial_, ...
        if key not in params:
            if var_kw:
                continue
            own = [p for p in params if p not in set(provided)]
            hint = closest(key, own)
            raise ConfigError(
                f"{prefix}.{key} is not an option of {name}"
                + (f"; did you mean {prefix}.{hint}?" if hint else "")
                + f" (its options: {', '.join(own) or 'none'})"
            )
        check_value(value, hints.get(key, Any), f"{prefix}.{key}")
    if partial:
        return
    missing = [
        n
        for n, p in params.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and n not in kwargs
        and n not in set(provided)
    ]
    if missing:
        raise ConfigError(f"{prefix} ({name}) needs {', '.join(f'{prefix}.{m}' for m in missing)}")


def check_arguments(fn: Callable, values: Mapping[str, Any], prefix: str = "") -> None:
    """Check the arguments of a direct Python call against ``fn``'s annotations (ranges and
    choices), with the same messages a config value gets."""
    _, hints, _ = parameters(fn)
    for key, value in values.items():
        if key in hints:
            check_value(value, hints[key], f"{prefix}{key}")
