"""The REST API's view of the fleet: filtered, paged node lists, status counts, node deletion."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.labels import split_label
from opsfleet.common.validation import MAX_LABEL_KEY, MAX_LABEL_VALUE, check_node_id, check_text
from opsfleet.manager.changes import NODE_DELETED, Publish, publish_nowhere
from opsfleet.manager.domain import Node, NodeFilter, NodeStatus
from opsfleet.manager.services.nodes import NodeNotFound, NodeService
from opsfleet.manager.services.paging import Page, page_window
from opsfleet.manager.store.base import FleetQueries

log = logging.getLogger(__name__)

LABEL_KEY_RE = re.compile(rf"[A-Za-z0-9._/-]{{1,{MAX_LABEL_KEY}}}")
MAX_LABEL_FILTERS = 16
MAX_TEXT_FILTER = 128


def parse_label_filters(values: Iterable[str]) -> dict[str, str]:
    """``key=value`` items (each may also hold several, comma-separated) into a mapping;
    ``key:value`` is accepted too."""
    labels: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, val = split_label(item.strip())
            if not sep or not LABEL_KEY_RE.fullmatch(key) or len(val) > MAX_LABEL_VALUE:
                raise InvalidArgument(
                    f"label must be key=value with a key of [A-Za-z0-9._/-], got {item[:80]!r}"
                )
            labels[key] = check_text(f"label {key}", val, MAX_LABEL_VALUE)
    if len(labels) > MAX_LABEL_FILTERS:
        raise InvalidArgument(f"label: at most {MAX_LABEL_FILTERS} label filters")
    return labels


def make_filter(status: str | None, labels: Iterable[str], text: str, ref: str = "") -> NodeFilter:
    parsed_status = None
    if status:
        try:
            parsed_status = NodeStatus(status)
        except ValueError:
            raise InvalidArgument("status must be online or offline") from None
    check_text("q", text, MAX_TEXT_FILTER)
    check_text("ref", ref, MAX_TEXT_FILTER)
    return NodeFilter(
        status=parsed_status, labels=parse_label_filters(labels), text=text.strip(), ref=ref.strip()
    )


class FleetService:
    def __init__(self, queries: FleetQueries, nodes: NodeService) -> None:
        self.publish: Publish = publish_nowhere
        """Tells the other Manager replicas (opsfleet.manager.changes); set by the app."""
        self._queries = queries
        self._nodes = nodes

    async def list_nodes(self, flt: NodeFilter, page: int, page_size: int) -> Page[Node]:
        """One page of the matching nodes. With ``flt.ref``: the node whose id is exactly the
        ref when there is one (an id wins over longer ids it prefixes), else every node whose
        id starts with it or whose hostname is it."""
        offset, limit = page_window(page, page_size)
        if flt.ref and (exact := await self._nodes.find(flt.ref)) is not None:
            return Page([exact] if offset == 0 else [], page, page_size, 1)
        nodes, total = await self._queries.page_nodes(flt, offset, limit)
        return Page(nodes, page, page_size, total)

    async def statistics(self) -> dict[str, int]:
        counts = await self._queries.count_nodes_by_status()
        online = counts.get(NodeStatus.ONLINE.value, 0)
        offline = counts.get(NodeStatus.OFFLINE.value, 0)
        return {"total": sum(counts.values()), "online": online, "offline": offline}

    async def delete_node(self, node_id: str) -> None:
        """Delete the node with its agents, events and metric samples; it may register again later.

        The agent operations history and the audit log keep their entries."""
        check_node_id(node_id)
        deleted = await self._queries.delete_node(node_id)
        self._nodes.forget(node_id)
        if not deleted:
            raise NodeNotFound(f"node {node_id} is not registered")
        await self.publish(NODE_DELETED, node_id)
        log.info("node %s deleted with its agents, events and metric samples", node_id)
