"""WebhookReceiver served for real: an aiohttp sub-app on 127.0.0.1, and ASGI via ASGITransport.

Every answer of docs/api.md's "Webhooks" list: 200 only after ``on_event`` returned, 500 when it
raised, 400 without calling it, 413 before the body is read whole, 405 to anything but POST, and
deduplication on ``webhook-id`` (recorded only after a success, a concurrent twin waiting for
the first's outcome).
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx2
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from finetune_async.errors import InvalidParameterError
from finetune_async.types import WebhookEventType
from finetune_async.webhooks import WebhookReceiver, sign

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping

    from finetune_async.types import WebhookEvent

SECRET = "whsec_" + base64.b64encode(b"receiver test key of 32 bytes!!!").decode()
MAX_BODY = 4096
BOUND = 10.0  # seconds; generous, for a loaded machine


def event_body(event_id: str = "evt_1", event_type: str = "batch.completed") -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created_at": int(time.time()),
            "data": {"id": "batch_1"},
        }
    )


def delivery(webhook_id: str = "wh_1", body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    """A body and freshly signed headers, as one attempt of a delivery."""
    body = event_body() if body is None else body
    headers = sign(body, secret=SECRET, webhook_id=webhook_id, timestamp=int(time.time()))
    return body, {**headers, "content-type": "application/json"}


class Recorder:
    """An ``on_event`` that records events; it can be held at a gate, or made to raise."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.fail_next = 0
        self.running = 0
        self.most_at_once = 0

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_next:
                self.fail_next -= 1
                msg = "the handler failed"
                raise RuntimeError(msg)
        finally:
            self.running -= 1


class Served:
    """A receiver mounted with ``add_subapp("/hooks/")`` in an aiohttp app on 127.0.0.1."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.root = web.Application()
        self.root.add_subapp("/hooks/", receiver.aiohttp_app())
        self.runner = web.AppRunner(self.root, shutdown_timeout=1.0)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/"

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def post(
        self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str]:
        async with session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.text()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture
async def served(recorder: Recorder) -> AsyncIterator[Served]:
    server = Served(WebhookReceiver(secret=SECRET, on_event=recorder, max_body=MAX_BODY))
    await server.start()
    yield server
    await asyncio.wait_for(server.runner.cleanup(), BOUND)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as client:
        yield client


async def bounded(call: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(call, BOUND)


# --- aiohttp, served on 127.0.0.1 ------------------------------------------------------------


@pytest.mark.asyncio
async def test_answers_200_only_after_on_event_returned(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """The answer waits for on_event: none while it is held, 200 once it returns."""
    recorder.gate = asyncio.Event()
    body, headers = delivery()
    answer = asyncio.create_task(served.post(session, body, headers))
    await bounded(recorder.started.wait())
    await asyncio.sleep(0.05)
    assert False is answer.done()
    recorder.gate.set()
    assert (200, "ok") == await bounded(answer)
    (event,) = recorder.events
    assert ("evt_1", WebhookEventType.BATCH_COMPLETED, "wh_1") == (
        event.id,
        event.type,
        event.webhook_id,
    )


@pytest.mark.asyncio
async def test_answers_500_when_on_event_raised_and_a_retry_runs_it_again(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession, caplog: Any
) -> None:
    """A failed on_event gets 500 (the sender retries) and leaves the id unrecorded."""
    recorder.fail_next = 1
    body, headers = delivery()
    status, text = await bounded(served.post(session, body, headers))
    assert 500 == status
    assert "the handler failed" not in text  # the exception stays in the log
    assert any("wh_1" in record.getMessage() for record in caplog.records)
    assert (200, "ok") == await bounded(served.post(session, *delivery()))
    assert 2 == len(recorder.events)


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        pytest.param(lambda b, h: (b + b" ", h), "no signature", id="tampered-body"),
        pytest.param(lambda b, h: (b, {**h, "webhook-id": "wh_2"}), "no signature", id="other-id"),
        pytest.param(
            lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}),
            "the webhook-signature header is missing",
            id="unsigned",
        ),
        pytest.param(
            lambda b, h: (b, {**h, "webhook-timestamp": str(int(time.time()) - 3600)}),
            "s old, beyond the tolerance",
            id="stale",
        ),
    ],
)
@pytest.mark.asyncio
async def test_answers_400_to_a_failed_verification_without_on_event(
    served: Served,
    recorder: Recorder,
    session: aiohttp.ClientSession,
    tamper: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]],
    words: str,
) -> None:
    """A delivery failing verification gets 400 naming the check; on_event never runs."""
    body, headers = tamper(*delivery())
    status, text = await bounded(served.post(session, body, headers))
    assert 400 == status
    assert words in text
    assert SECRET.removeprefix("whsec_") not in text
    assert [] == recorder.events


@pytest.mark.asyncio
async def test_answers_400_to_a_signed_body_that_is_not_an_event(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A correctly signed body that is not an event gets 400 and never reaches on_event."""
    status, text = await bounded(served.post(session, *delivery(body=b'{"id": "evt_1"}')))
    assert (400, "the body is not an event: it has no 'type' field") == (status, text)
    assert [] == recorder.events


