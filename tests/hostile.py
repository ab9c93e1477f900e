"""A loopback server that answers with exactly the bytes a test gives: malformed, cut or hostile.

aiohttp.web always speaks valid HTTP, so the audit's probes (a bad status line, a header line over
8,190 bytes, a bad chunk size, a body cut half-way) need a server that writes raw bytes. It reads
each request's head and body (by ``Content-Length``, or until the client stops sending), records
them, and hands the connection to the test's answer function.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Self

import attrs

#: How long the server waits for a request's next bytes before giving up on it.
_READ_LIMIT = 10.0


@attrs.define
class RawRequest:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    complete: bool


Answer = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[None]]
"""Writes the answer to one request (and may close the connection)."""


def fixed(data: bytes, *, close: bool = True) -> Answer:
    """An answer that writes ``data`` and then closes the connection (unless ``close=False``)."""

    async def answer(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()

    return answer


def json_answer(body: bytes, *, status: str = "200 OK", extra: str = "") -> bytes:
    """A well-formed JSON answer's bytes, with ``extra`` header lines (each ending in CRLF)."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


class RawServer:
    """A raw-bytes HTTP/1.1 server on 127.0.0.1, run by the test's own loop or a thread.

    ``answers`` are used in turn, the last one for every later request.
    """

    def __init__(self, *answers: Answer) -> None:
        self._answers = list(answers)
        self.requests: list[RawRequest] = []
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, ``/v1`` included."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def _read_request(self, reader: asyncio.StreamReader) -> RawRequest | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_LIMIT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = ([*lines[0].split(" "), "", ""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        body = b""
        complete = True
        if length:
            try:
                body = await asyncio.wait_for(reader.readexactly(length), _READ_LIMIT)
            except asyncio.IncompleteReadError as exc:
                body, complete = exc.partial, False
            except TimeoutError:
                complete = False
        return RawRequest(method, path, headers, body, complete)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not writer.is_closing():
                request = await self._read_request(reader)
                if request is None:
                    break
                index = min(len(self.requests), len(self._answers) - 1)
                self.requests.append(request)
                await self._answers[index](request, writer)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # The loop is closing with this connection open; asyncio's stream server would log
            # the cancelled task as an error (Python 3.11), which is noise here.
            return
        finally:
            writer.close()

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=2**20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop the open connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                self._server.close_clients()  # type: ignore[attr-defined]
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[Self]:
        """Run the server on a loop of its own thread (for a subprocess or a blocking client)."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert ready.wait(10), "the raw server did not start"
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
