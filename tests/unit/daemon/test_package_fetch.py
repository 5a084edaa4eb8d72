"""``package.fetch`` (the mTLS source's resume logic) and the stored fleet keys, against fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from opsfleet.common.errors import InvalidArgument, NotFound, Unavailable
from opsfleet.common.signing import create_key_pair
from opsfleet.daemon.updates import fleet_keys, package
from opsfleet.daemon.updates.package import Piece

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "RETRY_DELAY", 0.0)


class FakeSource:
    """Serves DATA in 1000-byte pieces; ``script`` says what each call does after N pieces."""

    def __init__(self, *script: tuple[int, BaseException | None]) -> None:
        self.script = list(script)
        self.offsets: list[int] = []

    async def pieces(
        self, component: str, version: str, sha256: str, offset: int
    ) -> AsyncGenerator[Piece, None]:
        self.offsets.append(offset)
        limit, error = self.script.pop(0) if self.script else (10**9, None)
        if offset == len(DATA):
            yield Piece(b"", offset, len(DATA))
        for sent, start in enumerate(range(offset, len(DATA), 1000)):
            if sent == limit:
                if error is not None:
                    raise error
                return
            yield Piece(DATA[start : start + 1000], start, len(DATA))


async def fetch(source: object, dest: Path, *, max_bytes: int = 10**6, timeout: float = 5.0) -> None:
    await package.fetch(
        source,  # type: ignore[arg-type]
        dest,
        component="agent:x",
        version="1",
        sha256="0" * 64,
        max_bytes=max_bytes,
        timeout=timeout,
    )


async def test_broken_and_short_streams_resume_at_the_bytes_held(tmp_path: Path) -> None:
    source = FakeSource((2, Unavailable("reset")), (3, None))  # an error, then a stream that ends early
    await fetch(source, tmp_path / "pkg")
    assert source.offsets == [0, 2000, 5000]
    assert (tmp_path / "pkg").read_bytes() == DATA


async def test_gives_up_after_the_attempts_and_keeps_the_part(tmp_path: Path) -> None:
    source = FakeSource(*[(1, Unavailable("reset"))] * package.DOWNLOAD_ATTEMPTS)
    with pytest.raises(Unavailable, match="download of the package failed: reset"):
        await fetch(source, tmp_path / "pkg")
    assert (tmp_path / "pkg.part").stat().st_size == 1000 * package.DOWNLOAD_ATTEMPTS
    assert not (tmp_path / "pkg").exists()


async def test_refusals_end_at_once(tmp_path: Path) -> None:
    source = FakeSource((0, NotFound("no artifact")))
    with pytest.raises(NotFound):
        await fetch(source, tmp_path / "pkg")
    assert source.offsets == [0]
    with pytest.raises(InvalidArgument, match="larger than the limit"):
        await fetch(FakeSource(), tmp_path / "big", max_bytes=len(DATA) - 1)


async def test_a_piece_at_the_wrong_offset_starts_over(tmp_path: Path) -> None:
    (tmp_path / "pkg.part").write_bytes(b"x" * 500)  # not a multiple of the fake's pieces

    class Shifted(FakeSource):
        async def pieces(
            self, component: str, version: str, sha256: str, offset: int
        ) -> AsyncGenerator[Piece, None]:
            self.offsets.append(offset)
            for at in range(0, len(DATA), 1000):  # ignores the offset asked for
                yield Piece(DATA[at : at + 1000], at, len(DATA))

    source = Shifted()
    await fetch(source, tmp_path / "pkg")
    assert source.offsets == [500, 0] and (tmp_path / "pkg").read_bytes() == DATA


async def test_a_silent_source_times_out(tmp_path: Path) -> None:
    class Silent:
        async def pieces(
            self, component: str, version: str, sha256: str, offset: int
        ) -> AsyncGenerator[Piece, None]:
            await asyncio.Event().wait()
            yield Piece(b"", 0, 0)

    with pytest.raises(Unavailable, match="no data from the Manager within"):
        await fetch(Silent(), tmp_path / "pkg", timeout=0.05)


def test_fleet_keys_are_stored_replaced_and_removed(tmp_path: Path) -> None:
    key = create_key_pair().public_b64
    assert fleet_keys.load_keys(tmp_path) == []
    fleet_keys.save_keys(tmp_path, [f" {key} "])
    assert fleet_keys.load_keys(tmp_path) == [key]
    with pytest.raises(InvalidArgument, match="invalid update key"):
        fleet_keys.save_keys(tmp_path, ["not-a-key"])
    assert fleet_keys.load_keys(tmp_path) == [key]  # a refused list changes nothing
    fleet_keys.save_keys(tmp_path, [])
    assert not fleet_keys.keys_path(tmp_path).exists()


@pytest.mark.parametrize("content", ["{", json.dumps({"keys": "x"}), json.dumps({"keys": ["bad"]})])
def test_a_damaged_keys_file_trusts_nothing(tmp_path: Path, content: str) -> None:
    path = fleet_keys.keys_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert fleet_keys.load_keys(tmp_path) == []
