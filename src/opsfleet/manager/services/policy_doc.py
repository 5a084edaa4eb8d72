"""Policy documents and the merge rules of central configuration (pure: no I/O).

A policy is ``{name, selector, priority, config, rollout?, update?}``; ``config`` is a central
document (:mod:`opsfleet.common.central_config`). A node's effective central config is the
merge of every policy whose selector its labels include:

- ``agents`` merge by id; each policy's ``agent_defaults`` apply to that policy's agents
  only, so the effective document lists fully expanded agents and no ``agent_defaults``;
- ``collectors`` and ``manager`` merge key by key, down to the leaves;
- where two policies set the same agent id or leaf key, the higher ``priority`` wins;
  two policies of equal priority that could select the same node and set the same key to
  different values are refused when written (:func:`check_conflicts`).

``update`` pins package versions, ``{component: version}`` (``agent:<id>`` or ``daemon``):
a node's pins merge like the keys above (the higher priority wins; equal priorities that
may overlap and pin a component differently are refused), and the Manager keeps the nodes
the policy selects at those versions (:mod:`opsfleet.manager.services.pins`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsfleet.common.central_config import content_hash, to_yaml, validate_central
from opsfleet.common.daemon_schema import deep_merge
from opsfleet.common.errors import ConfigError as _ConfigError
from opsfleet.common.errors import Conflict, InvalidArgument
from opsfleet.common.signing import check_target

POLICY_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
POLICY_KEYS = ("name", "selector", "priority", "config", "rollout", "update")
ROLLOUT_KEYS = ("max_parallel", "pause_on_failure")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)%")
UPDATE_PREFIX = "update."


@dataclass(frozen=True)
class Rollout:
    """At most ``max_parallel`` nodes (or ``max_parallel_percent`` of the targets) at a time;
    halt when more than ``pause_on_failure`` percent of the nodes handed the revision failed."""

    max_parallel: int = 0
    max_parallel_percent: float = 0.0
    pause_on_failure: float = 100.0

    def window(self, targets: int) -> int:
        if self.max_parallel:
            return self.max_parallel
        return max(1, int(targets * self.max_parallel_percent / 100))


@dataclass(frozen=True)
class PolicyDoc:
    name: str
    selector: dict[str, str]
    priority: int
    config: dict[str, Any]
    rollout: dict[str, Any] | None = None
    update: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "selector": dict(self.selector),
            "priority": self.priority,
            "config": self.config,
        }
        if self.rollout:
            out["rollout"] = dict(self.rollout)
        if self.update:
            out["update"] = dict(self.update)
        return out

    @property
    def hash(self) -> str:
        return content_hash(self.as_dict())

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.selector.items())

    def rollout_spec(self) -> Rollout | None:
        return parse_rollout(self.rollout) if self.rollout else None


def _invalid(key: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"config key '{key}': {message}")


def _percent(value: Any, key: str) -> float | None:
    if isinstance(value, str):
        match = _PERCENT_RE.fullmatch(value.strip())
        if match is None:
            raise _invalid(key, f"expected a number or a percentage like '10%', got {value!r}")
        number = float(match.group(1))
        if not 0 < number <= 100:
            raise _invalid(key, "percentage must be in (0, 100]")
        return number
    return None


def parse_rollout(raw: Mapping[str, Any]) -> Rollout:
    for key in raw:
        if key not in ROLLOUT_KEYS:
            raise _invalid(f"rollout.{key}", "unknown key")
    spec = Rollout()
    if "max_parallel" in raw:
        value = raw["max_parallel"]
        pct = _percent(value, "rollout.max_parallel")
        if pct is not None:
            spec = Rollout(max_parallel_percent=pct)
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            spec = Rollout(max_parallel=value)
        else:
            raise _invalid("rollout.max_parallel", f"expected a positive integer or 'P%', got {value!r}")
    if "pause_on_failure" in raw:
        value = raw["pause_on_failure"]
        pct = _percent(value, "rollout.pause_on_failure")
        if pct is None:
            if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100:
                pct = float(value)
            else:
                raise _invalid("rollout.pause_on_failure", f"expected a percentage, got {value!r}")
        spec = Rollout(spec.max_parallel, spec.max_parallel_percent, pct)
    return spec


def parse_update(raw: Any) -> dict[str, str]:
    """``update``: a mapping of component (``agent:<id>`` or ``daemon``) to version."""
    if not isinstance(raw, Mapping):
        raise _invalid("update", "expected a mapping of component -> version, e.g. {'agent:web': '2.1'}")
    pins: dict[str, str] = {}
    for component, version in raw.items():
        key = f"update.{component}"
        if (
            not isinstance(component, str)
            or not isinstance(version, str | int | float)
            or isinstance(version, bool)
        ):
            raise _invalid(key, "expected a component name and a version string")
        try:
            check_target(component, str(version))
        except InvalidArgument as exc:
            raise _invalid(key, exc.message) from exc
        pins[component] = str(version)
    return pins


def parse_policy(raw: Any) -> PolicyDoc:
    """A validated policy; InvalidArgument naming the key otherwise."""
    if not isinstance(raw, Mapping):
        raise InvalidArgument("a policy must be a mapping with name, selector, priority, config")
    for key in raw:
        if key not in POLICY_KEYS:
            raise _invalid(str(key), f"unknown key (allowed: {', '.join(POLICY_KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not POLICY_NAME_RE.fullmatch(name):
        raise _invalid("name", "required, 1-64 characters of [A-Za-z0-9._-]")
    selector = raw.get("selector") or {}
    if not isinstance(selector, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
    ):
        raise _invalid("selector", "expected a mapping of label -> string value")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise _invalid("priority", f"expected an integer, got {priority!r}")
    config = raw.get("config") or {}
    try:
        validate_central(config, prefix="config")
    except _ConfigError as exc:
        raise InvalidArgument(str(exc)) from exc
    rollout = raw.get("rollout")
    if rollout is not None:
        if not isinstance(rollout, Mapping):
            raise _invalid("rollout", "expected a mapping")
        parse_rollout(rollout)
    update = parse_update(raw["update"]) if raw.get("update") is not None else None
    return PolicyDoc(
        name=name,
        selector=dict(selector),
        priority=priority,
        config=dict(config),
        rollout=dict(rollout) if rollout else None,
        update=update or None,
    )


def expanded_agents(doc: PolicyDoc) -> list[dict[str, Any]]:
    """The policy's agents with its ``agent_defaults`` merged in (as written, not defaulted)."""
    specs = validate_central(doc.config)
    given = {str(a["id"]): a for a in doc.config.get("agents") or []}
    defaults = doc.config.get("agent_defaults") or {}
    return [deep_merge(defaults, given[spec.id]) for spec in specs]