# 400: the receiver was reached and refused "{}", which is no event; 404: it was not reached.
@pytest.mark.parametrize(("path", "status"), [("/hooks", 400), ("/hooks/", 400), ("/hooks/x", 404)])
@pytest.mark.asyncio
async def test_the_mount_point_is_taken_with_or_without_its_slash(
    served: Served, session: aiohttp.ClientSession, path: str, status: int
) -> None:
    """Mounted at "/hooks/", both /hooks and /hooks/ reach the receiver (a sender follows no
    redirect), and nothing below them does."""
    url = f"http://127.0.0.1:{served.port}{path}"
    async with session.post(url, data=b"{}", headers=delivery(body=b"{}")[1]) as response:
        assert status == response.status


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.asyncio
async def test_answers_405_to_anything_but_post(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession, method: str
) -> None:
    """Only POST is taken; the answer says so in ``Allow``."""
    body, headers = delivery()
    async with session.request(method, served.url, data=body, headers=headers) as response:
        assert (405, "POST") == (response.status, response.headers.get("Allow"))
    assert [] == recorder.events


async def raw_exchange(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request head and body pieces on a raw socket, never finishing the body; return
    the status line the server answers with."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
        await writer.drain()
        line: bytes = await bounded(reader.readline())
        return line
    finally:
        writer.close()


def request_head(port: int, extra: str) -> bytes:
    _, headers = delivery()
    lines = ["POST /hooks/ HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join([*lines, extra]) + "\r\n\r\n").encode()


@pytest.mark.asyncio
async def test_413_for_a_declared_length_over_the_cap_before_any_body_byte(
    served: Served, recorder: Recorder
) -> None:
    """A Content-Length over max_body is refused on the head alone: no body byte is ever sent,
    yet the 413 arrives (the receiver did not wait to read it)."""
    head = request_head(served.port, f"Content-Length: {MAX_BODY + 1}")
    assert b"HTTP/1.1 413 Request Entity Too Large\r\n" == await raw_exchange(served.port, head, [])
    assert [] == recorder.events


@pytest.mark.asyncio
async def test_413_for_a_chunked_body_cut_off_at_the_cap(
    served: Served, recorder: Recorder
) -> None:
    """A chunked body is refused as soon as it passes max_body: the 413 arrives while the body
    has not ended (no last chunk is ever sent)."""
    head = request_head(served.port, "Transfer-Encoding: chunked")
    piece = b"x" * 1024
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (MAX_BODY // len(piece) + 1)
    assert b"HTTP/1.1 413 Request Entity Too Large\r\n" == await raw_exchange(
        served.port, head, chunks
    )
    assert [] == recorder.events


@pytest.mark.asyncio
async def test_chunked_body_within_the_cap_is_delivered(served: Served, recorder: Recorder) -> None:
    """A chunked delivery under max_body is read piece by piece and handled."""
    body, headers = delivery()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as session,
        session.post(served.url, data=pieces(), headers=headers) as response,
    ):
        assert "chunked" == response.request_info.headers.get("Transfer-Encoding")
        assert 200 == response.status
    assert 1 == len(recorder.events)


@pytest.mark.asyncio
async def test_body_exactly_at_the_cap_is_read(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """max_body is inclusive: a body of exactly max_body bytes is verified (here: 400, not 413)."""
    server = Served(WebhookReceiver(secret=SECRET, on_event=recorder, max_body=64))
    await server.start()
    try:
        body, headers = delivery(body=b"x" * 64)
        assert 400 == (await bounded(server.post(session, body, headers)))[0]
        body, headers = delivery(body=b"x" * 65)
        assert 413 == (await bounded(server.post(session, body, headers)))[0]
    finally:
        await server.runner.cleanup()


@pytest.mark.asyncio
async def test_a_redelivery_is_answered_200_without_on_event(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A retry of a handled webhook-id (freshly signed, as a sender retries) skips on_event."""
    assert (200, "ok") == await bounded(served.post(session, *delivery()))
    status, text = await bounded(served.post(session, *delivery()))
    assert (200, "duplicate: already handled") == (status, text)
    assert 1 == len(recorder.events)
    assert (200, "ok") == await bounded(served.post(session, *delivery("wh_2")))
    assert 2 == len(recorder.events)


@pytest.mark.asyncio
async def test_dedupe_remembers_the_last_n_ids(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """With dedupe=2 the oldest id is forgotten once two newer ones were handled."""
    server = Served(WebhookReceiver(secret=SECRET, on_event=recorder, dedupe=2))
    await server.start()
    try:
        for webhook_id in ("wh_a", "wh_b", "wh_b", "wh_c", "wh_b", "wh_a"):
            assert 200 == (await bounded(server.post(session, *delivery(webhook_id))))[0]
        assert ["wh_a", "wh_b", "wh_c", "wh_a"] == [e.webhook_id for e in recorder.events]
    finally:
        await server.runner.cleanup()


@pytest.mark.asyncio
async def test_concurrent_twin_waits_for_the_first_and_gets_its_200(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A second delivery of an id still inside on_event waits; on_event runs once; both 200."""
    recorder.gate = asyncio.Event()
    first = asyncio.create_task(served.post(session, *delivery()))
    await bounded(recorder.started.wait())
    second = asyncio.create_task(served.post(session, *delivery()))
    await asyncio.sleep(0.1)
    assert (False, 1) == (second.done(), len(recorder.events))
    recorder.gate.set()
    assert [(200, "ok"), (200, "ok")] == await bounded(asyncio.gather(first, second))
    assert (1, 1) == (len(recorder.events), recorder.most_at_once)


@pytest.mark.asyncio
async def test_concurrent_twin_gets_the_first_ones_500_and_a_later_retry_runs(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """When the first on_event fails, its waiting twin gets the same 500; the id stays unseen."""
    recorder.gate = asyncio.Event()
    recorder.fail_next = 1
    first = asyncio.create_task(served.post(session, *delivery()))
    await bounded(recorder.started.wait())
    second = asyncio.create_task(served.post(session, *delivery()))
    await asyncio.sleep(0.1)
    recorder.gate.set()
    statuses = [status for status, _ in await bounded(asyncio.gather(first, second))]
    assert ([500, 500], 1) == (statuses, len(recorder.events))
    assert (200, "ok") == await bounded(served.post(session, *delivery()))
    assert 2 == len(recorder.events)


@pytest.mark.asyncio
async def test_different_ids_run_concurrently(
    served: Served, recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """Only one id is serialized: deliveries of other ids run their on_event side by side."""
    recorder.gate = asyncio.Event()
    posts = [asyncio.create_task(served.post(session, *delivery(f"wh_{n}"))) for n in range(3)]
    for _ in range(200):
        if recorder.most_at_once == 3:
            break
        await asyncio.sleep(0.01)
    recorder.gate.set()
    assert [200, 200, 200] == [status for status, _ in await bounded(asyncio.gather(*posts))]
    assert 3 == recorder.most_at_once


@pytest.mark.asyncio
async def test_a_cancelled_on_event_gives_its_twin_500_and_leaves_the_id_unseen(
    recorder: Recorder,
) -> None:
    """When the delivery running on_event is cancelled (its server shut down), the twin waiting
    for it gets 500, and the next delivery of the id runs on_event again."""
    recorder.gate = asyncio.Event()
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder)
    first = asyncio.create_task(receiver.deliver(*delivery()))
    await bounded(recorder.started.wait())
    twin = asyncio.create_task(receiver.deliver(*delivery()))
    await asyncio.sleep(0.05)
    first.cancel()
    assert (500, "on_event did not finish") == await bounded(twin)
    assert True is first.cancelled()
    recorder.gate.set()
    assert (200, "ok") == await bounded(receiver.deliver(*delivery()))
    assert 2 == len(recorder.events)


# --- ASGI, through ASGITransport ---------------------------------------------------------------


def asgi_client(receiver: WebhookReceiver) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=receiver.asgi_app)
    return httpx2.AsyncClient(transport=transport, base_url="http://receiver", timeout=BOUND)


@pytest.mark.asyncio
async def test_asgi_answers_200_after_on_event(recorder: Recorder) -> None:
    """The ASGI app verifies, calls on_event, and answers 200; a redelivery is deduplicated."""
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder)
    async with asgi_client(receiver) as client:
        body, headers = delivery()
        response = await client.post("/", content=body, headers=headers)
        assert (200, "ok") == (response.status_code, response.text)
        assert "text/plain; charset=utf-8" == response.headers["content-type"]
        response = await client.post("/", content=body, headers=headers)
        assert (200, "duplicate: already handled") == (response.status_code, response.text)
    assert ["wh_1"] == [event.webhook_id for event in recorder.events]


@pytest.mark.asyncio
async def test_asgi_answers_500_400_and_405(recorder: Recorder) -> None:
    """The ASGI app gives the same answers as the aiohttp one."""
    recorder.fail_next = 1
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder)
    async with asgi_client(receiver) as client:
        body, headers = delivery()
        assert 500 == (await client.post("/", content=body, headers=headers)).status_code
        response = await client.post("/", content=body + b" ", headers=headers)
        assert 400 == response.status_code
        assert "no signature" in response.text
        response = await client.get("/", headers=headers)
        assert (405, "POST") == (response.status_code, response.headers["allow"])
        response = await client.post("/", content=body, headers={**headers, "content-length": "x"})
        assert 400 == response.status_code
    assert 1 == len(recorder.events)


class CountingBody:
    """A request body that counts how many of its pieces the app pulled."""

    def __init__(self, pieces: int, size: int = 1024) -> None:
        self.pieces = pieces
        self.size = size
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.pieces):
            self.pulled += 1
            yield b"x" * self.size


@pytest.mark.asyncio
async def test_asgi_413_for_a_declared_length_reads_nothing(recorder: Recorder) -> None:
    """A declared Content-Length over max_body is refused before a single piece is received."""
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder, max_body=MAX_BODY)
    body = CountingBody(pieces=8)
    _, headers = delivery()
    async with asgi_client(receiver) as client:
        response = await client.post(
            "/", content=body, headers={**headers, "content-length": str(8 * 1024)}
        )
    assert (413, 0) == (response.status_code, body.pulled)
    assert [] == recorder.events


