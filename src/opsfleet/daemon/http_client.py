"""The daemon's HTTP client, made on first use.

httpx (and what it imports) costs a daemon several MiB of memory, and most daemons never
speak HTTP: only an agent with an HTTP health probe or a package downloaded from a URL
needs it. :class:`LazyHttpClient` imports httpx and makes its ``AsyncClient`` the first
time :meth:`get` is called. Called from the event loop thread only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


class LazyHttpClient:
    """One ``httpx.AsyncClient(trust_env=False, **options)``, made by the first :meth:`get`.

    ``aclose()`` closes it (idempotent, safe when it was never made); a :meth:`get` after
    ``aclose()`` makes a new one.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._client: httpx.AsyncClient | None = None

    @property
    def made(self) -> bool:
        return self._client is not None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            # No proxies from the environment: probes go to 127.0.0.1, downloads to the
            # URL the operator published.
            self._client = httpx.AsyncClient(trust_env=False, **self._options)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
