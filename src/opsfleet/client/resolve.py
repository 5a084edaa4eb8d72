"""How every command that takes a node finds it: by exact id, unique id prefix or hostname.

The Manager matches (``GET /api/v1/nodes?ref=``: an exact id wins, else ids starting with
the ref and nodes with that hostname); this module turns the answer into one node id, a
NotFound (exit 6), or an :class:`AmbiguousNode` usage error (exit 2) that lists the
candidates by hostname and short id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opsfleet.client.api import ApiClient
from opsfleet.client.errors import UsageError
from opsfleet.common.errors import NotFound

SHORT_ID = 8
MAX_LISTED = 20


class AmbiguousNode(UsageError):
    """The node reference matches more than one node."""


def short_ids(node_ids: Sequence[str], minimum: int = SHORT_ID) -> dict[str, str]:
    """Each id cut to the shortest prefix (at least ``minimum``) no other id of ``node_ids`` shares."""
    out: dict[str, str] = {}
    for node_id in node_ids:
        size = minimum
        while size < len(node_id) and any(
            other != node_id and other.startswith(node_id[:size]) for other in node_ids
        ):
            size += 1
        out[node_id] = node_id[:size]
    return out


def describe(nodes: Sequence[dict[str, Any]]) -> list[str]:
    """``hostname (short id)`` per node, in the order given."""
    shorts = short_ids([n["node_id"] for n in nodes])
    return [f"{n.get('hostname') or '?'} ({shorts[n['node_id']]})" for n in nodes]


def resolve_node(api: ApiClient, ref: str) -> str:
    """The id of the one node ``ref`` names."""
    data = api.list_nodes(ref=ref, page_size=MAX_LISTED)
    found: list[dict[str, Any]] = data.get("list", [])
    total = int(data.get("page_info", {}).get("total", len(found)))
    if total == 1 and found:
        return str(found[0]["node_id"])
    if total == 0:
        raise NotFound(f"no node has the id, id prefix or hostname {ref!r} (see `opsfleet nodes list`)")
    listed = "\n".join(f"  {line}" for line in describe(found))
    more = f"\n  ... and {total - len(found)} more" if total > len(found) else ""
    raise AmbiguousNode(
        f"{ref!r} names {total} nodes; use a longer id prefix or the full id:\n{listed}{more}"
    )