@pytest.mark.asyncio
async def test_asgi_413_for_a_streamed_body_stops_at_the_cap(recorder: Recorder) -> None:
    """A body without a length is received until it passes max_body, and no further."""
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder, max_body=MAX_BODY)
    body = CountingBody(pieces=100)
    _, headers = delivery()
    async with asgi_client(receiver) as client:
        response = await client.post("/", content=body, headers=headers)
    assert (413, MAX_BODY // 1024 + 1) == (response.status_code, body.pulled)
    assert [] == recorder.events


@pytest.mark.asyncio
async def test_asgi_concurrent_twin_waits_for_the_first(recorder: Recorder) -> None:
    """Through ASGI too, a twin delivery waits for the first's on_event and shares its answer."""
    recorder.gate = asyncio.Event()
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder)
    async with asgi_client(receiver) as client:
        body, headers = delivery()
        first = asyncio.create_task(client.post("/", content=body, headers=headers))
        await bounded(recorder.started.wait())
        second = asyncio.create_task(client.post("/", content=body, headers=headers))
        await asyncio.sleep(0.05)
        assert False is second.done()
        recorder.gate.set()
        answers = await bounded(asyncio.gather(first, second))
    assert [200, 200] == [answer.status_code for answer in answers]
    assert 1 == len(recorder.events)


