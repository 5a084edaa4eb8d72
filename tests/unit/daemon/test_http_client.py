"""LazyHttpClient: no client (and no httpx import) until first use; aclose() idempotent."""

from __future__ import annotations

from opsfleet.daemon.http_client import LazyHttpClient


async def test_client_is_made_on_first_use_and_closed_once() -> None:
    lazy = LazyHttpClient(follow_redirects=True)
    assert not lazy.made
    await lazy.aclose()  # nothing made: nothing to close
    client = lazy.get()
    assert lazy.made
    assert lazy.get() is client
    assert client.follow_redirects
    assert not client.is_closed
    await lazy.aclose()
    await lazy.aclose()
    assert client.is_closed
    assert not lazy.made
