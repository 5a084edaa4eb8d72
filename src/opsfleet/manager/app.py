"""The Manager's composition root: wires store, services and servers, runs until stopped.

Shutdown order: stop the HTTP server (in-flight requests finish within the grace period),
stop accepting RPCs and drain in-flight ones within the grace period,
commit queued metrics, flush heartbeats, store alert transitions and stop notifying,
send the samples queued for remote write,
stop loops, close the database, log "stopped".

Crash policy: every owned background task (group-commit writers, heartbeat flush, liveness,
retention, the HTTP server, the daemon channel reaper) runs in this app's crash scope. When
one dies, ``run()`` shuts everything down in the order above and returns EXIT_CRASHED, so
``opsfleet manager`` exits non-zero and its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc

from opsfleet import __version__
from opsfleet.common import rpc as rpc_opts
from opsfleet.common.lifecycle import EXIT_CRASHED, Crashes, crash_scope, stop_step, wait_stop_or_crash
from opsfleet.common.pki import CertificateAuthority, TLSMaterial
from opsfleet.common.tls import server_credentials
from opsfleet.manager.alerts.wiring import build_alerts
from opsfleet.manager.artifacts.settings import read_signing_key
from opsfleet.manager.changes import (
    IDENTITY_REVOKED,
    NODE_DELETED,
    POLICIES_CHANGED,
    TOKEN_REVOKED,
    Changes,
    LocalChanges,
)
from opsfleet.manager.config import ManagerConfig
from opsfleet.manager.domain import Artifact, EventKind
from opsfleet.manager.export.wiring import build_remote_write
from opsfleet.manager.fleet_ca import load_fleet_ca, manager_material
from opsfleet.manager.leadership import AlwaysLeader, Leadership
from opsfleet.manager.rpc.artifacts import ArtifactServicer
from opsfleet.manager.rpc.daemon_client import DaemonCallSettings, DaemonClientPool
from opsfleet.manager.rpc.enrollment import EnrollmentServicer
from opsfleet.manager.rpc.identity_guard import OPEN, IdentityGuard
from opsfleet.manager.rpc.servicers import DaemonServiceServicer, ManagerServicer
from opsfleet.manager.secret_file import SecretFile
from opsfleet.manager.services.agent_ops import AgentOpsService
from opsfleet.manager.services.agents import AgentService
from opsfleet.manager.services.artifacts import ArtifactService
from opsfleet.manager.services.audit import AuditService
from opsfleet.manager.services.auth import AuthService
from opsfleet.manager.services.configs import ConfigService
from opsfleet.manager.services.enrollment import EnrollmentService
from opsfleet.manager.services.fleet import FleetService
from opsfleet.manager.services.fleet_agents import FleetAgentService
from opsfleet.manager.services.identities import IdentityRegistry
from opsfleet.manager.services.login_throttle import LoginThrottle, ThrottlePolicy
from opsfleet.manager.services.metric_queries import MetricQueryService
from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.services.metrics import MetricService, Retention
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.services.pins import PinDeps, PinReconciler
from opsfleet.manager.services.policies import PolicyService
from opsfleet.manager.services.rollout_runner import RunnerDeps, UpdateCalls
from opsfleet.manager.services.rollouts import RolloutService, select_nodes
from opsfleet.manager.services.timeline import TimelineService
from opsfleet.manager.services.users import UserService
from opsfleet.manager.store.artifacts_sql import SqlArtifactStore
from opsfleet.manager.store.changes_pg import PgChanges
from opsfleet.manager.store.enrollment_sql import SqlEnrollmentStore
from opsfleet.manager.store.leader_pg import PgAdvisoryLeader
from opsfleet.manager.store.policies_sql import SqlPolicyStore
from opsfleet.manager.store.queries_sql import SqlFleetQueries
from opsfleet.manager.store.rollouts_sql import SqlRolloutStore
from opsfleet.manager.store.single_manager import SingleManagerLock, sqlite_path
from opsfleet.manager.store.sql import SqlStore
from opsfleet.manager.store.timeline_sql import SqlTimeline
from opsfleet.manager.store.users_sql import SqlAuditStore, SqlUserStore
from opsfleet.manager.telemetry import Telemetry
from opsfleet.manager.web.app import create_app
from opsfleet.manager.web.context import WebContext
from opsfleet.manager.web.server import HttpServer
from opsfleet.proto import artifacts_pb2_grpc, daemon_pb2_grpc, enrollment_pb2_grpc, manager_pb2_grpc

log = logging.getLogger(__name__)

INSECURE_WARNING = (
    "WARNING: INSECURE MODE (grpc.tls.mode off / --insecure): the gRPC port is plaintext and "
    "unauthenticated; anyone on the network can register as any node and read fleet traffic. "
    "Use it only for the seed's Go daemons on a trusted network (docs/security.md)."
)

DASHBOARD_DIR = Path(__file__).parent / "web" / "static"


class ManagerApp:
    """One Manager process. ``start()`` then ``stop()``; ``stop()`` is idempotent."""

    def __init__(self, config: ManagerConfig) -> None:
        self.config = config
        url = config.database_url()
        sqlite_file = sqlite_path(url)
        self._sqlite_lock = SingleManagerLock(sqlite_file) if sqlite_file is not None else None
        replicated = url.startswith("postgresql")
        self.leadership: Leadership = PgAdvisoryLeader(url) if replicated else AlwaysLeader()
        self.changes: Changes = PgChanges(url) if replicated else LocalChanges()
        self.store = SqlStore(
            url,
            pool_size=config.database.pool_size,
            lock_timeout=config.database.lock_timeout,
            rollup_grace=config.metrics.rollup_grace,
        )
        self.nodes = NodeService(
            self.store,
            offline_after=config.node.offline_after,
            check_interval=config.node.check_interval,
            flush_interval=config.metrics.heartbeat_flush_interval,
        )
        self.metrics = MetricService(
            self.store,
            self.nodes,
            retention_days=config.metrics.retention_days,
            retention=Retention(
                raw=int(config.metrics.retention.raw),
                rollup_5m=int(config.metrics.retention.rollup_5m),
                rollup_1h=int(config.metrics.retention.rollup_1h),
            ),
            retention_interval=config.metrics.retention_interval,
            max_batch_rows=config.metrics.max_batch_rows,
            max_queued_rows=config.metrics.max_queued_rows,
        )
        self.rollups = RollupJob(
            self.store.rollup_job,
            interval=config.metrics.rollup_interval,
            is_leader=lambda: self.leadership.is_leader,
        )
        self.timeline = TimelineService(SqlTimeline(self.store))
        self.nodes.add_forget_listener(self.timeline.forget)
        self.agents = AgentService(self.store, self.nodes, timeline=self.timeline)
        self.configs = ConfigService(self.nodes, SqlPolicyStore(self.store))
        self.configs.on_state = self._config_state_event
        self.policies = PolicyService(SqlPolicyStore(self.store), self.configs)
        a = config.agents
        self.daemon_clients = DaemonClientPool(
            DaemonCallSettings(
                list_timeout=a.list_timeout,
                operate_timeout=a.operate_timeout,
                metrics_timeout=a.metrics_timeout,
                logs_timeout=a.logs_timeout,
                idle=a.channel_idle,
                tls_ca_file=a.tls.ca_file,
                tls_cert_file=a.tls.cert_file,
                tls_key_file=a.tls.key_file,
                tls_server_name=a.tls.server_name,
            )
        )
        self.agent_ops = AgentOpsService(self.store, self.nodes, self.daemon_clients, timeline=self.timeline)
        self.telemetry = Telemetry()
        self.metrics.batch_observer = self.telemetry.observe_batch
        queries = SqlFleetQueries(self.store)
        user_store = SqlUserStore(self.store)
        self.users = UserService(user_store)
        au = config.auth
        self.auth = AuthService(
            self.users,
            user_store,
            secret=config.jwt.secret,
            secret_store=SecretFile(config.jwt_secret_path()),
            ttl=config.jwt.expire,
            throttle=LoginThrottle(
                ThrottlePolicy(
                    max_failures=au.login_max_failures,
                    max_failures_per_address=au.login_max_failures_per_address,
                    window=au.login_window,
                    lockout_base=au.lockout_base,
                    lockout_max=au.lockout_max,
                )
            ),
        )
        self.audit = AuditService(SqlAuditStore(self.store))
        self.fleet_agents = FleetAgentService(SqlTimeline(self.store), self.agent_ops, self._audit_bulk)
        self.artifacts = ArtifactService(
            SqlArtifactStore(self.store),
            config.artifacts.directory(config.data_dir),
            max_bytes=config.artifacts.max_bytes,
            signing_key=read_signing_key(config.artifacts.signing_key_file),
            token_key=lambda: self.auth.derived_key("artifact-download"),
            token_ttl=config.artifacts.download_token_ttl,
        )
        self.fleet = FleetService(queries, self.nodes)
        self.alerts = build_alerts(self)
        self.remote_write = build_remote_write(self)
        self.rollouts = RolloutService(
            RunnerDeps(
                store=SqlRolloutStore(self.store),
                client_for=self._update_client,
                artifact=self.artifacts.get,
                download_url=self._download_url,
                audit=self._audit_rollout,
                poll_interval=config.rollouts.poll_interval,
                node_timeout=config.rollouts.node_timeout,
                on_node_done=self.alerts.update_outcome,
            ),
            find_artifact=self.artifacts.find,
            list_nodes=lambda selector, component: select_nodes(self.nodes, self.store, selector, component),
            leader=False,
        )
        self.pins = PinReconciler(
            PinDeps(
                pinned=self.configs.pinned_versions,
                node=self.nodes.get,
                agents=self.store.list_agents,
                client_for=self._update_client,
                find_artifact=self.artifacts.find,
                download_url=self._download_url,
                audit=self._audit_rollout,
                node_timeout=config.rollouts.node_timeout,
            ),
            interval=config.rollouts.pin_interval,
            max_in_flight=config.rollouts.pin_max_in_flight,
        )
        self.nodes.add_register_listener(self.pins.node_registered)
        leader = lambda: self.leadership.is_leader  # noqa: E731
        self.nodes.is_leader = self.metrics.is_leader = self.pins.is_leader = leader
        self.leadership.add_listener(self.rollouts.leadership_changed)
        self.leadership.add_listener(self.alerts.leadership_changed)
        self.leadership.add_listener(self.rollups.leadership_changed)
        self.nodes.watch_offline = self.alerts.offline_nodes
        self.fleet.publish = self.policies.publish = self.changes.publish
        self._subscribe_changes()
        self.metric_queries = MetricQueryService(queries, self.nodes, self.metrics)
        self.enrollment_store = SqlEnrollmentStore(self.store)
        self.identities = IdentityRegistry(self.enrollment_store, clone_window=config.enrollment.clone_window)
        self.nodes.add_forget_listener(self.identities.forget)
        self.ca: CertificateAuthority | None = None
        self.tls_material: TLSMaterial | None = None
        self.enrollment: EnrollmentService | None = None
        self._enroll_server: grpc.aio.Server | None = None
        self.enrollment_port = 0
        self._http: HttpServer | None = None
        self.http_port = 0
        self._server: grpc.aio.Server | None = None
        self.grpc_port = 0
        self._started = False
        self._stopped = False
        self.crashes = Crashes("manager")

    async def start(self) -> None:
        """Start everything; owned tasks started here report crashes to ``self.crashes``."""
        with crash_scope(self.crashes.report):
            await self._start()

    async def _start(self) -> None:
        cfg = self.config
        loop = type(asyncio.get_running_loop())
        log.info(
            "opsfleet manager %s starting (event loop %s.%s)", __version__, loop.__module__, loop.__name__
        )
        if self._sqlite_lock is not None:
            self._sqlite_lock.acquire()
        await self.store.start()
        await self.changes.start()
        await self.users.bootstrap_admin(cfg.auth.admin_password)
        await self.auth.start()
        await self.nodes.start()
        await self.metrics.start()
        await self.policies.start()
        known = await self.nodes.list_all()
        await self.alerts.start((n.node_id, n.hostname, n.labels, n.status.value == "online") for n in known)
        if self.remote_write is not None:
            await self.remote_write.start((n.node_id, n.hostname, n.labels) for n in known)
        guard = OPEN
        if cfg.tls_mode == "auto":
            await self._start_fleet_ca()
            guard = IdentityGuard(self.identities)
        elif cfg.tls_mode == "off":
            log.warning("%s", INSECURE_WARNING)
        self.daemon_clients.use_identity(self.tls_material)
        await self.daemon_clients.start()
        server = grpc.aio.server(options=self._server_options())
        observe = self.telemetry.observe_rpc
        manager_pb2_grpc.add_ManagerServiceServicer_to_server(
            ManagerServicer(self.nodes, self.metrics, configs=self.configs, observe_rpc=observe, guard=guard),
            server,
        )
        daemon_pb2_grpc.add_DaemonServiceServicer_to_server(
            DaemonServiceServicer(
                self.nodes, self.metrics, self.agents, self.configs, observe_rpc=observe, guard=guard
            ),
            server,
        )
        creds = self._main_credentials()
        if self.enrollment is not None:
            enrollment_pb2_grpc.add_EnrollmentServiceServicer_to_server(
                EnrollmentServicer(
                    self.enrollment, guard, observe_rpc=observe, update_keys=self.artifacts.update_keys
                ),
                server,
            )
            artifacts_pb2_grpc.add_ArtifactServiceServicer_to_server(
                ArtifactServicer(self.artifacts, guard, observe_rpc=observe), server
            )
        self.grpc_port = rpc_opts.bind(server, cfg.grpc.host, cfg.grpc.port, creds, key="grpc.port")
        await server.start()
        self._server = server
        self._started = True
        mode = {"auto": "mTLS, fleet CA", "off": "plaintext, INSECURE"}.get(cfg.tls_mode)
        if mode is None:
            mode = "mTLS" if cfg.grpc.tls.ca_file else "TLS"
        log.info("gRPC listening on %s:%d (%s)", cfg.grpc.host, self.grpc_port, mode)
        if self.enrollment is not None:
            await self._start_enrollment_server(guard)
        await self._start_http()
        await self.leadership.start()
        await self.rollouts.start()
        await self.pins.start()
        await self.rollups.start()

    def _subscribe_changes(self) -> None:
        """What another replica's change drops or refreshes here (opsfleet.manager.changes)."""

        async def node_deleted(node_id: str) -> None:
            self.nodes.forget(node_id)

        async def identity_revoked(node_id: str) -> None:
            self.identities.revoke(node_id)

        async def token_revoked(_token_id: str) -> None:
            if self.enrollment is not None:
                self.enrollment.token_revoked_elsewhere()

        async def policies_changed(_name: str) -> None:
            await self.policies.refresh()

        self.changes.subscribe(NODE_DELETED, node_deleted)
        self.changes.subscribe(IDENTITY_REVOKED, identity_revoked)
        self.changes.subscribe(TOKEN_REVOKED, token_revoked)
        self.changes.subscribe(POLICIES_CHANGED, policies_changed)

    async def _update_client(self, node_id: str) -> UpdateCalls:
        node = await self.nodes.get(node_id)
        return self.daemon_clients.client(node.node_id, node.daemon_address)

    def _download_url(self, artifact: Artifact) -> str:
        base = self.config.artifacts.download_base_url.rstrip("/")
        if not base:
            host = self.config.server.host
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            base = f"http://{host}:{self.http_port}"
        token = self.artifacts.download_token(artifact.id)
        return f"{base}/api/v1/artifacts/{artifact.id}/download?token={token}"

    async def _audit_rollout(self, username: str, action: str, target: str, detail: str) -> None:
        await self.audit.record(
            username=username, action=action, target=target, status=200, code=0, source_ip="", detail=detail
        )
        if action.startswith("rollouts.node.") and " node=" in target:
            rollout, node_id = target.split(" node=", 1)
            outcome = action.removeprefix("rollouts.node.")
            await self.timeline.record(node_id, EventKind.UPDATE, f"{rollout}: {outcome}: {detail}")

    async def _audit_bulk(self, username: str, target: str, success: bool, detail: str) -> None:
        await self.audit.record(
            username=username,
            action="agents.bulk_operate",
            target=target,
            status=200 if success else 502,
            code=0 if success else 1,
            source_ip="",
            detail=detail,
        )

    async def _config_state_event(self, node_id: str, config_hash: str, state: str, error: str) -> None:
        detail = f"config {config_hash[:12]} {state}" + (f": {error}" if error else "")
        await self.timeline.record(node_id, EventKind.CONFIG, detail)

    def _server_options(self) -> list[tuple[str, object]]:
        g = self.config.grpc
        return rpc_opts.server_options(
            g.max_message_bytes,
            g.keepalive_min_ping_interval,
            reuse_port=g.reuse_port,
            max_pending_calls=g.max_pending_calls,
        )

    async def _start_fleet_ca(self) -> None:
        cfg = self.config
        ca, created = load_fleet_ca(cfg)
        log.info(
            "fleet CA %s (%s): fingerprint %s",
            "created" if created else "loaded",
            cfg.enrollment.ca_cert_file or f"{cfg.data_dir}/ca",
            ca.fingerprint,
        )
        self.ca = ca
        self.tls_material = manager_material(ca, cfg)
        await self.identities.start()
        self.enrollment = EnrollmentService(
            self.enrollment_store,
            self.identities,
            ca,
            cert_lifetime=cfg.enrollment.cert_lifetime,
            max_token_lifetime=cfg.enrollment.max_token_lifetime,
        )
        self.enrollment.publish = self.changes.publish
        await self.enrollment.start()

    def _main_credentials(self) -> grpc.ServerCredentials | None:
        cfg = self.config
        if cfg.tls_mode == "files":
            return server_credentials(
                cert_file=cfg.grpc.tls.cert_file,
                key_file=cfg.grpc.tls.key_file,
                ca_file=cfg.grpc.tls.ca_file,
                key_prefix="grpc.tls",
            )
        m = self.tls_material
        if m is None:
            return None
        return grpc.ssl_server_credentials(
            [(m.key_pem, m.cert_pem)], root_certificates=m.ca_pem, require_client_auth=True
        )

    async def _start_enrollment_server(self, guard: IdentityGuard) -> None:
        """Enroll over server-authenticated TLS: nodes have no certificate yet.

        The chain includes the CA so that ``opsfleet daemon enroll`` can pin its fingerprint."""
        cfg, m = self.config, self.tls_material
        assert m is not None and self.enrollment is not None
        server = grpc.aio.server(options=self._server_options())
        enrollment_pb2_grpc.add_EnrollmentServiceServicer_to_server(
            EnrollmentServicer(
                self.enrollment,
                guard,
                observe_rpc=self.telemetry.observe_rpc,
                update_keys=self.artifacts.update_keys,
            ),
            server,
        )
        creds = grpc.ssl_server_credentials([(m.key_pem, m.cert_pem + m.ca_pem)], require_client_auth=False)
        host = cfg.enrollment_host()
        self.enrollment_port = rpc_opts.bind(server, host, cfg.enrollment.port, creds, key="enrollment.port")
        await server.start()
        self._enroll_server = server
        log.info("enrollment listening on %s:%d (TLS)", host, self.enrollment_port)

    def web_context(self) -> WebContext:
        return WebContext(
            leadership=self.leadership,
            store=self.store,
            nodes=self.nodes,
            metrics=self.metrics,
            agents=self.agents,
            agent_ops=self.agent_ops,
            fleet=self.fleet,
            metric_queries=self.metric_queries,
            users=self.users,
            auth=self.auth,
            audit=self.audit,
            telemetry=self.telemetry,
            policies=self.policies,
            configs=self.configs,
            artifacts=self.artifacts,
            rollouts=self.rollouts,
            enrollment=self.enrollment,
            identities=self.identities,
            alerts=self.alerts,
            timeline=self.timeline,
            fleet_agents=self.fleet_agents,
        )

    async def _start_http(self) -> None:
        cfg = self.config
        dashboard = DASHBOARD_DIR if (DASHBOARD_DIR / "index.html").is_file() else None
        app = create_app(self.web_context(), static_dir=dashboard)
        self._http = HttpServer(app, cfg.server.host, cfg.server.port, grace=cfg.grpc.shutdown_grace)
        await self._http.start()
        self.http_port = self._http.port

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # First: the singleton work stops here and another replica takes it over meanwhile.
        await stop_step("leadership", self.leadership.stop())
        await stop_step("metric rollups", self.rollups.stop())
        await self.pins.stop()
        await self.rollouts.stop()
        if self._http is not None:
            await stop_step("HTTP server", self._http.stop())
        if self._server is not None:
            log.info("stopping: draining in-flight RPCs (grace %.1fs)", self.config.grpc.shutdown_grace)
            await stop_step("gRPC server", self._server.stop(self.config.grpc.shutdown_grace))
        if self._enroll_server is not None:
            await stop_step("enrollment server", self._enroll_server.stop(self.config.grpc.shutdown_grace))
        if self.enrollment is not None:
            await stop_step("enrollments", self.enrollment.stop())
        await stop_step("daemon clients", self.daemon_clients.close())
        await stop_step("change notifications", self.changes.stop())
        await stop_step("policies", self.policies.stop())
        await stop_step("metrics", self.metrics.stop())
        await stop_step("nodes", self.nodes.stop())
        # After metrics and nodes: their last commits and heartbeat flush may still change alerts.
        await stop_step("alerts", self.alerts.stop())
        if self.remote_write is not None:
            await stop_step("remote write", self.remote_write.stop())
        await stop_step("database", self.store.close())
        if self._sqlite_lock is not None:
            self._sqlite_lock.release()
        log.info("stopped")

    async def run(self, stop: asyncio.Event) -> int:
        """Start, wait for ``stop`` or a crashed owned task, shut down in order; the exit code
        (0, or EXIT_CRASHED after a crash)."""
        try:
            await self.start()
            await wait_stop_or_crash(stop, self.crashes)
        finally:
            await self.stop()
        return EXIT_CRASHED if self.crashes.happened else 0
