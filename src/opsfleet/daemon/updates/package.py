"""Fetch a package (inline bytes, the Manager over mTLS, or a download) into a file, check it,
unpack it into a directory.

Downloads stream to disk in chunks, resume a partial file (an HTTP Range request, or the
offset of FetchArtifact), stop at ``max_bytes``; nothing is ever held whole in memory
except inline ``update_data`` (which the gRPC message size already bounds).
A package is a ``.tar.gz`` archive, a ``.zip`` archive (told apart by their first bytes)
or a single executable, installed as ``<package_dir>/<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from opsfleet.common.errors import DeadlineExceeded, InvalidArgument, Unavailable
from opsfleet.common.signing import CHUNK, sha256_file

if TYPE_CHECKING:
    import httpx

DOWNLOAD_ATTEMPTS = 3
RETRY_DELAY = 0.5
_GZIP = b"\x1f\x8b"
_ZIP = b"PK\x03\x04"


def write_inline(data: bytes, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


async def download(
    url: str, dest: Path, *, max_bytes: int, timeout: float, client: httpx.AsyncClient
) -> None:
    """``url`` into ``dest``, resuming ``dest.part`` when the server honours Range requests."""
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for _ in range(DOWNLOAD_ATTEMPTS):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            async with client.stream("GET", url, headers=headers, timeout=timeout) as response:
                if response.status_code == 416:  # nothing left to fetch
                    break
                if response.status_code not in (200, 206):
                    raise InvalidArgument(f"download of the package failed: HTTP {response.status_code}")
                mode = "ab" if response.status_code == 206 else "wb"
                size = have if mode == "ab" else 0
                with part.open(mode) as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise InvalidArgument(f"package larger than the limit of {max_bytes} bytes")
                        out.write(chunk)
            break
        except httpx.HTTPError as exc:
            last_error = str(exc) or type(exc).__name__
    else:
        raise Unavailable(f"download of the package failed: {last_error}")
    os.replace(part, dest)


@dataclass(frozen=True)
class Piece:
    """A part of a package: ``data`` starts at ``offset`` of the ``size``-byte file."""

    data: bytes
    offset: int
    size: int


class PackageSource(Protocol):
    """Where an enrolled daemon reads packages (the Manager's FetchArtifact is the real one)."""

    def pieces(self, component: str, version: str, sha256: str, offset: int) -> AsyncGenerator[Piece, None]:
        """The package from ``offset`` on (at least one piece, empty at the end of the file);
        raises the project's errors (NotFound, Unavailable, ...)."""
        ...


async def fetch(
    source: PackageSource,
    dest: Path,
    *,
    component: str,
    version: str,
    sha256: str,
    max_bytes: int,
    timeout: float,
) -> None:
    """The package from ``source`` into ``dest``, resuming ``dest.part`` at its size.

    A broken stream (Unavailable, DeadlineExceeded, or a stream that ends early) is retried
    from the bytes already held, up to DOWNLOAD_ATTEMPTS times; other errors (NotFound,
    PermissionDenied, ...) end it at once. ``timeout`` bounds the wait for each piece."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(DOWNLOAD_ATTEMPTS):
        if attempt:
            await asyncio.sleep(RETRY_DELAY * attempt)
        have = part.stat().st_size if part.exists() else 0
        try:
            size = await _fetch_once(source, part, have, component, version, sha256, max_bytes, timeout)
        except (Unavailable, DeadlineExceeded) as exc:
            last_error = exc.message
            continue
        if size is not None:
            os.replace(part, dest)
            return
        last_error = "the transfer ended early"
    raise Unavailable(f"download of the package failed: {last_error}")


async def _fetch_once(
    source: PackageSource,
    part: Path,
    have: int,
    component: str,
    version: str,
    sha256: str,
    max_bytes: int,
    timeout: float,
) -> int | None:
    """Append the rest of the package to ``part``; its size when complete, None when cut short."""
    size: int | None = None
    async with contextlib.aclosing(source.pieces(component, version, sha256, have)) as pieces:
        with part.open("ab") as out:
            while True:
                try:
                    piece = await asyncio.wait_for(anext(pieces), timeout)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise DeadlineExceeded(f"no data from the Manager within {timeout:g}s") from exc
                if piece.size > max_bytes:
                    raise InvalidArgument(f"package larger than the limit of {max_bytes} bytes")
                if piece.offset != have or have + len(piece.data) > piece.size:
                    out.truncate(0)  # the Manager's file is not the one we hold part of: start over
                    raise Unavailable(f"the Manager sent bytes at {piece.offset}, expected {have}")
                out.write(piece.data)
                have += len(piece.data)
                size = piece.size
    return have if size is not None and have == size else None


def check_hash(path: Path, expected: str) -> None:
    actual, _ = sha256_file(path)
    if actual != expected:
        raise InvalidArgument(f"package hash mismatch: sha256 is {actual}, the update names {expected}")


def inline_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unpack(package: Path, target: Path, single_name: str) -> None:
    """Unpack ``package`` into the new directory ``target`` (atomically: all or nothing)."""
    staging = target.with_name(f".staging-{target.name}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with package.open("rb") as stream:
            head = stream.read(4)
        if head.startswith(_GZIP):
            _untar(package, staging)
        elif head == _ZIP:
            _unzip(package, staging)
        else:
            dest = staging / single_name
            shutil.copyfile(package, dest)
            dest.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _untar(package: Path, staging: Path) -> None:
    try:
        with tarfile.open(package, "r:gz") as archive:
            archive.extractall(staging, filter="data")  # refuses absolute paths, .., device files
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidArgument(f"cannot unpack the .tar.gz package: {exc}") from exc


def _unzip(package: Path, staging: Path) -> None:
    try:
        with zipfile.ZipFile(package) as archive:
            for info in archive.infolist():
                name = PurePosixPath(info.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise InvalidArgument(f"unsafe path in the .zip package: {info.filename!r}")
                archive.extract(info, staging)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    (staging / name).chmod(mode | stat.S_IRUSR)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidArgument(f"cannot unpack the .zip package: {exc}") from exc
