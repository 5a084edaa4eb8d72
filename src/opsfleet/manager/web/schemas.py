"""Request bodies (validated by pydantic; a violation is a 400 naming the field) and the JSON
shapes of domain objects in responses. Times of records are RFC3339; metric sample times are
Unix seconds, as reported by the daemons."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsfleet.manager.domain import (
    Agent,
    AuditEntry,
    LiveAgent,
    MetricBucket,
    MetricSample,
    Node,
    NodeEvent,
    OperationRecord,
    ResourcePoint,
    User,
)
from opsfleet.manager.services.metric_queries import NodeUsage
from opsfleet.manager.web.envelope import rfc3339


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=256)


class LoginBody(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class ChangePasswordBody(Body):
    old_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=128)


class CreateUserBody(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    role: str = Field(default="viewer", max_length=16)


class RoleBody(Body):
    role: str = Field(max_length=16)


class OperateBody(Body):
    operation: str = Field(max_length=16, description="start, stop or restart")


class BulkOperateBody(Body):
    operation: str = Field(max_length=16, description="start, stop or restart")
    selector: list[str] = Field(
        default_factory=list, max_length=16, description="node labels key=value; all must match"
    )
    all_nodes: bool = Field(default=False, description="every node with the agent (no selector)")
    max_parallel: int = Field(default=5, ge=1, le=100, description="nodes operated at the same time")
    dry_run: bool = Field(default=False, description="only list the nodes that would be operated")


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role.value,
        "disabled": user.disabled,
        "created_at": rfc3339(user.created_at),
        "updated_at": rfc3339(user.updated_at),
        "last_login_at": rfc3339(user.last_login_at) if user.last_login_at is not None else None,
    }


def node_json(node: Node) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "hostname": node.hostname,
        "ip": node.ip,
        "os": node.os,
        "arch": node.arch,
        "labels": node.labels,
        "status": node.status.value,
        "daemon_version": node.daemon_version,
        "agent_version": node.agent_version,
        "daemon_address": node.daemon_address,
        "registered_at": rfc3339(node.registered_at),
        "last_seen_at": rfc3339(node.last_seen_at),
    }


def event_json(event: NodeEvent) -> dict[str, Any]:
    return {"kind": event.kind.value, "at": rfc3339(event.at), "detail": event.detail}


def sample_json(sample: MetricSample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {"type": sample.type, "timestamp": sample.timestamp, "values": sample.values}


def bucket_json(bucket: MetricBucket) -> dict[str, Any]:
    return {"timestamp": bucket.timestamp, "values": bucket.values, "samples": bucket.samples}


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "node_id": agent.node_id,
        "type": agent.type,
        "version": agent.version,
        "status": agent.status,
        "pid": agent.pid,
        "last_heartbeat": agent.last_heartbeat,
        "last_sync_at": rfc3339(agent.last_sync_at),
        "restart_count": agent.restart_count,
    }


def live_agent_json(agent: LiveAgent) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "type": agent.type,
        "version": agent.version,
        "status": agent.status,
        "pid": agent.pid,
        "start_time": agent.start_time,
        "restart_count": agent.restart_count,
        "last_heartbeat": agent.last_heartbeat,
    }


def operation_json(record: OperationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "node_id": record.node_id,
        "agent_id": record.agent_id,
        "operation": record.operation,
        "username": record.username,
        "requested_at": rfc3339(record.requested_at),
        "finished_at": rfc3339(record.finished_at),
        "success": record.success,
        "error": record.error,
    }


def point_json(point: ResourcePoint) -> dict[str, Any]:
    return {
        "timestamp": point.timestamp,
        "cpu": point.cpu,
        "memory_rss": point.memory_rss,
        "memory_vms": point.memory_vms,
        "disk_read_bytes": point.disk_read_bytes,
        "disk_write_bytes": point.disk_write_bytes,
        "open_files": point.open_files,
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": rfc3339(entry.at),
        "username": entry.username,
        "action": entry.action,
        "target": entry.target,
        "result": entry.result,
        "status": entry.status,
        "code": entry.code,
        "source_ip": entry.source_ip,
        "detail": entry.detail,
    }


def usage_json(row: NodeUsage) -> dict[str, Any]:
    return {
        "node_id": row.node_id,
        "hostname": row.hostname,
        "status": row.status.value,
        "cpu": row.usage.get("cpu"),
        "memory": row.usage.get("memory"),
        "disk": row.usage.get("disk"),
        "updated_at": row.updated_at,
    }