@pytest.mark.asyncio
async def test_asgi_lifespan_and_websocket(recorder: Recorder) -> None:
    """Served as the whole ASGI app, it completes the lifespan protocol and refuses websockets."""
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await bounded(receiver.asgi_app({"type": "lifespan"}, receive, send))
    assert [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}] == sent
    sent.clear()
    await bounded(receiver.asgi_app({"type": "websocket"}, receive, send))
    assert [{"type": "websocket.close", "code": 1008}] == sent


@pytest.mark.asyncio
async def test_asgi_client_gone_mid_body_is_not_answered(recorder: Recorder) -> None:
    """A disconnect before the body ended ends the call without an answer or on_event."""
    receiver = WebhookReceiver(secret=SECRET, on_event=recorder)
    _, headers = delivery()
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    await bounded(receiver.asgi_app(scope, receive, send))
    assert ([], []) == (sent, recorder.events)


# --- construction and imports -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"secret": "raw-secret"}, "secret"),
        ({"secret": []}, "secret"),
        ({"on_event": None}, "on_event"),
        ({"tolerance": -1}, "tolerance"),
        ({"max_body": 0}, "max_body"),
        ({"max_body": 1.5}, "max_body"),
        ({"dedupe": -1}, "dedupe"),
        ({"dedupe": True}, "dedupe"),
    ],
)
def test_bad_options_are_refused_at_construction(kwargs: dict[str, Any], param: str) -> None:
    """A malformed secret or an unusable option fails when the receiver is made, not per call."""
    arguments: dict[str, Any] = {"secret": SECRET, "on_event": Recorder(), **kwargs}
    with pytest.raises(InvalidParameterError) as caught:
        WebhookReceiver(**arguments)
    assert param == caught.value.param


