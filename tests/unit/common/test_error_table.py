"""The one error table: no grpc in the error tree, every code a real gRPC code, round trips."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from opsfleet.common import errors
from opsfleet.common.errors import ERROR_TABLE, GrpcCode, mapping_for, retry_delay
from opsfleet.common.rpc_errors import error_from_status, grpc_status


def test_error_tree_imports_no_grpc() -> None:
    code = "import sys, opsfleet.common.errors, opsfleet.common.validation; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_code_name_is_a_grpc_status_code() -> None:
    assert {c.value for c in GrpcCode} == {s.name for s in grpc.StatusCode}


@pytest.mark.parametrize("cls", list(ERROR_TABLE))
def test_table_round_trip(cls: type[errors.OpsfleetError]) -> None:
    error = cls("boom")
    status = grpc_status(error)
    assert status.name == mapping_for(error).grpc_code.value
    back = error_from_status(status, "boom")
    assert grpc_status(back) == status  # the peer sees the same status class
    assert mapping_for(error).http_status >= 400


def test_retry_delays() -> None:
    assert retry_delay(errors.DatabaseUnavailable("x")) == 2.0
    assert retry_delay(errors.ResourceExhausted("x", retry_after=2.5)) == 2.5
    assert retry_delay(errors.InvalidArgument("x")) is None


def test_unknown_received_codes_are_internal() -> None:
    assert isinstance(error_from_status(grpc.StatusCode.UNKNOWN, "?"), errors.Internal)
    assert isinstance(errors.error_for_code("NO_SUCH_CODE", "?"), errors.Internal)
