"""Update packages: streamed upload (size-limited, hashed on the way), signing, listing, deletion,
and short-lived download tokens for daemons.

Files are stored as ``<dir>/<sha256>`` (two artifacts with the same bytes share one file);
an upload goes to ``<dir>/.incoming-<random>`` first and is renamed into place once its
size and hash are known, so a failed upload leaves nothing behind. Nothing is ever held
whole in memory.

Signing: an upload with a signature keeps it as given (the daemons check it against their
trusted keys); an upload without one is signed with the Manager's key
(``artifacts.signing_key_file``) when it has one, and refused otherwise: an unsigned
package could never be installed.

Download tokens: ``<artifact id>.<expiry>.<hmac>`` with a key derived from the token secret,
so every replica accepts a token any replica issued. They name the artifact, not the node:
the daemon is reached over its own authenticated channel, the token only lets it fetch the
package it was told to fetch, for ``download_token_ttl`` seconds.

Fetching over mTLS (:meth:`ArtifactService.fetch`): an enrolled daemon reads a package by
component, version and hash from a byte offset over the Manager's main gRPC port; the caller's
node certificate is checked by the gRPC adapter, so no token is needed. Any enrolled node may
read any stored package (packages are signed, not secret).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from opsfleet.common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from opsfleet.common.signing import check_target, public_key_of, sign
from opsfleet.manager.domain import Artifact

log = logging.getLogger(__name__)

MAX_FILENAME = 255
FETCH_CHUNK = 256 * 1024  # well below the gRPC message limit


@dataclass(frozen=True)
class Piece:
    """A part of a package: ``data`` starts at ``offset`` of the ``size``-byte file."""

    data: bytes
    offset: int
    size: int


class ArtifactStore(Protocol):
    async def insert_artifact(self, artifact: Artifact) -> Artifact | None: ...

    async def get_artifact(self, artifact_id: int) -> Artifact | None: ...

    async def find_artifact(self, component: str, version: str) -> Artifact | None: ...

    async def list_artifacts(self, component: str | None = None) -> list[Artifact]: ...

    async def delete_artifact(self, artifact_id: int) -> Artifact | None: ...

    async def count_by_sha256(self, sha256: str) -> int: ...


class ArtifactService:
    def __init__(
        self,
        store: ArtifactStore,
        directory: Path,
        *,
        max_bytes: int,
        signing_key: bytes | None,
        token_key: Callable[[], bytes],
        token_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.directory = directory
        self._max_bytes = max_bytes
        self._signing_key = signing_key
        self._token_key = token_key
        self._token_ttl = token_ttl
        self._clock = clock

    @property
    def public_key(self) -> str:
        """The base64 public key of the Manager's signing key ("" without one)."""
        return public_key_of(self._signing_key) if self._signing_key else ""

    def update_keys(self) -> list[str]:
        """The fleet's update public keys handed to nodes at enrollment and renewal."""
        key = self.public_key
        return [key] if key else []

    async def upload(
        self,
        chunks: AsyncIterator[bytes],
        *,
        component: str,
        version: str,
        filename: str,
        signature: str,
        username: str,
    ) -> Artifact:
        check_target(component, version)
        filename = os.path.basename(filename)[:MAX_FILENAME] or "package"
        if not signature and self._signing_key is None:
            raise InvalidArgument(
                "no signature given and the Manager holds no signing key (artifacts.signing_key_file): "
                "sign the package with `opsfleet artifacts sign` and upload with --signature"
            )
        if await self._store.find_artifact(component, version) is not None:
            raise Conflict(f"{component} {version} is already stored; delete it first")
        self.directory.mkdir(parents=True, exist_ok=True)
        incoming = self.directory / f".incoming-{secrets.token_hex(8)}"
        try:
            sha256, size = await self._receive(chunks, incoming)
            if size == 0:
                raise InvalidArgument("the package is empty")
            signed_here = not signature
            if signed_here:
                assert self._signing_key is not None
                signature = sign(self._signing_key, component, version, sha256)
            os.replace(incoming, self.directory / sha256)
        finally:
            incoming.unlink(missing_ok=True)
        record = Artifact(
            id=0,
            component=component,
            version=version,
            filename=filename,
            size=size,
            sha256=sha256,
            signature=signature,
            signed_by_manager=signed_here,
            created_at=self._clock(),
            created_by=username,
        )
        stored = await self._store.insert_artifact(record)
        if stored is None:
            await self._drop_file_if_unused(sha256)
            raise Conflict(f"{component} {version} is already stored; delete it first")
        log.info("artifact %s %s stored (%d bytes, sha256 %s)", component, version, size, sha256)
        return stored

    async def _receive(self, chunks: AsyncIterator[bytes], dest: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with dest.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > self._max_bytes:
                    raise InvalidArgument(f"package larger than the limit of {self._max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest(), size

    async def list(self, component: str | None = None) -> list[Artifact]:
        return await self._store.list_artifacts(component)

    async def get(self, artifact_id: int) -> Artifact:
        found = await self._store.get_artifact(artifact_id)
        if found is None:
            raise NotFound(f"no artifact {artifact_id}")
        return found

    async def find(self, component: str, version: str) -> Artifact:
        found = await self._store.find_artifact(component, version)
        if found is None:
            raise NotFound(f"no artifact {component} {version}")
        return found

    async def delete(self, artifact_id: int) -> Artifact:
        gone = await self._store.delete_artifact(artifact_id)
        if gone is None:
            raise NotFound(f"no artifact {artifact_id}")
        await self._drop_file_if_unused(gone.sha256)
        return gone

    async def fetch(
        self, *, component: str, version: str, sha256: str, offset: int, chunk: int = FETCH_CHUNK
    ) -> AsyncGenerator[Piece, None]:
        """The stored package of ``component``/``version`` from ``offset`` on, in pieces.

        NotFound when nothing is stored for them or the stored package's hash is not
        ``sha256``; InvalidArgument for an offset outside the file. At least one piece comes
        (an empty one at the end of the file, so a caller holding everything learns the size).
        The file is read in a thread, one piece at a time."""
        check_target(component, version)
        artifact = await self.find(component, version)
        if sha256 and artifact.sha256 != sha256.strip().lower():
            raise NotFound(f"the stored package of {component} {version} has another hash")
        if not 0 <= offset <= artifact.size:
            raise InvalidArgument(f"offset must be between 0 and {artifact.size}, got {offset}")
        try:
            stream = await asyncio.to_thread((self.directory / artifact.sha256).open, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"the package file of {component} {version} is missing") from exc
        try:
            await asyncio.to_thread(stream.seek, offset)
            position = offset
            if position == artifact.size:
                yield Piece(b"", position, artifact.size)
            while data := await asyncio.to_thread(stream.read, chunk):
                yield Piece(data, position, artifact.size)
                position += len(data)
        finally:
            stream.close()

    def path(self, artifact: Artifact) -> Path:
        return self.directory / artifact.sha256

    async def _drop_file_if_unused(self, sha256: str) -> None:
        if await self._store.count_by_sha256(sha256) == 0:
            (self.directory / sha256).unlink(missing_ok=True)

    # -- download tokens ------------------------------------------------------------------

    def download_token(self, artifact_id: int) -> str:
        expires = int(self._clock() + self._token_ttl)
        return f"{artifact_id}.{expires}.{self._mac(artifact_id, expires)}"

    def check_token(self, artifact_id: int, token: str) -> None:
        """PermissionDenied unless ``token`` was issued for ``artifact_id`` and has not expired."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or parts[0] != str(artifact_id):
            raise PermissionDenied("invalid download token")
        expires = int(parts[1])
        if not hmac.compare_digest(parts[2], self._mac(artifact_id, expires)):
            raise PermissionDenied("invalid download token")
        if expires < self._clock():
            raise PermissionDenied("download token expired")

    def _mac(self, artifact_id: int, expires: int) -> str:
        message = f"artifact-download\n{artifact_id}\n{expires}".encode()
        return hmac.new(self._token_key(), message, hashlib.sha256).hexdigest()
