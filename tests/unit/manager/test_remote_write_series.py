"""Remote-write naming and encoding: Prometheus-safe metric and label names, label precedence,
sorted labels, the snappy WriteRequest body and the sender's headers, auth and retry classes."""

from __future__ import annotations

import base64
import socket

import cramjam
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsfleet.common.errors import ConfigError
from opsfleet.manager.config import load_manager_config
from opsfleet.manager.export import wire
from opsfleet.manager.export.sender import HttpSender, classify
from opsfleet.manager.export.series import label_name, metric_name, node_labels, with_name
from opsfleet.manager.export.settings import RemoteWriteSection
from opsfleet.proto import prometheus_remote_pb2 as prompb


@pytest.mark.parametrize(
    ("type_", "key", "expected"),
    [
        ("cpu", "usage_percent", "opsfleet_cpu_usage_percent"),
        ("custom.gpu_0", "temp-c", "opsfleet_custom_gpu_0_temp_c"),
        ("network", "eth0:rx bytes/s", "opsfleet_network_eth0_rx_bytes_s"),
        ("disk", "é", "opsfleet_disk__"),
    ],
)
def test_metric_names_keep_to_the_prometheus_charset(type_: str, key: str, expected: str) -> None:
    assert metric_name(type_, key) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("env", "env"), ("team.name", "team_name"), ("1rack", "_1rack"), ("__meta", "label__meta"), ("", "_")],
)
def test_label_names_are_sanitised_and_never_reserved(raw: str, expected: str) -> None:
    assert label_name(raw) == expected


def test_node_labels_precedence_and_order() -> None:
    labels = node_labels(
        "n1",
        "web-01",
        {
            "hostname": "alias",
            "node_id": "x",
            "Zone": "a",
            "env": "prod",
            "empty": "",
            "a-b": "1",
            "a.b": "2",
        },
        {"env": "default", "fleet": "f1"},
    )
    assert labels == (
        ("Zone", "a"),
        ("a_b", "1"),
        ("env", "prod"),
        ("exported_hostname", "alias"),
        ("exported_node_id", "x"),
        ("fleet", "f1"),
        ("hostname", "web-01"),
        ("node_id", "n1"),
    )
    named = with_name("opsfleet_cpu_usage_percent", labels)
    assert [n for n, _ in named] == sorted(n for n, _ in named)
    assert named[0] == ("Zone", "a") and named[1] == ("__name__", "opsfleet_cpu_usage_percent")


def test_write_request_is_snappy_block_compressed_protobuf() -> None:
    series = [((("__name__", "m"), ("node_id", "n1")), [(1000, 1.5), (2000, 2.5)])]
    body = wire.encode(series)
    request = prompb.WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    assert [(label.name, label.value) for label in request.timeseries[0].labels] == list(series[0][0])
    assert [(s.timestamp, s.value) for s in request.timeseries[0].samples] == [(1000, 1.5), (2000, 2.5)]
    assert wire.decode(body) == series


label_text = st.text(max_size=30)
series_strategy = st.lists(
    st.tuples(
        st.lists(st.tuples(label_text, label_text), max_size=8).map(lambda pairs: tuple(sorted(pairs))),
        st.lists(
            st.tuples(
                st.integers(min_value=-(2**63), max_value=2**63 - 1),
                st.floats(allow_nan=False),
            ),
            max_size=1200,
        ),
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(series_strategy)
def test_hand_written_wire_format_parses_as_the_generated_messages(series: list[wire.Series]) -> None:
    # Covers 1- to 10-byte varints (negative timestamps, series longer than 16 KiB), 0.0 values.
    assert wire.decode(wire.encode(series)) == [(labels, list(points)) for labels, points in series]


@pytest.mark.parametrize("value", [1, 127, 128, 16383, 16384, 2**35, 2**63 - 1, -1, -(2**63)])
def test_varint_matches_protobuf(value: int) -> None:
    sample = prompb.Sample(timestamp=value)
    assert sample.SerializeToString() == b"\x10" + wire.varint(value)


async def test_sender_headers_and_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    settings = RemoteWriteSection(url="http://rw.test/api/v1/write", username="u", password="p", timeout=3)
    sender = HttpSender(settings, transport=httpx.MockTransport(handler))
    result = await sender.send(wire.encode([]))
    await sender.close()
    assert result.ok
    headers = seen[0].headers
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["content-encoding"] == "snappy"
    assert headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert headers["user-agent"].startswith("opsfleet-manager/")


async def test_sender_bearer_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200)

    settings = RemoteWriteSection(url="http://rw.test/w", bearer_token="t0k")
    sender = HttpSender(settings, transport=httpx.MockTransport(handler))
    assert (await sender.send(b"")).ok
    await sender.close()
    assert seen == ["Bearer t0k"]


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [(200, True, False), (204, True, False), (400, False, False), (401, False, False),
     (404, False, False), (429, False, True), (500, False, True), (503, False, True)],
)  # fmt: skip
def test_status_classes(status: int, ok: bool, retryable: bool) -> None:
    result = classify(status, "out of order sample")
    assert (result.ok, result.retryable) == (ok, retryable)
    if not ok:
        assert result.error.startswith(f"HTTP {status}:")


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = HttpSender(RemoteWriteSection(url=f"http://127.0.0.1:{port}/api/v1/write", timeout=2))
    result = await sender.send(b"")
    await sender.close()
    assert not result.ok and result.retryable and "ConnectError" in result.error


@pytest.mark.parametrize(
    ("overrides", "key", "text"),
    [
        ({"export.remote_write.url": "ftp://x"}, "export.remote_write.url", "http://"),
        ({"export.remote_write.labels": {"bad-name": "x"}}, "export.remote_write.labels", "bad-name"),
        ({"export.remote_write.labels": {"node_id": "x"}}, "export.remote_write.labels", "node_id"),
        ({"export.remote_write.username": "u"}, "export.remote_write", "together"),
        ({"export.remote_write.batch_size": 0}, "export.remote_write.batch_size", ""),
        ({"export.remote_write.timeout": "-1s"}, "export.remote_write.timeout", ""),
    ],
)
def test_config_errors_name_the_key(overrides: dict[str, object], key: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_manager_config(None, {}, overrides)
    assert f"config key '{key}'" in str(info.value) and text in str(info.value)


def test_config_from_environment() -> None:
    env = {
        "OPSFLEET_EXPORT__REMOTE_WRITE__URL": "http://prom:9090/api/v1/write",
        "OPSFLEET_EXPORT__REMOTE_WRITE__LABELS": "{cluster: eu1}",
        "OPSFLEET_EXPORT__REMOTE_WRITE__RETRY_BACKOFF": "250ms",
    }
    rw = load_manager_config(None, env, {}).export.remote_write
    assert rw.enabled and rw.labels == {"cluster": "eu1"} and rw.retry_backoff == 0.25
    assert not load_manager_config(None, {}, {}).export.remote_write.enabled
