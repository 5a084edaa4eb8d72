"""Central configuration handed to daemons (GetConfig)."""

from __future__ import annotations

from opsfleet.common.errors import InvalidArgument
from opsfleet.manager.services.nodes import NodeService

CONFIG_TYPES = ("daemon", "agent")


class ConfigService:
    """Central config documents. None are managed yet, so every node gets an empty document."""

    def __init__(self, nodes: NodeService) -> None:
        self._nodes = nodes

    async def get(self, node_id: str, config_type: str) -> bytes:
        await self._nodes.ensure_known(node_id)
        kind = config_type or "daemon"
        if kind not in CONFIG_TYPES:
            raise InvalidArgument(
                f"config_type must be one of {', '.join(CONFIG_TYPES)}, got {config_type[:40]!r}"
            )
        return b""
