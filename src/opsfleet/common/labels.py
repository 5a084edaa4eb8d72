"""The one label syntax opsfleet prints and reads: ``key=value``.

``key:value`` (the older filter syntax) is still read: label keys hold neither ``=`` nor ``:``,
so the first of the two characters ends the key.
"""

from __future__ import annotations


def split_label(item: str) -> tuple[str, str, str]:
    """(key, separator, value); the separator is "" when ``item`` has neither ``=`` nor ``:``."""
    cut = min((i for i in (item.find("="), item.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return item, "", ""
    return item[:cut], item[cut], item[cut + 1 :]


def format_labels(labels: dict[str, str] | None) -> str:
    """``a=1, b=2`` sorted by key; "" for none."""
    return ", ".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
