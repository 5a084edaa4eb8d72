"""Typed config sections as frozen dataclasses, validated from YAML data without a schema library.

The daemon's config (:mod:`opsfleet.common.daemon_schema`) is written with this module so a
daemon never loads pydantic (about 13 MiB of a node's memory). A section is a
``@dataclass(frozen=True, kw_only=True)`` whose fields carry their limits in
``field(metadata=rule(...))``; :func:`parse` checks a mapping against it:

* every key must be a field (``unknown key``), every field without a default must be there
  (``required``);
* values are checked against the field's type: ``int`` takes integers, integral floats and
  integer text (``"9090"``), ``float`` numbers and number text, ``bool`` booleans, 0/1 and
  yes/no words (what pydantic's lax mode took, so files written for it keep loading),
  ``str`` strings only, ``Literal`` one of its values, lists and maps their item types,
  nested sections mappings; durations (``rule(duration=True)``) take ``30s``, ``5m``,
  ``1h`` or seconds;
* then the rule's limits (``ge``, ``gt``, ``le``, ``min_length``) and its ``check``.

All failures of one call are collected and raised as one :class:`ConfigError`, one
``config key '<dotted key>': <reason>`` per failure, joined by ``"; "``. A ``check`` raises
ValueError or InvalidArgument for a failure that names the field's key; a ConfigError it
raises is passed through as it is.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from opsfleet.common.durations import parse_duration
from opsfleet.common.errors import ConfigError, InvalidArgument

T = TypeVar("T")

_RULE = "opsfleet.rule"

# What pydantic's lax mode took for these types (the schema was pydantic before): a quoted
# number or a yes/no word in a daemon.yaml or a stored central policy keeps loading.
_BOOLS = {
    **dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
    **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False),
}
_INT_TEXT = re.compile(r"[+-]?\d+")
_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Rule:
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    min_length: int | None = None
    duration: bool = False
    check: Callable[[Any], Any] | None = None


def rule(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    duration: bool = False,
    check: Callable[[Any], Any] | None = None,
) -> dict[str, Rule]:
    """Field metadata: ``field(default=..., metadata=rule(gt=0))``."""
    return {_RULE: Rule(ge=ge, gt=gt, le=le, min_length=min_length, duration=duration, check=check)}


def is_section(tp: object) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def leaf_paths(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Key paths of every non-section field, nested sections walked (for environment names)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if is_section(tp):
            yield from leaf_paths(tp, (*prefix, f.name))
        else:
            yield (*prefix, f.name)


class _Errors:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, key: str, reason: str) -> None:
        self.lines.append(f"config key '{key}': {reason}")


def parse(cls: type[T], data: Any, key: str = "") -> T:
    """``data`` validated into section ``cls``; ``key`` prefixes the keys named in errors."""
    errors = _Errors()
    value = _section(cls, data, key, errors)
    if errors.lines:
        raise ConfigError("; ".join(errors.lines))
    return typing.cast(T, value)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _section(cls: type, data: Any, key: str, errors: _Errors) -> Any:
    if not isinstance(data, Mapping):
        errors.add(key or "(top level)", f"expected a mapping, got {_shown(data)}")
        return None
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    failed = False
    for name in data:
        if name not in fields:
            errors.add(_join(key, str(name)), "unknown key")
            failed = True
    for name, f in fields.items():
        sub = _join(key, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.add(sub, "required")
                failed = True
            continue
        before = len(errors.lines)
        converted = _field(hints[name], f.metadata.get(_RULE), data[name], sub, errors)
        if len(errors.lines) > before:
            failed = True
        else:
            values[name] = converted
    return None if failed else cls(**values)


def _field(tp: Any, spec: Rule | None, value: Any, key: str, errors: _Errors) -> Any:
    if spec is not None and spec.duration:
        try:
            converted = parse_duration(value)
        except ValueError as exc:
            errors.add(key, str(exc))
            return None
    else:
        before = len(errors.lines)
        converted = _value(tp, value, key, errors)
        if len(errors.lines) > before:
            return None
    if spec is None:
        return converted
    reason = _limits(spec, converted)
    if reason is None and spec.check is not None:
        try:
            converted = spec.check(converted)
        except (ValueError, InvalidArgument) as exc:
            reason = str(exc)
    if reason is not None:
        errors.add(key, reason)
    return converted


def _limits(spec: Rule, value: Any) -> str | None:
    if spec.ge is not None and value < spec.ge:
        return f"must be greater than or equal to {spec.ge:g}"
    if spec.gt is not None and value <= spec.gt:
        return f"must be greater than {spec.gt:g}"
    if spec.le is not None and value > spec.le:
        return f"must be less than or equal to {spec.le:g}"
    if spec.min_length is not None and len(value) < spec.min_length:
        return "must not be empty" if spec.min_length == 1 else f"must have at least {spec.min_length} items"
    return None


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        *rest, last = (repr(a) for a in get_args(tp))
        return f"one of {', '.join(rest)} or {last}" if rest else last
    if origin is list:
        return "a list"
    if origin is dict or is_section(tp):
        return "a mapping"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    return str(tp)


def _value(tp: Any, value: Any, key: str, errors: _Errors) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if is_section(tp):
        return _section(tp, value, key, errors)
    if origin in (Union, types.UnionType):
        arms = get_args(tp)
        if value is None and type(None) in arms:
            return None
        for arm in arms:
            if arm is type(None):
                continue
            trial = _Errors()
            converted = _value(arm, value, key, trial)
            if not trial.lines:
                return converted
        errors.add(key, f"expected {_describe(tp)}, got {_shown(value)}")
        return None
    if origin is Literal:
        if isinstance(value, str | int) and value in get_args(tp):
            return value
    elif origin is list:
        if isinstance(value, list | tuple):
            (item,) = get_args(tp)
            return [_value(item, v, f"{key}[{i}]", errors) for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, Mapping):
            key_tp, item_tp = get_args(tp)
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if key_tp is str and not isinstance(k, str):
                    errors.add(f"{key}.{k}", f"keys must be strings, got {_shown(k)}")
                    continue
                out[k] = _value(item_tp, v, _join(key, str(k)), errors)
            return out
    elif tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | str) and str(value).strip().lower() in _BOOLS:
            return _BOOLS[str(value).strip().lower()]
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            return int(value.strip())
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value.strip())
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"config field type {tp!r} is not supported")
    errors.add(key, f"expected {_describe(tp)}, got {_shown(value)}")
    return None