def _leaves(doc: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in doc.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, (*prefix, str(key)))
        else:
            yield (*prefix, str(key)), value


def _keys(doc: PolicyDoc) -> dict[str, Any]:
    """Every key the policy sets: ``agents[<id>]`` and dotted collector/manager leaves."""
    out: dict[str, Any] = {f"agents[{a['id']}]": a for a in expanded_agents(doc)}
    for section in ("collectors", "manager"):
        for path, value in _leaves(doc.config.get(section) or {}, (section,)):
            out[".".join(path)] = value
    for component, version in (doc.update or {}).items():
        out[f"{UPDATE_PREFIX}{component}"] = version
    return out


def may_overlap(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Could one node's labels include both selectors?"""
    return all(b.get(k, v) == v for k, v in a.items())


def check_conflicts(new: PolicyDoc, others: Sequence[PolicyDoc]) -> None:
    """Conflict when a policy of equal priority that may select the same nodes sets a key differently."""
    mine = _keys(new)
    for other in others:
        if other.name == new.name or other.priority != new.priority:
            continue
        if not may_overlap(new.selector, other.selector):
            continue
        theirs = _keys(other)
        for key, value in mine.items():
            if key in theirs and theirs[key] != value:
                name = key if key.startswith(UPDATE_PREFIX) else f"config.{key}"
                raise Conflict(
                    f"config key '{name}' is also set by policy {other.name!r} with the same "
                    f"priority {new.priority}; give one of them a higher priority"
                )


def merge(docs: Sequence[PolicyDoc]) -> dict[str, Any]:
    """The effective central document of the policies that select a node."""
    ordered = sorted(docs, key=lambda d: (d.priority, d.name))  # lowest first: later ones win
    agents: dict[str, dict[str, Any]] = {}
    sections: dict[str, dict[str, Any]] = {"collectors": {}, "manager": {}}
    for doc in ordered:
        for agent in expanded_agents(doc):
            agents.pop(str(agent["id"]), None)
            agents[str(agent["id"])] = agent
        for section, value in list(sections.items()):
            sections[section] = deep_merge(value, doc.config.get(section) or {})
    out: dict[str, Any] = {}
    if agents:
        out["agents"] = sorted(agents.values(), key=lambda a: str(a["id"]))
    for section, value in sections.items():
        if value:
            out[section] = value
    return out


def pins(docs: Sequence[PolicyDoc]) -> dict[str, tuple[str, str]]:
    """The versions pinned for a node: component -> (version, policy name); priority wins."""
    out: dict[str, tuple[str, str]] = {}
    for doc in sorted(docs, key=lambda d: (d.priority, d.name)):  # lowest first: later ones win
        for component, version in (doc.update or {}).items():
            out[component] = (version, doc.name)
    return out


def unified_diff(old: Any, new: Any, old_label: str, new_label: str) -> str:
    """A unified diff of two documents' YAML forms ("" when equal)."""
    a = to_yaml(old).splitlines(keepends=True) if old is not None else []
    b = to_yaml(new).splitlines(keepends=True) if new is not None else []
    return "".join(difflib.unified_diff(a, b, fromfile=old_label, tofile=new_label))