def test_asgi_app_is_a_callable_object() -> None:
    """``asgi_app`` is neither a function nor a method, so Starlette's ``Route`` (and FastAPI's
    ``add_route``) serve it as an ASGI app instead of wrapping it as a request handler."""
    import inspect

    app = WebhookReceiver(secret=SECRET, on_event=Recorder()).asgi_app
    assert (False, False, True) == (inspect.isfunction(app), inspect.ismethod(app), callable(app))


def test_repr_hides_the_secret() -> None:
    """The receiver's repr counts the secrets and shows none."""
    text = repr(WebhookReceiver(secret=[SECRET, SECRET], on_event=Recorder()))
    assert "WebhookReceiver(secrets=2, tolerance=300, max_body=1048576, dedupe=10000)" == text


def test_receiver_and_asgi_app_load_no_aiohttp() -> None:
    """Importing finetune_async.webhooks and serving through ASGI never loads aiohttp."""
    code = (
        "import asyncio, sys\n"
        "from finetune_async.webhooks import WebhookReceiver, sign\n"
        f"secret = {SECRET!r}\n"
        "async def on_event(event):\n    pass\n"
        "receiver = WebhookReceiver(secret=secret, on_event=on_event)\n"
        'body = b\'{"id":"evt_1","type":"batch.failed","created_at":1,"data":{}}\'\n'
        "import time\n"
        "headers = sign(body, secret=secret, webhook_id='wh_1', timestamp=int(time.time()))\n"
        "scope = {'type': 'http', 'method': 'POST', 'headers': "
        "[(k.encode(), v.encode()) for k, v in headers.items()]}\n"
        "sent = []\n"
        "async def receive():\n    return {'type': 'http.request', 'body': body}\n"
        "async def send(message):\n    sent.append(message)\n"
        "asyncio.run(receiver.asgi_app(scope, receive, send))\n"
        "assert sent[0]['status'] == 200, sent\n"
        "print(','.join(m for m in ('aiohttp', 'anyio') if m in sys.modules))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "" == result.stdout.strip()
