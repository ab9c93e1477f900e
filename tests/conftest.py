"""Shared fixtures: aioresponses made to work on aiohttp 3.14, and a loopback test server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientResponse, web
from aioresponses import aioresponses

from finetune_async import AsyncClient, Backoff

#: The official spec, vendored with its provenance in tests/contract/spec/README.md. Tests read
#: nothing outside the repository.
SPEC_PATH = Path(__file__).resolve().parent / "contract" / "spec" / "openai-finetune-facts.yaml"

API_KEY = "sk-test"
BASE_URL = "https://api.test/v1"
NO_BACKOFF = Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class _StubStreamWriter:
    """What aiohttp 3.14's ClientResponse reads from its new ``stream_writer`` argument."""

    output_size = 0


class ShimClientResponse(ClientResponse):
    """A ClientResponse that aioresponses 0.7.9 can build on aiohttp 3.14.

    aiohttp 3.14 made ``stream_writer`` a required keyword of ``ClientResponse.__init__`` and
    aioresponses does not pass it (upstream pnuckowski/aioresponses#289). Do not pin aiohttp back:
    supply a stub writer here until aioresponses is fixed.
    """

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _StubStreamWriter())
        super().__init__(method, url, **kwargs)


class MockAPI(aioresponses):
    """aioresponses with the 3.14 shim as the default response class."""

    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", ShimClientResponse)
        super().add(url, method, *args, **kwargs)

    def calls(self, method: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """Return every request seen as (method, url, kwargs), in the order they were sent."""
        seen: list[tuple[str, str, dict[str, Any]]] = []
        for (verb, url), requests in self.requests.items():
            seen.extend((verb, str(url), call.kwargs) for call in requests)
        # aioresponses groups by (method, url); the order within one group is the send order.
        return [c for c in seen if method is None or c[0] == method]


@pytest.fixture
def mock_api() -> Iterator[MockAPI]:
    """Intercept every aiohttp request of the test (none reaches the network)."""
    mocked = MockAPI()
    with mocked:
        yield mocked


@pytest_asyncio.fixture
async def client() -> AsyncIterator[AsyncClient]:
    """A client on ``BASE_URL`` that retries without sleeping."""
    async with AsyncClient(api_key=API_KEY, base_url=BASE_URL, backoff=NO_BACKOFF) as c:
        yield c


Handler = Callable[[web.Request], Any]


class LoopbackServer:
    """A real aiohttp server on 127.0.0.1 with a free port; routes added by the test."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[web.Request] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, ``/v1`` included."""
        return f"http://127.0.0.1:{self.port}/v1"

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``handler`` at ``/v1{path}``, recording each request."""

        async def recorded(request: web.Request) -> Any:
            self.requests.append(request)
            return await handler(request)

        self.app.router.add_route(method, "/v1" + path, recorded)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        assert sockets
        self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), timeout=5)


@pytest_asyncio.fixture
async def loopback() -> AsyncIterator[LoopbackServer]:
    """A loopback server, stopped after the test; add routes before the first request."""
    server = LoopbackServer()
    yield server
    await server.stop()
