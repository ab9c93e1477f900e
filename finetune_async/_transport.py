"""The aiohttp transport: the only module that imports aiohttp (ARCHITECTURE.md).

It sends one ``Request`` and returns one ``Response``, translating every aiohttp and socket
exception into ``APIConnectionError`` / ``APITimeoutError`` with ``may_have_reached_server`` set
as precisely as aiohttp lets us tell: a refused connection or a connect timeout never reached the
server; anything after the connection was made might have.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from . import errors
from ._sansio import AttemptTimeout, Request, Response

__all__ = ["AiohttpTransport", "ClientSession"]

ClientSession = aiohttp.ClientSession


class AiohttpTransport:
    """Sends requests over one ``aiohttp.ClientSession``, created lazily on the running loop.

    A session passed in is used as it is and left open: whoever creates a session closes it.
    """

    def __init__(
        self, *, session: aiohttp.ClientSession | None = None, max_connections: int = 1000
    ) -> None:
        """Create the transport; no session or socket is opened before the first request.

        Args:
            session: An existing session to send through (left open by ``aclose``).
            max_connections: Size of the connection pool of the session created here.
        """
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        # ClientSession binds to the running loop: build it inside async code, never in __init__
        # (ARCHITECTURE.md rule 1).
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            session = aiohttp.ClientSession(connector=connector, trust_env=True)
            # aiohttp re-sends a GET or DELETE once, silently, when a connection drops (RFC 9112
            # section 9.3.1). The client's own retry loop already does that, with back-off and
            # within max_retries; two layers would double every retry and hide it from the
            # count. The switch is private (no constructor keyword), hence the guard.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False  # noqa: SLF001
            self._session = session
        return self._session

    async def send(self, request: Request, limits: AttemptTimeout) -> Response:
        """Send ``request`` once and read the whole answer."""
        if self._closed:
            # A programming error, not a network one: it must never be retried.
            raise errors.FinetuneError("this client's transport is closed; create a new client")
        session = self._get_session()
        client_timeout = aiohttp.ClientTimeout(
            total=limits.total, connect=limits.connect, sock_read=limits.read
        )
        try:
            async with session.request(
                request.method,
                # The URL is already percent-encoded by _sansio; keep yarl from re-encoding it.
                URL(request.url, encoded=True),
                headers=request.headers,
                data=request.body,
                timeout=client_timeout,
                allow_redirects=True,
            ) as resp:
                body = await resp.read()
                return Response(status=resp.status, headers=resp.headers, body=body)
        except aiohttp.ConnectionTimeoutError as exc:
            raise errors.APITimeoutError(
                f"timed out connecting to {request.url}",
                method=request.method,
                url=request.url,
                may_have_reached_server=False,
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise errors.APITimeoutError(
                f"timed out waiting for the answer to {request.method} {request.url}",
                method=request.method,
                url=request.url,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise errors.APIConnectionError(
                f"could not connect to {request.url}: {exc}",
                method=request.method,
                url=request.url,
                may_have_reached_server=False,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.APIConnectionError(
                f"connection failed during {request.method} {request.url}: {exc!r}",
                method=request.method,
                url=request.url,
            ) from exc

    async def aclose(self) -> None:
        """Close the session if this transport created it; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()
