"""The one HTTP seam of the client: a typed, synchronous wrapper of the Manager's ``/api/v1``.

Every method returns the envelope's ``data`` and raises the error tree for anything else:
an error answer becomes the error class of its HTTP status (message: the server's message,
then ``(status, code N)``), a network failure becomes Unavailable, a timeout
DeadlineExceeded. Tests inject an ``httpx.MockTransport`` or talk to a real Manager.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from opsfleet.client.errors import error_for_status
from opsfleet.common.errors import DeadlineExceeded, Internal, Unavailable

JsonObject = dict[str, Any]
Operation = Literal["start", "stop", "restart"]
Role = Literal["viewer", "operator", "admin"]

API = "/api/v1"
DEFAULT_TIMEOUT = 30.0
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


def _reason(exc: httpx.HTTPError) -> str:
    text = _ERRNO.sub("", str(exc)).strip() or type(exc).__name__
    return text[0].lower() + text[1:]


class ApiClient:
    """A session with one Manager. Not thread-safe; ``close()`` (or ``with``) releases the connection."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=server, headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content: Iterator[bytes] | None = None,
    ) -> Any:
        headers = {"Content-Type": "application/octet-stream"} if content is not None else None
        try:
            response = self._http.request(
                method, API + path, params=params, json=body, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise DeadlineExceeded(
                f"{self.server} did not answer {method} {API}{path} within {self.timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach {self.server}: {_reason(exc)}") from exc
        return self._decode(response, method, path)

    def _decode(self, response: httpx.Response, method: str, path: str) -> Any:
        status = response.status_code
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or "code" not in envelope:
            what = f"{method} {API}{path} answered HTTP {status} without an opsfleet envelope"
            hint = f"is {self.server} an opsfleet Manager's REST API?"
            if status >= 400:
                raise error_for_status(status, f"{what} ({hint})")
            raise Internal(f"{what} ({hint})")
        code = envelope.get("code")
        if status >= 400 or code != 0:
            message = f"{envelope.get('message') or 'error'} ({status}, code {code})"
            retry = response.headers.get("Retry-After")
            raise error_for_status(
                status if status >= 400 else 500,
                message,
                retry_after=float(retry) if retry and retry.isdigit() else None,
            )
        return envelope.get("data")

    # -- auth ------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> JsonObject:
        """``{token, token_type, expires_at, user}``."""
        data: JsonObject = self._call(
            "POST", "/auth/login", body={"username": username, "password": password}
        )
        return data

    def logout(self) -> JsonObject:
        """Revoke the token this client carries (on the server, until it would have expired)."""
        data: JsonObject = self._call("POST", "/auth/logout")
        return data

    def profile(self) -> JsonObject:
        data: JsonObject = self._call("GET", "/auth/profile")
        return data

    def change_password(self, old_password: str, new_password: str) -> JsonObject:
        """A new ``{token, ..., user}``; every older token of the user stops working."""
        data: JsonObject = self._call(
            "POST",
            "/auth/change-password",
            body={"old_password": old_password, "new_password": new_password},
        )
        return data

    # -- nodes -----------------------------------------------------------------------------

    def list_nodes(
        self,
        *,
        status: str | None = None,
        labels: list[str] | None = None,
        search: str = "",
        ref: str = "",
        page: int = 1,
        page_size: int = 20,
    ) -> JsonObject:
        """``{list, page_info}``; ``ref`` keeps the nodes an operator may mean (see resolve.py)."""
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if ref:
            params["ref"] = ref
        if status:
            params["status"] = status
        if labels:
            params["label"] = labels
        if search:
            params["q"] = search
        data: JsonObject = self._call("GET", "/nodes", params=params)
        return data

    def node(self, node_id: str) -> JsonObject:
        data: JsonObject = self._call("GET", f"/nodes/{_seg(node_id)}")
        return data

    def node_events(self, node_id: str, limit: int = 100) -> JsonObject:
        data: JsonObject = self._call("GET", f"/nodes/{_seg(node_id)}/events", params={"limit": limit})
        return data

    def node_statistics(self) -> JsonObject:
        """``{statistics: {total, online, offline}}``."""
        data: JsonObject = self._call("GET", "/nodes/statistics")
        return data

    # -- agents ----------------------------------------------------------------------------

    def agents(self, node_id: str) -> JsonObject:
        """The stored agents ``{agents, count}``."""
        data: JsonObject = self._call("GET", f"/nodes/{_seg(node_id)}/agents")
        return data

    def sync_agents(self, node_id: str) -> JsonObject:
        """The daemon's agents right now ``{agents, count}`` (the Manager stores them too)."""
        data: JsonObject = self._call("POST", f"/nodes/{_seg(node_id)}/agents/sync")
        return data

    def operate(self, node_id: str, agent_id: str, operation: Operation) -> JsonObject:
        """The operation record ``{id, ..., success, error}``."""
        path = f"/nodes/{_seg(node_id)}/agents/{_seg(agent_id)}/operate"
        data: JsonObject = self._call("POST", path, body={"operation": operation})
        return data

    def agent_logs(self, node_id: str, agent_id: str, lines: int = 100, filter_text: str = "") -> JsonObject:
        """``{agent_id, lines, count}``."""
        params: dict[str, Any] = {"lines": lines}
        if filter_text:
            params["filter"] = filter_text
        path = f"/nodes/{_seg(node_id)}/agents/{_seg(agent_id)}/logs"
        data: JsonObject = self._call("GET", path, params=params)
        return data

    def agent_metrics(self, node_id: str, agent_id: str, duration: int = 3600) -> JsonObject:
        """``{agent_id, data_points, count}``."""
        path = f"/nodes/{_seg(node_id)}/agents/{_seg(agent_id)}/metrics"
        data: JsonObject = self._call("GET", path, params={"duration": duration})
        return data

    def operations(self, node_id: str, agent_id: str | None = None, limit: int = 100) -> JsonObject:
        """``{operations, count}``, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if agent_id:
            params["agent_id"] = agent_id
        data: JsonObject = self._call("GET", f"/nodes/{_seg(node_id)}/agents/operations", params=params)
        return data

    def fleet_agents(
        self,
        *,
        agent_id: str = "",
        agent_type: str = "",
        state: str = "",
        selector: list[str] | None = None,
        search: str = "",
        page: int = 1,
        page_size: int = 20,
    ) -> JsonObject:
        """Agents across the fleet ``{list, page_info}``, each with its node's hostname and labels."""
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        for key, value in (("agent_id", agent_id), ("type", agent_type), ("state", state), ("q", search)):
            if value:
                params[key] = value
        if selector:
            params["selector"] = selector
        data: JsonObject = self._call("GET", "/agents", params=params)
        return data

    def bulk_operate(
        self,
        agent_id: str,
        operation: Operation,
        *,
        selector: list[str],
        all_nodes: bool = False,
        max_parallel: int = 5,
        dry_run: bool = False,
    ) -> JsonObject:
        """``{results: [{node_id, hostname, success, error, status, pid}], succeeded, failed}``."""
        body = {
            "operation": operation,
            "selector": selector,
            "all_nodes": all_nodes,
            "max_parallel": max_parallel,
            "dry_run": dry_run,
        }
        data: JsonObject = self._call("POST", f"/agents/{_seg(agent_id)}/operate", body=body)
        return data

    def events(
        self,
        *,
        node_id: str = "",
        kinds: list[str] | None = None,
        since: str = "",
        page: int = 1,
        page_size: int = 20,
    ) -> JsonObject:
        """Node events across the fleet, newest first ``{list, page_info}``."""
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if node_id:
            params["node_id"] = node_id
        if kinds:
            params["kind"] = kinds
        if since:
            params["since"] = since
        data: JsonObject = self._call("GET", "/events", params=params)
        return data

    # -- metrics ---------------------------------------------------------------------------

    def latest_metrics(self, node_id: str) -> JsonObject:
        """``{cpu, memory, disk, network}``, each ``{type, timestamp, values}`` or None."""
        data: JsonObject = self._call("GET", f"/metrics/nodes/{_seg(node_id)}/latest")
        return data

    def metric_summary(self, node_id: str, duration: str = "1h") -> JsonObject:
        data: JsonObject = self._call(
            "GET", f"/metrics/nodes/{_seg(node_id)}/summary", params={"duration": duration}
        )
        return data

    def metric_history(
        self, node_id: str, metric_type: str, start_time: str | None = None, end_time: str | None = None
    ) -> JsonObject:
        """Raw points up to 6 h, bucket averages beyond; times are RFC3339 with an offset."""
        params = {k: v for k, v in (("start_time", start_time), ("end_time", end_time)) if v}
        path = f"/metrics/nodes/{_seg(node_id)}/{_seg(metric_type)}/history"
        data: JsonObject = self._call("GET", path, params=params)
        return data

    def cluster_overview(self) -> JsonObject:
        data: JsonObject = self._call("GET", "/metrics/cluster/overview")
        return data

    # -- admin -----------------------------------------------------------------------------

    def list_users(self, page: int = 1, page_size: int = 20) -> JsonObject:
        data: JsonObject = self._call("GET", "/admin/users", params={"page": page, "page_size": page_size})
        return data

    def create_user(self, username: str, password: str, role: Role = "viewer") -> JsonObject:
        data: JsonObject = self._call(
            "POST", "/admin/users", body={"username": username, "password": password, "role": role}
        )
        return data

    def set_user_disabled(self, user_id: int, disabled: bool) -> JsonObject:
        action = "disable" if disabled else "enable"
        data: JsonObject = self._call("POST", f"/admin/users/{user_id}/{action}")
        return data

    def set_user_role(self, user_id: int, role: Role) -> JsonObject:
        data: JsonObject = self._call("PUT", f"/admin/users/{user_id}/role", body={"role": role})
        return data

    # -- policies (central configuration) ----------------------------------------------------

    def apply_policy(self, document: JsonObject) -> JsonObject:
        """Create or update; the current revision plus ``changed`` and ``diff``."""
        data: JsonObject = self._call("POST", "/policies", body=document)
        return data

    def policies(self) -> JsonObject:
        data: JsonObject = self._call("GET", "/policies")
        return data

    def policy(self, name: str) -> JsonObject:
        data: JsonObject = self._call("GET", f"/policies/{_seg(name)}")
        return data

    def policy_revisions(self, name: str) -> JsonObject:
        data: JsonObject = self._call("GET", f"/policies/{_seg(name)}/revisions")
        return data

    def policy_diff(self, name: str, old: int, new: int) -> JsonObject:
        params = {"from": old, "to": new}
        data: JsonObject = self._call("GET", f"/policies/{_seg(name)}/diff", params=params)
        return data

    def rollback_policy(self, name: str, revision: int) -> JsonObject:
        path = f"/policies/{_seg(name)}/rollback"
        data: JsonObject = self._call("POST", path, body={"revision": revision})
        return data

    def delete_policy(self, name: str) -> JsonObject:
        data: JsonObject = self._call("DELETE", f"/policies/{_seg(name)}")
        return data

    def policy_status(self, name: str) -> JsonObject:
        data: JsonObject = self._call("GET", f"/policies/{_seg(name)}/status")
        return data

    def resume_policy(self, name: str) -> JsonObject:
        data: JsonObject = self._call("POST", f"/policies/{_seg(name)}/resume")
        return data

    def node_config(self, node_id: str) -> JsonObject:
        data: JsonObject = self._call("GET", f"/nodes/{_seg(node_id)}/config")
        return data

    # -- artifacts -------------------------------------------------------------------------

    def upload_artifact(
        self, path: Path, *, component: str, version: str, signature: str = "", chunk: int = 1024 * 1024
    ) -> JsonObject:
        """Stream the file at ``path`` as the request body (never read whole into memory)."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as stream:
                while block := stream.read(chunk):
                    yield block

        params = {"component": component, "version": version, "filename": path.name, "signature": signature}
        data: JsonObject = self._call("POST", "/artifacts", params=params, content=chunks())
        return data

    def list_artifacts(self, component: str | None = None) -> JsonObject:
        data: JsonObject = self._call(
            "GET", "/artifacts", params={"component": component} if component else None
        )
        return data

    def artifact(self, artifact_id: int) -> JsonObject:
        data: JsonObject = self._call("GET", f"/artifacts/{artifact_id}")
        return data

    def delete_artifact(self, artifact_id: int) -> JsonObject:
        data: JsonObject = self._call("DELETE", f"/artifacts/{artifact_id}")
        return data

    # -- rollouts --------------------------------------------------------------------------

    def start_rollout(self, body: JsonObject) -> JsonObject:
        data: JsonObject = self._call("POST", "/rollouts", body=body)
        return data

    def list_rollouts(self, limit: int = 100) -> JsonObject:
        data: JsonObject = self._call("GET", "/rollouts", params={"limit": limit})
        return data

    def rollout(self, rollout_id: int) -> JsonObject:
        data: JsonObject = self._call("GET", f"/rollouts/{rollout_id}")
        return data

    def rollout_action(self, rollout_id: int, action: Literal["pause", "resume", "cancel"]) -> JsonObject:
        data: JsonObject = self._call("POST", f"/rollouts/{rollout_id}/{action}")
        return data

    # -- enrollment tokens -----------------------------------------------------------------

    def create_enrollment_token(self, max_uses: int, expires_in: int, labels: dict[str, str]) -> JsonObject:
        data: JsonObject = self._call(
            "POST",
            "/enrollment-tokens",
            body={"max_uses": max_uses, "expires_in": expires_in, "labels": labels},
        )
        return data

    def enrollment_tokens(self) -> JsonObject:
        data: JsonObject = self._call("GET", "/enrollment-tokens")
        return data

    def revoke_enrollment_token(self, token_id: str) -> JsonObject:
        data: JsonObject = self._call("DELETE", f"/enrollment-tokens/{_seg(token_id)}")
        return data

    # -- alerts ----------------------------------------------------------------------------

    def alerts(self, params: dict[str, Any]) -> JsonObject:
        data: JsonObject = self._call("GET", "/alerts", params=params)
        return data

    def alert_action(self, alert_id: int, action: Literal["ack", "silence"], body: Any = None) -> JsonObject:
        data: JsonObject = self._call("POST", f"/alerts/{alert_id}/{action}", body=body)
        return data


def _seg(value: str) -> str:
    """``value`` as one URL path segment (a node id with ``/`` must not change the route)."""
    return quote(value, safe="")
