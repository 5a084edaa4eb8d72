"""Install an agent update: verify first, then fetch, unpack, switch, restart, watch, roll back.

``accept()`` checks everything that can be checked from the request alone (target, hash,
signature against ``update.trusted_keys`` and the fleet keys handed over at enrollment,
inline package hash) and raises before anything on
the node changes; it then starts the install as an owned background task and returns. The
task's progress and outcome are in :meth:`UpdateManager.statuses` (served by GetUpdateStatus)
and the agent's ``version`` (ListAgents / SyncAgentStates) is the version that runs.

Fetching: inline data; else, on an enrolled daemon (``source`` given), FetchArtifact over the
node's mTLS channel, falling back to ``download_url`` only when the Manager does not hold the
package (NotFound); else the download URL.

Watching: after the restart the agent must reach running and stay running, without a
restart (a failed health check restarts it), for ``grace_period``. Otherwise the previous
version is made current again and the agent restarted with it: ``rolled_back``.

Lifecycle: ``stop()`` cancels an install in progress (the status says ``failed``) and is
idempotent; call it before the supervisor stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from opsfleet.common.errors import FailedPrecondition, InvalidArgument, NotFound, OpsfleetError
from opsfleet.common.lifecycle import TaskOwner
from opsfleet.common.signing import SHA256_RE, Verifier, check_target
from opsfleet.daemon.http_client import LazyHttpClient
from opsfleet.daemon.supervisor.config import AgentSpec
from opsfleet.daemon.supervisor.states import AgentStatus, AgentView
from opsfleet.daemon.updates import fleet_keys, package, selfupdate, specs
from opsfleet.daemon.updates.config import UpdateSection
from opsfleet.daemon.updates.status import StatusBook, UpdateState, UpdateStatus
from opsfleet.daemon.updates.versions import VersionStore

log = logging.getLogger(__name__)

WATCH_POLL = 0.1
SELF = selfupdate.COMPONENT
_DOWN = frozenset({AgentStatus.BACKOFF, AgentStatus.FAILED, AgentStatus.STOPPED})


class AgentSwitch(Protocol):
    """What the installer needs from the supervisor (``Supervisor`` is the real one)."""

    def agent(self, agent_id: str) -> AgentView: ...

    async def replace_agent(self, spec: AgentSpec) -> None: ...


class UpdateManager:
    def __init__(
        self,
        settings: UpdateSection,
        *,
        work_dir: Path,
        base_specs: Sequence[AgentSpec],
        source: package.PackageSource | None = None,
    ) -> None:
        """``source``: where an enrolled daemon fetches packages over mTLS (None: download URLs)."""
        self._settings = settings
        self._source = source
        self._versions = VersionStore(work_dir / "versions")
        self._book = StatusBook(work_dir / "updates" / "status.json")
        self._base = {spec.id: spec for spec in base_specs}
        self._switch: AgentSwitch | None = None
        self._handover: Callable[[], None] | None = None
        self._work_dir = work_dir
        self._tasks = TaskOwner("updates")
        self._http = LazyHttpClient(follow_redirects=True)
        self._stopped = False

    # -- setup ----------------------------------------------------------------------------

    def resolve_specs(self, base_specs: Sequence[AgentSpec]) -> list[AgentSpec]:
        """The config's specs with ``{package_dir}`` filled in for the installed versions."""
        self._base = {spec.id: spec for spec in base_specs}
        return [self._resolve_current(spec) for spec in base_specs]

    def attach(self, switch: AgentSwitch, handover: Callable[[], None] | None = None) -> None:
        """``handover``: stop this daemon and exec the launcher (self-update); None: no self-update."""
        self._switch = switch
        self._handover = handover

    async def confirm_when_registered(self, registered: Callable[[], bool]) -> None:
        """On a daemon version on trial: wait until it registered, then end the trial as done."""
        trial = selfupdate.read_trial(self._work_dir)
        if trial is None or trial.version != selfupdate.running_version():
            return
        while True:
            if registered():
                break
            await asyncio.sleep(WATCH_POLL)
        selfupdate.confirm(self._work_dir, self._settings.keep_versions)
        self._book = StatusBook(self._work_dir / "updates" / "status.json")

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(name, coro)

    async def stop(self) -> None:
        self._stopped = True
        await self._tasks.stop()
        await self._http.aclose()

    def statuses(self, component: str = "") -> list[UpdateStatus]:
        if component:
            found = self._book.get(component)
            return [found] if found is not None else []
        return self._book.all()

    # -- the request ----------------------------------------------------------------------

    def accept(self, component: str, version: str, sha256: str, signature: str, data: bytes, url: str) -> str:
        """Verify the update and start installing it; the answer's message. Raises before any change."""
        check_target(component, version)
        agent_id = component.removeprefix("agent:")
        if component == SELF:
            if self._handover is None:
                raise FailedPrecondition("daemon self-update is off on this daemon (update.self_update)")
        else:
            base = self._base.get(agent_id)
            if base is None:
                raise NotFound(f"no agent {agent_id!r} on this node")
            if not specs.uses_package(base):
                raise FailedPrecondition(
                    f"agent {agent_id} does not run from a package: "
                    f"its binary_path/args have no {specs.PLACEHOLDER}"
                )
        sha256 = sha256.strip().lower()
        if not SHA256_RE.fullmatch(sha256):
            raise InvalidArgument("hash must be the 64 hex digits of the package's SHA-256")
        if not signature:
            raise InvalidArgument("signature is required (base64 Ed25519 over component, version and hash)")
        self._verifier().verify(component, version, sha256, signature)
        if data:
            if len(data) > self._settings.max_package_bytes:
                raise InvalidArgument(
                    f"package larger than the limit of {self._settings.max_package_bytes} bytes"
                )
            actual = package.inline_hash(data)
            if actual != sha256:
                raise InvalidArgument(f"package hash mismatch: sha256 is {actual}, the update names {sha256}")
        elif not url.startswith(("http://", "https://")) and (url or self._source is None):
            raise InvalidArgument("either update_data or an http(s) download_url is required")
        latest = self._book.get(component)
        if latest is not None and latest.active:
            raise FailedPrecondition(f"an update of {component} to {latest.version} is in progress")
        if self._stopped or self._switch is None:
            raise FailedPrecondition("the daemon is not ready for updates")
        previous = selfupdate.running_version() if component == SELF else self._switch.agent(agent_id).version
        if previous == version and (component == SELF or self._versions.current(component) == version):
            return f"{component} already runs version {version}"
        self._set(
            UpdateStatus(
                component, version, "accepted", previous_version=previous, started_at=int(time.time())
            )
        )
        job = self._install_self if component == SELF else self._install
        self._tasks.spawn(
            component, self._guarded(component, job(component, agent_id, version, sha256, data, url))
        )
        log.info("update of %s to %s accepted (running %s)", component, version, previous or "-")
        return f"accepted: {component} {version}; follow it with GetUpdateStatus or ListAgents"

    # -- the install task -----------------------------------------------------------------

    async def _guarded(self, component: str, job: Coroutine[Any, Any, None]) -> None:
        """Run an install; a bug in it ends the update as failed instead of leaving it in progress."""
        try:
            await job
        except Exception as exc:
            log.exception("update of %s crashed", component)
            latest = self._book.get(component)
            if latest is not None and latest.active:
                self._finish(component, "failed", f"internal error: {exc!r}")

    async def _install(
        self, component: str, agent_id: str, version: str, sha256: str, data: bytes, url: str
    ) -> None:
        assert self._switch is not None
        if await self._fetch_and_unpack(component, version, sha256, data, url, agent_id):
            await self._switch_and_watch(self._switch, component, agent_id, version)

    async def _install_self(
        self, component: str, agent_id: str, version: str, sha256: str, data: bytes, url: str
    ) -> None:
        if not await self._fetch_and_unpack(component, version, sha256, data, url, selfupdate.SINGLE_FILE):
            return
        assert self._handover is not None
        deadline = time.time() + self._settings.daemon_grace_period
        previous = self._versions.current(component)
        try:
            selfupdate.write_trial(self._work_dir, selfupdate.Trial(version, previous, deadline))
            self._versions.switch(component, version)
            selfupdate.start_watchdog(self._work_dir)
        except OSError as exc:
            self._versions.switch(component, previous)
            selfupdate.trial_path(self._work_dir).unlink(missing_ok=True)
            self._finish(component, "failed", f"cannot hand over: {exc}")
            return
        self._progress(component, "watching")
        log.info("daemon %s installed: handing over (watchdog until registered)", version)
        self._handover()

    async def _fetch_and_unpack(
        self, component: str, version: str, sha256: str, data: bytes, url: str, single_name: str
    ) -> bool:
        """The package unpacked into its version directory; False (status failed) when it could not be."""
        try:
            incoming = self._versions.incoming(component, version)
            self._progress(component, "downloading" if not data else "installing")
            if data:
                await asyncio.to_thread(package.write_inline, data, incoming)
            elif not await self._fetch_from_manager(component, version, sha256, incoming, bool(url)):
                await package.download(
                    url,
                    incoming,
                    max_bytes=self._settings.max_package_bytes,
                    timeout=self._settings.download_timeout,
                    client=self._http.get(),
                )
            await asyncio.to_thread(package.check_hash, incoming, sha256)
            self._progress(component, "installing")
            target = self._versions.version_dir(component, version)
            await asyncio.to_thread(package.unpack, incoming, target, single_name)
            incoming.unlink(missing_ok=True)
            return True
        except OpsfleetError as exc:
            self._finish(component, "failed", exc.message)
        except OSError as exc:
            self._finish(component, "failed", f"cannot install the package: {exc}")
        except asyncio.CancelledError:
            self._finish(component, "failed", "cancelled: the daemon is stopping")
            raise
        return False

    async def _fetch_from_manager(
        self, component: str, version: str, sha256: str, incoming: Path, has_url: bool
    ) -> bool:
        """Fetch over mTLS when enrolled; False: use the download URL instead."""
        if self._source is None:
            return False
        try:
            await package.fetch(
                self._source,
                incoming,
                component=component,
                version=version,
                sha256=sha256,
                max_bytes=self._settings.max_package_bytes,
                timeout=self._settings.download_timeout,
            )
        except NotFound as exc:
            if not has_url:
                raise
            log.info("update of %s: %s; using the download URL", component, exc.message)
            return False
        return True

    async def _switch_and_watch(
        self, switch: AgentSwitch, component: str, agent_id: str, version: str
    ) -> None:
        before = switch.agent(agent_id)
        old_version = self._versions.current(component)
        old_spec = self._resolve_current(self._base[agent_id])
        new_spec = specs.resolve(
            self._base[agent_id], self._versions.version_dir(component, version), version
        )
        try:
            self._versions.switch(component, version)
            self._progress(component, "watching")
            await switch.replace_agent(new_spec)
            if before.state is AgentStatus.STOPPED:
                self._finish(
                    component, "done", f"installed {version}; the agent is stopped and was not started"
                )
                return
            # The baseline is taken after the switch: the old process may have restarted meanwhile.
            problem = await self._watch(switch, agent_id, switch.agent(agent_id).restart_count)
        except asyncio.CancelledError:
            self._versions.switch(component, old_version)
            self._finish(
                component, "failed", "cancelled: the daemon is stopping; previous version made current"
            )
            raise
        except OpsfleetError as exc:
            problem = exc.message
        if problem is None:
            removed = self._versions.prune(component, self._settings.keep_versions)
            self._finish(component, "done", f"{version} running for {self._settings.grace_period:g}s")
            if removed:
                log.info("update of %s: removed old versions %s", component, ", ".join(removed))
            return
        log.warning(
            "update of %s to %s failed (%s); rolling back to %s", component, version, problem, old_version
        )
        await self._roll_back(switch, component, agent_id, old_version, old_spec, problem)

    async def _roll_back(
        self,
        switch: AgentSwitch,
        component: str,
        agent_id: str,
        old_version: str | None,
        old_spec: AgentSpec,
        why: str,
    ) -> None:
        self._versions.switch(component, old_version)
        try:
            await switch.replace_agent(old_spec)
            back = await self._wait_running(switch, agent_id, self._settings.rollback_timeout)
        except OpsfleetError as exc:
            back = f"restart of the previous version failed: {exc.message}"
        label = old_version or old_spec.version or "the previous version"
        tail = f"{label} running again" if back is None else f"{label} restarted but {back}"
        self._finish(component, "rolled_back", f"{why}; rolled back: {tail}")

    async def _watch(self, switch: AgentSwitch, agent_id: str, restarts_before: int) -> str | None:
        """None when the agent ran for the whole grace period, else why not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.grace_period
        while True:
            view = switch.agent(agent_id)
            if view.state in _DOWN or view.restart_count > restarts_before:
                reason = view.last_exit_reason or view.state.value
                return f"the new version did not stay up ({view.state.value}: {reason})"
            if loop.time() >= deadline:
                if view.state is AgentStatus.RUNNING:
                    return None
                grace = self._settings.grace_period
                return f"the new version was not running after {grace:g}s ({view.state.value})"
            await asyncio.sleep(WATCH_POLL)

    async def _wait_running(self, switch: AgentSwitch, agent_id: str, timeout: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            view = switch.agent(agent_id)
            if view.state is AgentStatus.RUNNING:
                return None
            if view.state is AgentStatus.FAILED:
                return f"it failed ({view.last_exit_reason})"
            await asyncio.sleep(WATCH_POLL)
        return f"it was not running within {timeout:g}s"

    # -- helpers --------------------------------------------------------------------------

    def _verifier(self) -> Verifier:
        """The configured keys and the fleet keys handed over at enrollment (read each time)."""
        return Verifier([*self._settings.trusted_keys, *fleet_keys.load_keys(self._work_dir)])

    def _resolve_current(self, base: AgentSpec) -> AgentSpec:
        if not specs.uses_package(base):
            return base
        component = f"agent:{base.id}"
        current = self._versions.current(component)
        if current is None:
            return base
        return specs.resolve(base, self._versions.version_dir(component, current), current)

    def _progress(self, component: str, state: UpdateState) -> None:
        latest = self._book.get(component)
        if latest is not None:
            self._set(replace(latest, state=state))

    def _finish(self, component: str, state: UpdateState, message: str) -> None:
        latest = self._book.get(component)
        if latest is None:
            return
        self._set(replace(latest, state=state, message=message, finished_at=int(time.time())))
        log.info("update of %s to %s: %s (%s)", component, latest.version, state, message)

    def _set(self, status: UpdateStatus) -> None:
        self._book.put(status)
