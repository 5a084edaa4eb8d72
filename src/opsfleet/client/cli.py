"""Registers the client's top-level commands (login, nodes, agents, metrics, policies, tokens, ...)."""

from __future__ import annotations

from typing import Any

from opsfleet.client.commands import (
    agents,
    alerts,
    artifacts,
    auth,
    events,
    metrics,
    nodes,
    policies,
    rollouts,
    tokens,
    users,
)
from opsfleet.client.dispatch import common_options


def add_parsers(sub: Any) -> None:
    """Add the client commands to the ``opsfleet`` subparsers ``sub``."""
    parents = [common_options()]
    for module in (
        auth,
        nodes,
        agents,
        events,
        metrics,
        policies,
        users,
        tokens,
        artifacts,
        rollouts,
        alerts,
    ):
        module.register(sub, parents)
