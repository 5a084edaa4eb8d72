"""The daemon's audit trail: one INFO line per call that changes or reveals an agent.

``opsfleet.daemon.rpc.audit`` logs who (certificate identity and address), what
(operation), on which agent, and the result, for OperateAgent, GetAgentLogs and PushUpdate.
Route that logger to its own file to keep the trail apart from the daemon's other logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opsfleet.common.errors import OpsfleetError
from opsfleet.common.rpc_errors import Ctx
from opsfleet.daemon.rpc.auth import caller_of

log = logging.getLogger(__name__)


def record(context: Ctx, operation: str, agent_id: str, result: str) -> None:
    log.info(
        "audit: caller=%s operation=%s agent=%r result=%s", caller_of(context), operation, agent_id, result
    )


@contextmanager
def audited(context: Ctx, operation: str, agent_id: str) -> Iterator[None]:
    """Log the call's outcome when the block ends: ``ok``, ``failed (Error: message)``, ``cancelled``."""
    try:
        yield
    except OpsfleetError as exc:
        record(context, operation, agent_id, f"failed ({type(exc).__name__}: {exc.message})")
        raise
    except asyncio.CancelledError:
        record(context, operation, agent_id, "cancelled")
        raise
    except BaseException as exc:
        record(context, operation, agent_id, f"error ({type(exc).__name__})")
        raise
    record(context, operation, agent_id, "ok")
