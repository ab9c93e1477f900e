"""The aiohttp transport: the only module that imports aiohttp (docs/architecture.md).

It sends one ``Request`` and returns one ``Response``, translating every aiohttp and socket
exception into ``APIConnectionError`` / ``APITimeoutError`` with ``may_have_reached_server`` set
as precisely as aiohttp lets us tell: a refused connection or a connect timeout never reached the
server; anything after the connection was made might have.

What it guards against, because a server can be broken or hostile:
- messages name the failure in words, never with aiohttp's ``repr`` (its ``RequestInfo`` holds
  every request header, the API key among them), and credentials are scrubbed out of any server
  bytes they quote;
- redirects are never followed (the client reports a 3xx instead);
- a JSON answer may neither declare nor decode to more than the attempt's ``max_body``;
- an upload whose file shrinks while it is sent stops at once with a clear error, and a file
  object the caller passed in is never closed;
- a download that ends short of its declared length is a cut connection, not a whole file.
"""

from __future__ import annotations

import contextlib
import io
import os
from http import HTTPStatus
from typing import TYPE_CHECKING, BinaryIO, Final, cast

import aiohttp
import aiohttp.payload
from yarl import URL

from . import errors
from ._sansio import (
    AttemptTimeout,
    DownloadSink,
    Request,
    Response,
    Upload,
    request_id_of,
    scrub,
    secrets_of,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["AiohttpTransport", "ClientSession"]

ClientSession = aiohttp.ClientSession

_CHUNK_SIZE: Final = 64 * 1024
#: The most characters of a parser's complaint quoted in a message.
_DETAIL_LIMIT: Final = 200


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


class SourceShrankError(Exception):
    """Raised inside aiohttp's body writer when the upload's file ends before its size."""

    def __init__(self, read: int, expected: int) -> None:
        super().__init__(f"{read} of {expected} bytes")
        self.read = read
        self.expected = expected


class _CheckedSource(io.RawIOBase):
    """The upload's file as aiohttp reads it: counted, checked for a short read, closed if ours.

    aiohttp's file payload closes the file it sent and stops quietly at an early end of file,
    leaving the server waiting for bytes that never come (until the total timeout, and then the
    outcome looks unknown). Seen through this guard, a caller's file object stays open (a retry
    seeks it back to where it started), and a file that shrank mid-way raises at once.
    """

    def __init__(self, handle: BinaryIO, *, owned: bool) -> None:
        super().__init__()
        self._handle = handle
        self._owned = owned
        self._seekable = _seekable(handle)
        # Where the file ends, measured now: a pipe has no end to measure, and is sent chunked.
        self.expected: int | None = None
        self._start = 0
        if self._seekable:
            self._start = handle.tell()
            self.expected = handle.seek(0, io.SEEK_END) - self._start
            handle.seek(self._start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        if not self._seekable:
            # aiohttp asks where a stream starts; a pipe cannot say, so it is sent once.
            raise OSError("a pipe has no position")
        return self._handle.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        data = self._handle.read(-1 if size is None else size)
        if not data and size != 0 and self.expected is not None:
            done = self._handle.tell() - self._start
            if done < self.expected:
                raise SourceShrankError(done, self.expected)
        return data

    def close(self) -> None:
        if self._owned:
            self._handle.close()
        super().close()


def _seekable(handle: BinaryIO) -> bool:
    try:
        return bool(handle.seekable())
    except (OSError, ValueError):
        return False


class _SourcePayload(aiohttp.payload.IOBasePayload):
    """A file part whose size is the one measured when the attempt began (None: a pipe)."""

    _value: _CheckedSource

    @property
    def size(self) -> int | None:
        return self._value.expected


@contextlib.contextmanager
def _upload_form(body: Upload) -> Iterator[aiohttp.FormData]:
    """Yield a multipart form that streams the upload's source, closed afterwards if ours."""
    # quote_fields=False: the file name goes out as it is (escaped quotes, UTF-8), not
    # percent-encoded into "my%20data.jsonl" as aiohttp's default would store it.
    form = aiohttp.FormData(quote_fields=False)
    for name, value in body.fields:
        form.add_field(name, value)
    source = _CheckedSource(body.open(), owned=body.owns_source)
    try:
        # aiohttp reads the file in chunks as it sends: the file is never held in memory.
        octets = "application/octet-stream"
        part = _SourcePayload(cast("BinaryIO", source), content_type=octets)
        form.add_field(body.file_field, part, filename=body.filename, content_type=octets)
        yield form
    finally:
        source.close()


#: Everything aiohttp and the socket layer raise for a failed exchange.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def _describe(exc: BaseException) -> str:
    """Say what failed, in words: never aiohttp's ``repr``, which holds the request's headers."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a complete answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer's body was cut off or malformed"
    if isinstance(exc, aiohttp.ClientResponseError):
        # The HTTP parser's complaint: a bad status line, a bad header, a line over 8,190 bytes.
        detail = str(exc.message)[:_DETAIL_LIMIT]
        return f"the answer was not valid HTTP ({detail})" if detail else "the answer was not HTTP"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"could not connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"the connection failed ({exc.strerror})"
    return f"the connection failed ({type(exc).__name__})"


def _shrank_cause(exc: BaseException) -> SourceShrankError | None:
    """The short read behind an aiohttp error, if the upload's file shrank (aiohttp wraps it)."""
    seen: BaseException | None = exc
    for _ in range(5):  # the chain is short; a bound keeps a cycle from looping
        if seen is None:
            return None
        if isinstance(seen, SourceShrankError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _translated(request: Request, exc: BaseException) -> errors.FinetuneError:
    """Return the SDK's error for an aiohttp or socket exception, saying whether the request left.

    A plain function rather than a context manager: it runs only on failure, and the hot path
    pays nothing for it. Every message is scrubbed of the request's credentials.
    """
    shrank = _shrank_cause(exc)
    if shrank is not None and isinstance(request.body, Upload):
        # The server never got a whole request: nothing can have been created.
        return errors.FinetuneError(
            f"{request.body.filename}: the file shrank while it was being uploaded (it ended after"
            f" {shrank.read:,} of {shrank.expected:,} bytes); the upload was stopped and nothing"
            " was created"
        )
    secrets = secrets_of(request.headers)
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
            scrub(f"{_describe(exc)} to {request.url}", secrets),
            method=request.method,
            url=request.url,
            may_have_reached_server=False,
        )
    return errors.APIConnectionError(
        scrub(f"{request.method} {request.url}: {_describe(exc)}", secrets),
        method=request.method,
        url=request.url,
    )


def _too_large(
    request: Request, resp: aiohttp.ClientResponse, why: str
) -> errors.APIResponseValidationError:
    return errors.APIResponseValidationError(
        f"{request.method} {request.url}: the answer {why}; a JSON answer may hold at most the"
        " client's max_response_size (the default is 64 MiB), so it was not read",
        status_code=resp.status,
        request_id=request_id_of(resp.headers),
        method=request.method,
        url=request.url,
    )


async def _read_capped(request: Request, resp: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """Read the whole answer, refusing one that declares or decodes to more than ``limit``."""
    if limit is None:
        return await resp.read()
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise _too_large(request, resp, f"declares {declared:,} bytes")
    if declared is not None and resp.headers.get("Content-Encoding", "identity") == "identity":
        # The parser reads exactly the declared bytes: the common case stays one call.
        return await resp.read()
    # Compressed, chunked or close-delimited: count the decoded bytes as they arrive (aiohttp
    # inflates in bounded steps), so a gzip bomb stops at the cap instead of filling memory.
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(request, resp, f"decodes to more than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _expected_end(resp: aiohttp.ClientResponse, offset: int) -> int | None:
    """Where a download's bytes must end, from ``Content-Length`` or ``Content-Range``, if known."""
    if resp.headers.get("Content-Encoding", "identity") != "identity":
        return None  # the declared length counts compressed bytes
    if resp.status == HTTPStatus.PARTIAL_CONTENT:
        _, _, span = (resp.headers.get("Content-Range") or "").partition(" ")
        _, _, end = span.partition("/")[0].partition("-")
        return int(end) + 1 if end.isdigit() else None
    declared = resp.content_length
    return None if declared is None else offset + declared


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
        # (docs/architecture.md rule 1).
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
                    allow_redirects=False,
                ) as resp:
                    limit = limits.max_body
                    declared = resp.content_length
                    # The common answer (a declared length under the cap, not compressed) is
                    # read in one call: the parser stops at the declared bytes.
                    if limit is None or (
                        declared is not None
                        and declared <= limit
                        and "Content-Encoding" not in resp.headers
                    ):
                        content = await resp.read()
                    else:
                        content = await _read_capped(request, resp, limit)
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
                allow_redirects=False,
            ) as resp:
                if not HTTPStatus.OK <= resp.status < HTTPStatus.MULTIPLE_CHOICES:
                    body = await _read_capped(request, resp, limits.max_body)
                    return Response(status=resp.status, headers=resp.headers, body=body)
                if resp.status != HTTPStatus.PARTIAL_CONTENT:
                    sink.restart()  # the whole file again: start over
                elif _range_start(resp.headers.get("Content-Range")) != sink.offset:
                    sink.restart()
                    raise errors.APIConnectionError(
                        f"{request.url} resumed at another offset than asked; starting over",
                        method=request.method,
                        url=request.url,
                    )
                end = _expected_end(resp, sink.offset)
                async for chunk in resp.content.iter_chunked(_CHUNK_SIZE):
                    sink.write(chunk)
                if end is not None and sink.offset != end:
                    # A close-delimited body cut half-way looks complete to aiohttp: the
                    # declared length is the only witness. Retried (resumed) like a drop.
                    raise errors.APIConnectionError(
                        f"{request.method} {request.url}: the download ended at byte"
                        f" {sink.offset:,} of {end:,}",
                        method=request.method,
                        url=request.url,
                    )
                return Response(status=resp.status, headers=resp.headers, body=b"")
        except _TRANSPORT_ERRORS as exc:
            raise _translated(request, exc) from exc

    async def aclose(self) -> None:
        """Close the session if this transport created it; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()
