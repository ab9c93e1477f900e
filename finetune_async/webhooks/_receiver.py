"""``WebhookReceiver``: serve webhook deliveries as an aiohttp.web sub-app or a plain ASGI 3 app.

One delivery goes through one path, whichever server carries it (docs/api.md, "Webhooks"):

- anything but POST gets 405, with ``Allow: POST``;
- a body above ``max_body`` gets 413. A declared ``Content-Length`` is checked before a byte of
  the body is read, and a body without one (chunked) is read piece by piece and refused as soon as
  it passes the cap, so a large body is never held whole;
- a delivery that fails verification, or whose body is not an event, gets 400 and never reaches
  ``on_event``;
- a ``webhook-id`` among the last ``dedupe`` handled ones gets 200 without ``on_event``;
- otherwise ``on_event(event)`` runs, and the answer is 200 once it has returned, or 500 if it
  raised, so that the sender retries. Only a success records the id as handled;
- a second delivery of an id whose ``on_event`` is still running waits for it and gets its
  answer: ``on_event`` never runs twice at once for one id.

ASGI is a calling convention, not a dependency. aiohttp.web is imported inside ``aiohttp_app()``
only, so importing this module (and an ASGI-only service) never loads aiohttp. The receiver runs
on asyncio (uvicorn, hypercorn's asyncio worker, aiohttp).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError, WebhookVerificationError
from ._signature import _tolerance, load_keys, parse_event, verify

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence

    from aiohttp import web

    from ..types import WebhookEvent

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["WebhookReceiver"]

logger = logging.getLogger("finetune_async.webhooks")

_TEXT = "text/plain; charset=utf-8"
_ASGI_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})


class _InFlight:
    """One delivery inside ``on_event``: what later deliveries of its id wait for."""

    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.reply: tuple[int, str] = (500, "on_event did not finish")


class WebhookReceiver:
    """Receive webhook deliveries, verify them and hand each event to ``on_event`` once.

    Mount ``receiver.aiohttp_app()`` with ``app.add_subapp("/webhooks/", ...)``. In FastAPI or
    Starlette, route one path to ``receiver.asgi_app``
    (``app.add_route("/webhooks", receiver.asgi_app, methods=["POST"])``); ``app.mount`` works
    too, but then only ``/webhooks/`` is served, and ``/webhooks`` gets a redirect that senders do
    not follow. Any ASGI 3 server can serve ``receiver.asgi_app`` alone.

    Args:
        secret: The endpoint's secret ``whsec_…``, or several during a rotation.
        on_event: An async callable taking a ``WebhookEvent``; the delivery is answered 200 once
            it returns, 500 if it raises.
        tolerance: How far, in seconds, a delivery's timestamp may be from now, either way.
        max_body: The largest body accepted, in bytes; larger ones get 413.
        dedupe: How many handled ``webhook-id`` values are remembered (0: none).

    Raises:
        InvalidParameterError: A malformed secret or an unusable option.
    """

    def __init__(
        self,
        *,
        secret: str | Sequence[str],
        on_event: Callable[[WebhookEvent], Awaitable[object]],
        tolerance: float = 300,
        max_body: int = 1_048_576,
        dedupe: int = 10_000,
    ) -> None:
        try:
            self._keys = load_keys(secret)
        except WebhookVerificationError as exc:
            raise InvalidParameterError(f"secret: {exc}", param="secret") from None
        if not callable(on_event):
            raise InvalidParameterError("on_event: must be an async callable", param="on_event")
        self._tolerance = _tolerance(tolerance)
        self.max_body = _count(max_body, "max_body", minimum=1)
        self.dedupe = _count(dedupe, "dedupe", minimum=0)
        self._on_event = on_event
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._in_flight: dict[str, _InFlight] = {}
        self.asgi_app = _ASGIApp(self)
        """The ASGI 3 application (a callable object, so Starlette's ``Route`` takes it too)."""

    def __repr__(self) -> str:
        return (
            f"WebhookReceiver(secrets={len(self._keys)}, tolerance={self._tolerance:g}, "
            f"max_body={self.max_body}, dedupe={self.dedupe})"
        )

    def aiohttp_app(self) -> web.Application:
        """An ``aiohttp.web.Application`` taking deliveries as POST ``/``, for ``add_subapp``.

        Mounted with ``root.add_subapp("/webhooks/", receiver.aiohttp_app())`` it answers both
        ``/webhooks`` and ``/webhooks/``; it can also be served alone (``web.run_app``).
        """
        from aiohttp import web  # noqa: PLC0415 - the package must import without aiohttp

        max_body = self.max_body

        def reply(status: int, text: str) -> web.Response:
            headers = {"Allow": "POST"} if status == 405 else None  # noqa: PLR2004
            return web.Response(status=status, text=text, headers=headers)

        async def handle(request: web.Request) -> web.StreamResponse:
            if request.method != "POST":
                return reply(405, "only POST is accepted")
            declared = request.content_length
            if declared is not None and declared > max_body:
                return reply(413, _too_large(max_body))
            if declared is not None:
                # The parser stops at the declared length, which is within the cap.
                body: bytes | None = await request.content.read()
            else:
                body = await _read_stream_capped(request.content, max_body)
            if body is None:
                return reply(413, _too_large(max_body))
            return reply(*await self.deliver(body, request.headers))

        app = web.Application()
        # "" too: mounted with add_subapp("/webhooks/"), the prefix without its slash is taken as
        # well, since a sender never follows the redirect a framework would answer instead.
        app.router.add_route("*", "", handle)
        app.router.add_route("*", "/", handle)
        return app

    async def deliver(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """Handle one delivery whose body was read whole: its HTTP status and a short text.

        The servers above call this; so can a server of another kind. The text never holds the
        secret, the signature or the body.
        """
        try:
            webhook_id = verify(body, headers, self._keys, self._tolerance, time.time())
        except WebhookVerificationError as exc:
            return 400, str(exc)
        if webhook_id in self._seen:
            return 200, "duplicate: already handled"
        flight = self._in_flight.get(webhook_id)
        if flight is not None:
            await flight.done.wait()
            return flight.reply
        try:
            event = parse_event(body, webhook_id)
        except WebhookVerificationError as exc:
            return 400, str(exc)
        # No await since the look-ups above: this delivery is the one that runs on_event.
        flight = self._in_flight[webhook_id] = _InFlight()
        try:
            await self._on_event(event)
        except Exception:
            logger.exception("on_event raised for webhook %s (answered 500)", webhook_id)
            flight.reply = (500, "on_event failed: the sender should retry")
        else:
            self._remember(webhook_id)
            flight.reply = (200, "ok")
        finally:
            # Also on cancellation: the waiters then get the default 500.
            del self._in_flight[webhook_id]
            flight.done.set()
        return flight.reply

    def _remember(self, webhook_id: str) -> None:
        if not self.dedupe:
            return
        self._seen[webhook_id] = None
        if len(self._seen) > self.dedupe:
            self._seen.popitem(last=False)


class _ASGIApp:
    """The receiver as an ASGI 3 application."""

    __slots__ = ("_receiver",)

    def __init__(self, receiver: WebhookReceiver) -> None:
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":  # a websocket: refuse it (an HTTP 403 before the handshake)
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["method"] != "POST":
            await _asgi_reply(send, 405, "only POST is accepted", allow=True)
            return
        headers, declared = _asgi_headers(scope["headers"])
        max_body = self._receiver.max_body
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            if declared.isdigit():
                await _asgi_reply(send, 413, _too_large(max_body))
            else:
                await _asgi_reply(send, 400, "the content-length header is not a number")
            return
        body = await _read_asgi_capped(receive, max_body)
        if body is _DISCONNECTED:
            return  # nobody is left to answer
        if body is None:
            await _asgi_reply(send, 413, _too_large(max_body))
            return
        status, text = await self._receiver.deliver(body, headers)  # type: ignore[arg-type]
        await _asgi_reply(send, status, text)


_DISCONNECTED = object()


async def _read_asgi_capped(receive: Receive, cap: int) -> bytes | object | None:
    """The body, None once it passes ``cap`` (the rest is never read), or ``_DISCONNECTED``."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _DISCONNECTED
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _read_stream_capped(stream: Any, cap: int) -> bytes | None:
    """An aiohttp body without a declared length, piece by piece; None once it passes ``cap``."""
    chunks = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _asgi_headers(raw: Any) -> tuple[dict[str, str], str | None]:
    """The three webhook headers (the first of each) and ``content-length``, as text."""
    found: dict[str, str] = {}
    declared = None
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key in _ASGI_HEADERS:
            found.setdefault(key, value.decode("latin-1"))
        elif key == "content-length" and declared is None:
            declared = value.decode("latin-1").strip()
    return found, declared


async def _lifespan(receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol, for a receiver served as the whole application."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _asgi_reply(send: Send, status: int, text: str, *, allow: bool = False) -> None:
    body = text.encode()
    headers = [(b"content-type", _TEXT.encode()), (b"content-length", str(len(body)).encode())]
    if allow:
        headers.append((b"allow", b"POST"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large(max_body: int) -> str:
    return f"the body is larger than max_body ({max_body} bytes)"


def _count(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameterError(
            f"{name}: must be an int >= {minimum}, got {value!r}", param=name
        )
    return value
