"""Prometheus names for stored samples: ``opsfleet_<type>_<key>`` with the node's labels.

Pure functions, no I/O. Metric names keep to ``[a-zA-Z_][a-zA-Z0-9_]*`` (the colon is left to
recording rules), label names to ``[a-zA-Z_][a-zA-Z0-9_]*`` without the reserved ``__`` prefix;
every other character becomes ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from opsfleet.manager.export.settings import RESERVED_LABELS

METRIC_PREFIX = "opsfleet_"
NAME_LABEL = "__name__"
EXPORTED_PREFIX = "exported_"

Labels = tuple[tuple[str, str], ...]
"""Label pairs sorted by name, as remote write requires."""

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(type_: str, key: str) -> str:
    """``opsfleet_<type>_<key>``: ``("cpu", "usage_percent")`` is ``opsfleet_cpu_usage_percent``."""
    return METRIC_PREFIX + _INVALID.sub("_", f"{type_}_{key}")


def label_name(name: str) -> str:
    """A valid, non-reserved label name for a node label's key."""
    clean = _INVALID.sub("_", name) or "_"
    if clean[0].isdigit():
        clean = "_" + clean
    if clean.startswith("__"):
        clean = "label" + clean
    return clean


def node_labels(
    node_id: str, hostname: str, labels: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> Labels:
    """The labels of every series of one node, sorted by name (without ``__name__``).

    ``node_id`` and ``hostname`` always come from the node; a node label with one of those
    names is exported as ``exported_<name>``. When two node labels sanitise to the same name
    the first in key order wins. ``extra`` labels (validated config) apply where the node has
    no label of that name, as Prometheus' external labels do. Empty values are left out.
    """
    out: dict[str, str] = {"node_id": node_id}
    if hostname:
        out["hostname"] = hostname
    for key in sorted(labels):
        value = labels[key]
        if not value:
            continue
        name = label_name(key)
        if name in RESERVED_LABELS:
            name = EXPORTED_PREFIX + name
        out.setdefault(name, value)
    for name, value in (extra or {}).items():
        out.setdefault(name, value)
    return tuple(sorted(out.items()))


def with_name(name: str, labels: Labels) -> Labels:
    """``labels`` plus ``__name__``, still sorted (a label like ``Env`` sorts before ``__name__``)."""
    return tuple(sorted(((NAME_LABEL, name), *labels)))
