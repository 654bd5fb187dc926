"""Typed options, checked once: ranges and choices are stated in the signature of the code that
uses them (``eta: Annotated[float, Range(0, 1)]``, ``prediction: Literal["eps", ...]``), and the
same annotation checks a Python call, a config value and a user's plug-in.

Nothing here knows about Hydra: values are plain Python (what a composed config resolves to).
Checking a whole call against a target's signature is :mod:`ddpm.targets`.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key, the value and what is valid."""


@dataclass(frozen=True)
class Range:
    """A closed or half-open interval for a number: ``Range(0, 1)`` is [0, 1],
    ``Range(0, 1, hi_open=True)`` is [0, 1), ``Range(1)`` is ``>= 1``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v: float) -> bool:
        if isinstance(v, float) and math.isnan(v):
            return False
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"in {left}{_num(self.lo)}, {_num(self.hi)}{right}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return "any number"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


POSITIVE = Range(0, lo_open=True)
NON_NEGATIVE = Range(0)
UNIT = Range(0, 1)
PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, POSITIVE]
Probability = Annotated[float, UNIT]


# --- what a value must be -------------------------------------------------------------------------
def _strip(annotation) -> tuple[Any, list[Range]]:
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        return base, [m for m in meta if isinstance(m, Range)]
    return annotation, []


def _union_args(annotation) -> tuple | None:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return None


def _is_checkable(annotation) -> bool:
    """Annotations we can judge a plain value against; anything else (a class such as an
    ``nn.Module``, a callable) accepts any value and is left to the code itself."""
    base, _ = _strip(annotation)
    members = _union_args(base)
    if members is not None:
        return all(_is_checkable(m) for m in members)
    origin = get_origin(base)
    if origin is Literal:
        return True
    if origin in (list, tuple, Sequence, typing.Sequence, Iterable):
        return all(_is_checkable(a) for a in get_args(base) if a is not Ellipsis)
    if origin in (dict, Mapping, typing.Mapping):
        return True
    return base in (int, float, bool, str, type(None), Path, Any, dict, list, tuple)


def _matches(value, annotation) -> bool:
    base, ranges = _strip(annotation)
    members = _union_args(base)
    if members is not None:
        return any(_matches(value, m) for m in members)
    origin = get_origin(base)
    if base is Any:
        ok = True
    elif origin is Literal:
        ok = any(value == opt and type(value) is type(opt) for opt in get_args(base))
    elif base is type(None) or base is None:
        ok = value is None
    elif base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif base in (str, Path):
        ok = isinstance(value, str)
    elif origin in (list, tuple, Sequence, typing.Sequence, Iterable) or base in (list, tuple):
        args = [a for a in get_args(base) if a is not Ellipsis]
        ok = isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value if args)
    elif origin in (dict, Mapping, typing.Mapping) or base is dict:
        ok = isinstance(value, Mapping)
    else:
        ok = True  # not something a config value can be checked against
    return ok and all(value in r for r in ranges if isinstance(value, (int, float)))


def _describe(annotation) -> str:
    base, ranges = _strip(annotation)
    members = _union_args(base)
    if members is not None:
        parts = [_describe(m) for m in members if m is not type(None)]
        text = " or ".join(dict.fromkeys(parts))
        return text + (" or null" if type(None) in members else "")
    origin = get_origin(base)
    if origin is Literal:
        return "one of " + ", ".join(_show(o) for o in get_args(base))
    rng = f" {ranges[0].describe()}" if ranges else ""
    if base is bool:
        return "true or false"
    if base is int:
        return f"an integer{rng}"
    if base is float:
        return f"a number{rng}"
    if base in (str, Path):
        return "a string"
    if origin in (list, tuple, Sequence, typing.Sequence, Iterable) or base in (list, tuple):
        args = [a for a in get_args(base) if a is not Ellipsis]
        return f"a list of {_plural(_describe(args[0]))}" if args else "a list"
    if origin in (dict, Mapping, typing.Mapping) or base is dict:
        return "a mapping"
    return getattr(base, "__name__", str(base))


def _plural(text: str) -> str:
    for a in ("an integer", "a number", "a string"):
        if text.startswith(a):
            return a.split(" ", 1)[1] + "s" + text[len(a) :]
    return text


def _show(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def check_value(value, annotation, key: str):
    """Return ``value`` if it fits ``annotation``; otherwise raise :class:`ConfigError` naming
    ``key``, the value and what it must be."""
    if _is_checkable(annotation) and not _matches(value, annotation):
        base, _ = _strip(annotation)
        if get_origin(base) is Literal or (
            (m := _union_args(base)) and all(get_origin(a) is Literal or a is type(None) for a in m)
        ):
            raise ConfigError(f"{key}={value!r} is not valid; choose {_describe(annotation)}")
        raise ConfigError(f"{key}={value!r} is not valid; it must be {_describe(annotation)}")
    return value
