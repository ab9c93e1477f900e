"""The aiohttp transport: the only module that imports aiohttp (ARCHITECTURE.md).

It sends one ``Request`` and returns one ``Response``, translating every aiohttp and socket
exception into ``APIConnectionError`` / ``APITimeoutError`` with ``may_have_reached_server`` set
as precisely as aiohttp lets us tell: a refused connection or a connect timeout never reached the
server; anything after the connection was made might have.
"""

from __future__ import annotations

import contextlib
import os
from http import HTTPStatus
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from . import errors
from ._sansio import AttemptTimeout, DownloadSink, Request, Response, Upload

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["AiohttpTransport", "ClientSession"]

ClientSession = aiohttp.ClientSession

_CHUNK_SIZE = 64 * 1024


def _proxy_configured() -> bool:
    """Whether the environment names a proxy.

    ``trust_env=True`` makes aiohttp look proxies and ``.netrc`` up in a worker thread on *every*
    request: two thread-pool round trips that cost more CPU than the rest of the request (measured
    with cProfile). Trust the environment only when it has something to say.
    """
    return any(
        os.environ.get(name)
        for name in (
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        )
    )


def _outlived(limit: float | None, total: float | None) -> float | None:
    """None when ``total`` runs out first anyway: the limit could never fire."""
    return None if limit is not None and total is not None and total <= limit else limit


def _client_timeout(limits: AttemptTimeout) -> aiohttp.ClientTimeout:
    # Each limit is a timer aiohttp arms per request (the read one re-armed at every chunk);
    # with the defaults (read 600 s, total 600 s) the read timer can never fire before the
    # total one, so it is left out.
    total = limits.total
    return aiohttp.ClientTimeout(
        total=total,
        connect=_outlived(limits.connect, total),
        sock_read=_outlived(limits.read, total),
    )


def _range_start(content_range: str | None) -> int | None:
    """Return N of ``Content-Range: bytes N-M/T``, or None."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    start, _, _ = content_range[len("bytes ") :].partition("-")
    return int(start) if start.isdigit() else None


@contextlib.contextmanager
def _upload_form(body: Upload) -> Iterator[aiohttp.FormData]:
    """Yield a multipart form that streams the upload's source, closed afterwards if ours."""
    # quote_fields=False: the file name goes out as it is (escaped quotes, UTF-8), not
    # percent-encoded into "my%20data.jsonl" as aiohttp's default would store it.
    form = aiohttp.FormData(quote_fields=False)
    for name, value in body.fields:
        form.add_field(name, value)
    handle = body.open()
    try:
        # aiohttp reads a file object in chunks as it sends: the file is never held in memory.
        form.add_field(
            body.file_field, handle, filename=body.filename, content_type="application/octet-stream"
        )
        yield form
    finally:
        if body.owns_source:
            handle.close()


#: Everything aiohttp and the socket layer raise for a failed exchange.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def _translated(request: Request, exc: BaseException) -> errors.APIConnectionError:
    """Return the SDK's error for an aiohttp or socket exception, saying whether the request left.

    A plain function rather than a context manager: it runs only on failure, and the hot path
    pays nothing for it.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return errors.APITimeoutError(
            f"timed out connecting to {request.url}",
            method=request.method,
            url=request.url,
            may_have_reached_server=False,
        )
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return errors.APITimeoutError(
            f"timed out waiting for the answer to {request.method} {request.url}",
            method=request.method,
            url=request.url,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.APIConnectionError(
            f"could not connect to {request.url}: {exc}",
            method=request.method,
            url=request.url,
            may_have_reached_server=False,
        )
    return errors.APIConnectionError(
        f"connection failed during {request.method} {request.url}: {exc!r}",
        method=request.method,
        url=request.url,
    )


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
        # Nearly every attempt is a first one, whose limits are the same object each time: keep
        # the aiohttp timeout built for the last limits seen instead of building one per request.
        self._last_limits: AttemptTimeout | None = None
        self._last_timeout = aiohttp.ClientTimeout()

    def _timeout_for(self, limits: AttemptTimeout) -> aiohttp.ClientTimeout:
        if limits is not self._last_limits:
            self._last_timeout = _client_timeout(limits)
            self._last_limits = limits
        return self._last_timeout

    def _get_session(self) -> aiohttp.ClientSession:
        # ClientSession binds to the running loop: build it inside async code, never in __init__
        # (ARCHITECTURE.md rule 1).
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            session = aiohttp.ClientSession(connector=connector, trust_env=_proxy_configured())
            # aiohttp re-sends a GET or DELETE once, silently, when a connection drops (RFC 9112
            # section 9.3.1). The client's own retry loop already does that, with back-off and
            # within max_retries; two layers would double every retry and hide it from the
            # count. The switch is private (no constructor keyword), hence the guard.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False  # noqa: SLF001
            self._session = session
        return self._session

    def _check_open(self) -> aiohttp.ClientSession:
        if self._closed:
            # A programming error, not a network one: it must never be retried.
            raise errors.FinetuneError("this client's transport is closed; create a new client")
        return self._get_session()

    async def send(self, request: Request, limits: AttemptTimeout) -> Response:
        """Send ``request`` once and read the whole answer."""
        session = self._check_open()
        body = request.body
        # One coroutine for the common case (no upload): every layer of awaits costs each poll.
        form = _upload_form(body) if isinstance(body, Upload) else contextlib.nullcontext(body)
        # Opening the upload's file is outside the try: an unreadable file is not the network's.
        with form as data:
            try:
                async with session.request(
                    request.method,
                    # The URL is already percent-encoded by _sansio; keep yarl from re-encoding.
                    URL(request.url, encoded=True),
                    headers=request.headers,
                    data=data,
                    timeout=self._timeout_for(limits),
                ) as resp:
                    content = await resp.read()
                    return Response(status=resp.status, headers=resp.headers, body=content)
            except _TRANSPORT_ERRORS as exc:
                raise _translated(request, exc) from exc

    async def stream(
        self, request: Request, limits: AttemptTimeout, sink: DownloadSink
    ) -> Response:
        """Send ``request``; pass a 2xx body to ``sink`` chunk by chunk, read any other whole."""
        session = self._check_open()
        try:
            async with session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=request.headers,
                timeout=self._timeout_for(limits),
            ) as resp:
                if not HTTPStatus.OK <= resp.status < HTTPStatus.MULTIPLE_CHOICES:
                    return Response(
                        status=resp.status, headers=resp.headers, body=await resp.read()
                    )
                if resp.status != HTTPStatus.PARTIAL_CONTENT:
                    sink.restart()  # the whole file again: start over
                elif _range_start(resp.headers.get("Content-Range")) != sink.offset:
                    sink.restart()
                    raise errors.APIConnectionError(
                        f"{request.url} resumed at another offset than asked; starting over",
                        method=request.method,
                        url=request.url,
                    )
                async for chunk in resp.content.iter_chunked(_CHUNK_SIZE):
                    sink.write(chunk)
                return Response(status=resp.status, headers=resp.headers, body=b"")
        except _TRANSPORT_ERRORS as exc:
            raise _translated(request, exc) from exc

    async def aclose(self) -> None:
        """Close the session if this transport created it; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()
