"""Delivery of the spooled samples to the manager, one sample's failure isolated from the rest.

Rules (docs/protocol.md, "Metric delivery"):

* A spooled record is checked again before it is sent (an old or corrupt spool may hold
  anything); a record that fails is quarantined, never sent.
* INVALID_ARGUMENT is never retried as is. When the manager names the first invalid sample
  (``metrics[<i>].<field>: <reason>``) only that sample is quarantined and the rest resent;
  when it names none (e.g. a seed manager) the batch is bisected until the bad samples are
  alone. A batch of n samples with k bad ones costs at most about ``2 k log2 n + 1`` calls.
* UNAVAILABLE, DEADLINE_EXCEEDED and every other failure: the same batch is retried after a
  delay (the manager's ``grpc-retry-pushback-ms`` if it sent one, else exponential backoff
  with full jitter capped at ``manager.reconnect_max``). The session is not ended and the
  node is not registered again for it.
* NOT_FOUND: :class:`NodeUnknown` (the link registers again).

Records are acknowledged in the spool only once every sample of the peeked batch was either
stored by the manager or quarantined, so a crash or a lost reply resends them (the manager
stores a (node, type, timestamp) once). A batch's quarantined samples are counted when the
batch is acknowledged: a session that ends mid-batch resends (and judges) them again, and
counting them at that point too would count them twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from opsfleet.common.backoff import Backoff
from opsfleet.common.errors import InvalidArgument
from opsfleet.common.lifecycle import sleep_or_stop
from opsfleet.common.validation import parse_sample_error_index
from opsfleet.daemon.outbox import Outbox, check_record
from opsfleet.daemon.quarantine import Quarantine
from opsfleet.proto import manager_pb2, manager_pb2_grpc

log = logging.getLogger(__name__)

PUSHBACK_KEY = "grpc-retry-pushback-ms"


class NodeUnknown(Exception):
    """The manager answered NOT_FOUND: it does not know this node (any more)."""


class DeliveryStopped(Exception):
    """The link is stopping."""


class _Rejected(Exception):
    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def pushback(exc: grpc.aio.AioRpcError) -> float | None:
    """The retry delay the server pushed in the trailers, in seconds, if any."""
    metadata: Any = exc.trailing_metadata() or ()
    for key, value in metadata:
        if key == PUSHBACK_KEY:
            try:
                return max(0.0, int(value) / 1000)
            except ValueError:
                return None
    return None


class Delivery:
    """Sends the outbox to the manager; one instance per link, ``run()`` once per session.

    ``run()`` returns only by raising: :class:`NodeUnknown`, :class:`DeliveryStopped` once
    ``stop`` is set, or cancellation when the session ends. Counters are cumulative.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        node_id: str,
        timeout: float,
        backoff: Backoff,
        stop: asyncio.Event,
        batch_size: Callable[[], int],
        quarantine: Quarantine,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = outbox
        self._node_id = node_id
        self._timeout = timeout
        self._backoff = backoff
        self._stop = stop
        self._batch_size = batch_size
        self.quarantine = quarantine
        self._clock = clock
        self.calls = 0  # ReportMetrics calls made
        self.samples_sent = 0  # samples carried by those calls, resends included
        self.samples_stored = 0  # samples the manager confirmed
        self.last_error = ""
        self._backlog_delivered: int | None = None  # counting since a backlog was announced

    async def run(self, manager: manager_pb2_grpc.ManagerServiceAsyncStub) -> None:
        backlog = await self._outbox.pending()
        if backlog and self._backlog_delivered is None:
            log.info("delivering %d spooled samples", backlog)
            self._backlog_delivered = 0
        while True:
            records, cursor = await self._outbox.peek(self._batch_size())
            if not records:
                if self._backlog_delivered is not None:
                    log.info(
                        "delivered %d spooled samples after reconnecting (%d quarantined in all)",
                        self._backlog_delivered,
                        self.quarantine.total,
                    )
                    self._backlog_delivered = None
                self._outbox.ready.clear()
                await self._outbox.ready.wait()
                continue
            now = self._clock()
            samples: list[manager_pb2.MetricData] = []
            rejected: list[tuple[str, str]] = []  # (where, reason) of each quarantined sample
            for index, record in enumerate(records):
                try:
                    sample = check_record(record, index, now=now)
                except InvalidArgument as exc:
                    rejected.append(("spool", str(exc)))
                    continue
                samples.append(
                    manager_pb2.MetricData(type=sample.type, timestamp=sample.timestamp, values=sample.values)
                )
            stored = await self._send_isolated(manager, samples, rejected) if samples else 0
            await self._outbox.ack(cursor, stored)
            for where, reason in rejected:
                self.quarantine.add(where, reason)
            if self._backlog_delivered is not None:
                self._backlog_delivered += stored

    async def _send_isolated(
        self,
        manager: manager_pb2_grpc.ManagerServiceAsyncStub,
        samples: list[manager_pb2.MetricData],
        rejected: list[tuple[str, str]],
    ) -> int:
        """Deliver ``samples``; how many were stored. Each sample the manager rejects is appended
        to ``rejected`` as ("manager", reason), to be quarantined once the batch is acknowledged."""
        stored = 0
        todo: deque[list[manager_pb2.MetricData]] = deque([samples])
        while todo:
            chunk = todo.popleft()
            try:
                await self._report(manager, chunk)
                stored += len(chunk)
                continue
            except _Rejected as exc:
                details = exc.details
            index = parse_sample_error_index(details)
            if index is not None and index < len(chunk):
                rejected.append(("manager", details))
                rest = chunk[:index] + chunk[index + 1 :]
                if rest:
                    todo.appendleft(rest)
            elif len(chunk) == 1:
                rejected.append(("manager", f"{chunk[0].type} sample rejected: {details}"))
            else:
                middle = len(chunk) // 2
                todo.extendleft([chunk[middle:], chunk[:middle]])  # first half next
        return stored

    async def _report(
        self, manager: manager_pb2_grpc.ManagerServiceAsyncStub, chunk: list[manager_pb2.MetricData]
    ) -> None:
        """One batch until the manager stores it (retrying with a delay) or rejects it."""
        request = manager_pb2.ReportMetricsRequest(node_id=self._node_id, metrics=chunk)
        while True:
            self.calls += 1
            self.samples_sent += len(chunk)
            try:
                await manager.ReportMetrics(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    raise NodeUnknown() from exc
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise _Rejected(exc.details() or "") from exc
                delay = pushback(exc) if code in _PUSHBACK_CODES else None
                if delay is None:
                    delay = self._backoff.next_delay()
                self.last_error = f"metrics: {code.name} {exc.details() or ''}".strip()
                log.warning("%s; retrying %d samples in %.1fs", self.last_error, len(chunk), delay)
                if await sleep_or_stop(self._stop, delay):
                    raise DeliveryStopped() from exc
                continue
            self._backoff.reset()
            self.samples_stored += len(chunk)
            return


_PUSHBACK_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
