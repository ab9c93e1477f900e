"""The emulator's webhooks, delivered to real receivers on 127.0.0.1.

Every terminal type of jobs and batches, the signature (checked with the SDK's own
``verify_signature``; the official peers are tested against it in test_webhooks_interop.py),
retries on the emulator's clock after 500s, a receiver that is down, a timeout and a redirect,
the 72-hour limit, drops, duplicates and delays, and a rotation. Most tests run at ``speed=0``
and move the clock with ``advance``, so the back-off schedule is exact and no test waits on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from aiohttp import web

from finetune_async import AsyncClient
from finetune_async.emulator import Emulator, Faults, Timing, WebhookEndpoint
from finetune_async.emulator._webhooks import (
    LONGEST_RETRY,
    MAX_RETRY_WINDOW,
    USER_AGENT,
    backoff,
)
from finetune_async.errors import InvalidParameterError, WebhookVerificationError
from finetune_async.types import WebhookEventType
from finetune_async.webhooks import WebhookReceiver, verify_signature

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from finetune_async.types import WebhookEvent

MODEL = "gpt-4o-mini-2024-07-18"
SECRET = "whsec_" + base64.b64encode(b"emulator webhooks test key, 32 b").decode()
OTHER = "whsec_" + base64.b64encode(b"the other key of the rotation!!!").decode()
#: Enough virtual seconds to end any job or batch of these tests.
FOREVER = 100_000.0
#: Bound of every wait of this module, in real seconds (generous: a loaded machine).
BOUND = 15.0


# --- helpers ------------------------------------------------------------------------------------


async def until(predicate: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    """Wait (polling) until ``predicate()`` holds, failing after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1; yield its root URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{bound}/"
    finally:
        await asyncio.wait_for(runner.cleanup(), timeout=BOUND)


class Inbox:
    """A ``WebhookReceiver`` whose ``on_event`` records events, failing the first few times."""

    def __init__(self, secret: str | tuple[str, ...] = SECRET, *, fail_first: int = 0) -> None:
        self.events: list[WebhookEvent] = []
        self.calls = 0
        self.fail_first = fail_first
        self.receiver = WebhookReceiver(secret=secret, on_event=self.on_event)

    async def on_event(self, event: WebhookEvent) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            msg = "the handler is not ready yet"
            raise RuntimeError(msg)
        self.events.append(event)

    def types(self) -> dict[str, str]:
        """Each event's object id and type."""
        return {str(e.data.id): str(e.type) for e in self.events}


class Capture:
    """A raw aiohttp app recording each POST's body and headers, answering ``answers`` in turn."""

    def __init__(self, *answers: Callable[[], web.StreamResponse]) -> None:
        self.seen: list[tuple[bytes, dict[str, str]]] = []
        self.redirected: list[str] = []
        self.answers = list(answers)
        self.app = web.Application()
        self.app.router.add_post("/", self.handle)
        self.app.router.add_route("*", "/elsewhere", self.elsewhere)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((await request.read(), dict(request.headers)))
        if self.answers:
            return self.answers.pop(0)()
        return web.Response(text="ok")

    async def elsewhere(self, request: web.Request) -> web.StreamResponse:
        self.redirected.append(request.method)
        return web.Response(text="followed")


def free_port() -> int:
    """A port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def chat_file(folder: Path, n: int = 10) -> Path:
    path = folder / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": str(2 * i)},
            ]
        }
        for i in range(n)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def batch_file(folder: Path, name: str, lines: list[dict[str, Any]]) -> Path:
    path = folder / name
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def chat_request(i: int) -> dict[str, Any]:
    return {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": f"hi {i}"}]},
    }


async def start_job(client: AsyncClient, folder: Path) -> str:
    uploaded = await client.files.create(file=chat_file(folder), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
    return job.id


# --- the schedule, pure ---------------------------------------------------------------------------


def test_backoff_doubles_from_five_seconds_up_to_eight_hours() -> None:
    """Retry n waits 5 s x 2^(n-1) emulated seconds, never more than 8 hours."""
    assert [5.0, 10.0, 20.0, 40.0] == [backoff(n) for n in range(1, 5)]
    assert LONGEST_RETRY == backoff(40)
    assert 8 * 3600 == LONGEST_RETRY


def test_endpoint_generates_a_secret_and_checks_its_input() -> None:
    """A missing secret is whsec_ + base64 of 32 random bytes; bad URLs and secrets raise."""
    endpoint = WebhookEndpoint("http://127.0.0.1:9/")
    assert isinstance(endpoint.secret, str)
    assert endpoint.secret.startswith("whsec_")
    assert 32 == len(base64.b64decode(endpoint.secret.removeprefix("whsec_")))
    assert endpoint.secret != WebhookEndpoint("http://127.0.0.1:9/").secret
    assert endpoint.secret not in repr(endpoint)
    assert (SECRET, OTHER) == WebhookEndpoint("http://h/", [SECRET, OTHER]).secrets
    with pytest.raises(InvalidParameterError, match="http:// or https://"):
        WebhookEndpoint("ftp://127.0.0.1/")
    with pytest.raises(InvalidParameterError, match="whsec_"):
        WebhookEndpoint("http://127.0.0.1/", "not-a-secret")
    with pytest.raises(InvalidParameterError, match="WebhookEndpoint"):
        Emulator(webhooks=["http://127.0.0.1/"])  # type: ignore[list-item]


def test_bad_webhook_options_raise_naming_them() -> None:
    """A webhook fault outside its range or a non-positive timeout: a ValueError naming it."""
    with pytest.raises(ValueError, match="webhook_drop_rate"):
        Faults(webhook_drop_rate=1.5)
    with pytest.raises(ValueError, match="webhook_duplicate_rate"):
        Faults(webhook_duplicate_rate=-0.1)
    with pytest.raises(ValueError, match="webhook_delay"):
        Faults(webhook_delay=-1.0)
    with pytest.raises(ValueError, match="webhook_timeout"):
        Emulator(webhook_timeout=0)


# --- deliveries -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_job_succeeded_is_pushed_signed_and_thin(tmp_path: Path) -> None:
    """A job that ends with nobody polling is pushed: OpenAI's headers, a thin signed event."""
    capture = Capture()
    async with serving(capture.app) as url, Emulator(speed=0, seed=1) as emu:
        emu.add_webhook(url, SECRET)
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            job_id = await start_job(client, tmp_path)
        gets_before = sum(1 for r in emu.stats.requests if r.method == "GET")
        emu.advance(FOREVER)
        await until(lambda: emu.stats.webhooks.delivered == 1, "the delivery")
        assert gets_before == sum(1 for r in emu.stats.requests if r.method == "GET")

    body, headers = capture.seen[0]
    verify_signature(body, headers, secret=SECRET)
    event = orjson.loads(body)
    assert {"id", "object", "type", "created_at", "data"} == set(event)
    assert "event" == event["object"]
    assert "fine_tuning.job.succeeded" == event["type"]
    assert {"id": job_id} == event["data"]
    assert event["id"].startswith("evt_")
    assert headers["webhook-id"].startswith("wh_")
    assert USER_AGENT == headers["User-Agent"]
    assert "application/json" == headers["Content-Type"]
    # Real wall-clock time, not the emulator's clock (which is FOREVER seconds ahead).
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert 1 == emu.stats.webhooks.attempts


@pytest.mark.asyncio
async def test_every_job_terminal_type_reaches_a_receiver(tmp_path: Path) -> None:
    """succeeded, failed (a bad training file) and cancelled, one event each, to WebhookReceiver."""
    inbox = Inbox()
    async with serving(inbox.receiver.aiohttp_app()) as url:
        endpoint = WebhookEndpoint(url, SECRET)
        async with (
            Emulator(speed=0, webhooks=[endpoint]) as emu,
            AsyncClient(base_url=emu.url, api_key="test") as client,
        ):
            ok = await start_job(client, tmp_path)
            bad_path = tmp_path / "bad.jsonl"
            bad_path.write_bytes(b'{"messages": "no"}\n')
            bad_file = await client.files.create(file=bad_path, purpose="fine-tune")
            bad = (await client.fine_tuning.jobs.create(model=MODEL, training_file=bad_file.id)).id
            cancelled = await start_job(client, tmp_path)
            await client.fine_tuning.jobs.cancel(cancelled)
            emu.advance(FOREVER)
            await until(lambda: len(inbox.events) == 3, "three events")

    assert {
        ok: WebhookEventType.FINE_TUNING_JOB_SUCCEEDED,
        bad: WebhookEventType.FINE_TUNING_JOB_FAILED,
        cancelled: WebhookEventType.FINE_TUNING_JOB_CANCELLED,
    } == inbox.types()
    assert 3 == len({e.webhook_id for e in inbox.events})


@pytest.mark.asyncio
async def test_every_batch_terminal_type_reaches_a_receiver(tmp_path: Path) -> None:
    """completed, failed (a bad line), cancelled and expired, one event each."""
    inbox = Inbox()
    # One request per 10,000 s: two requests outlast the 24-hour window.
    timing = Timing(batch_request=10_000.0)
    async with (
        serving(inbox.receiver.aiohttp_app()) as url,
        Emulator(speed=0, timing=timing) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as client,
    ):
        emu.add_webhook(url, SECRET)

        async def create(lines: list[dict[str, Any]], name: str) -> str:
            path = batch_file(tmp_path, name, lines)
            uploaded = await client.files.create(file=path, purpose="batch")
            batch = await client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions"
            )
            return batch.id

        completed = await create([chat_request(1)], "one.jsonl")
        failed = await create([{"custom_id": "x"}], "bad.jsonl")
        cancelled = await create([chat_request(1)], "cancel.jsonl")
        await client.batches.cancel(cancelled)
        expired = await create([chat_request(i) for i in range(20)], "long.jsonl")
        emu.advance(30_000.0)  # the short ones end
        await until(lambda: len(inbox.events) == 3, "three events")
        emu.advance(24 * 3600.0)  # the long one expires
        await until(lambda: len(inbox.events) == 4, "the expired event")

    assert {
        completed: WebhookEventType.BATCH_COMPLETED,
        failed: WebhookEventType.BATCH_FAILED,
        cancelled: WebhookEventType.BATCH_CANCELLED,
        expired: WebhookEventType.BATCH_EXPIRED,
    } == inbox.types()


@pytest.mark.asyncio
async def test_at_speed_a_job_is_pushed_with_nobody_polling(tmp_path: Path) -> None:
    """On a running clock the end is pushed on time, with no request after the create."""
    inbox = Inbox()
    async with serving(inbox.receiver.aiohttp_app()) as url, Emulator(speed=5000) as emu:
        emu.add_webhook(url, SECRET)
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            job_id = await start_job(client, tmp_path)
        requests = emu.stats.total
        await until(lambda: len(inbox.events) == 1, "the succeeded event")
        assert requests == emu.stats.total

    assert {job_id: "fine_tuning.job.succeeded"} == inbox.types()


# --- failures and retries -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_500_is_retried_on_the_emulators_clock(tmp_path: Path) -> None:
    """on_event raising (500) is retried after 5 s, then 10 s of emulated time, not before."""
    inbox = Inbox(fail_first=2)
    async with serving(inbox.receiver.aiohttp_app()) as url, Emulator(speed=0) as emu:
        emu.add_webhook(url, SECRET)
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            job_id = await start_job(client, tmp_path)
        stats = emu.stats.webhooks
        emu.advance(FOREVER)
        await until(lambda: stats.failed == 1, "the first failed attempt")
        await asyncio.sleep(0.2)  # real time alone moves no retry
        assert 1 == stats.attempts
        emu.advance(backoff(1) - 0.5)
        await asyncio.sleep(0.2)
        assert 1 == stats.attempts
        emu.advance(0.5)
        await until(lambda: stats.failed == 2, "the second failed attempt")
        emu.advance(backoff(2))
        await until(lambda: stats.delivered == 1, "the delivery")

    assert (3, 2, 1, 0) == (stats.attempts, stats.failed, stats.delivered, stats.dropped)
    assert [job_id] == [e.data.id for e in inbox.events]
    assert 1 == len({e.webhook_id for e in inbox.events})


@pytest.mark.asyncio
async def test_a_receiver_down_at_first_gets_the_retry(tmp_path: Path) -> None:
    """A refused connection is a failed attempt; the retry reaches the receiver once it is up."""
    port = free_port()
    inbox = Inbox()
    async with Emulator(speed=0) as emu:
        emu.add_webhook(f"http://127.0.0.1:{port}/", SECRET)
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            job_id = await start_job(client, tmp_path)
        emu.advance(FOREVER)
        await until(lambda: emu.stats.webhooks.failed == 1, "the refused attempt")
        async with serving(inbox.receiver.aiohttp_app(), port):
            emu.advance(backoff(1))
            await until(lambda: len(inbox.events) == 1, "the retried delivery")

    assert [job_id] == [e.data.id for e in inbox.events]
    assert (2, 1) == (emu.stats.webhooks.attempts, emu.stats.webhooks.delivered)


@pytest.mark.asyncio
async def test_no_answer_within_webhook_timeout_is_retried(tmp_path: Path) -> None:
    """An answer slower than webhook_timeout (real seconds) fails the attempt; the retry lands."""
    release = asyncio.Event()
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((await request.read(), dict(request.headers)))
        if len(seen) == 1:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(release.wait(), timeout=BOUND)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handle)
    async with serving(app) as url, Emulator(speed=0, webhook_timeout=0.2) as emu:
        emu.add_webhook(url, SECRET)
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            await start_job(client, tmp_path)
        emu.advance(FOREVER)
        await until(lambda: emu.stats.webhooks.failed == 1, "the timed-out attempt")
        emu.advance(backoff(1))
        await until(lambda: emu.stats.webhooks.delivered == 1, "the retried delivery")
        release.set()

    first, second = seen
    assert first[1]["webhook-id"] == second[1]["webhook-id"]
    assert first[0] == second[0]


@pytest.mark.asyncio
async def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    """A 307 counts as a failed attempt, and its Location never gets a request."""

    def redirect() -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": "/elsewhere"})

    capture = Capture(redirect, redirect)
    async with serving(capture.app) as url, Emulator(speed=0) as emu:
        emu.add_webhook(url, SECRET)
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            await start_job(client, tmp_path)
        emu.advance(FOREVER)
        await until(lambda: emu.stats.webhooks.failed == 1, "the first redirect")
        emu.advance(backoff(1))
        await until(lambda: emu.stats.webhooks.failed == 2, "the second redirect")
        emu.advance(backoff(2))
        await until(lambda: emu.stats.webhooks.delivered == 1, "the delivery")

    assert [] == capture.redirected
    assert (3, 2) == (emu.stats.webhooks.attempts, emu.stats.webhooks.failed)


@pytest.mark.asyncio
async def test_retries_stop_after_72_emulated_hours(tmp_path: Path) -> None:
    """An endpoint that always fails gets the whole back-off schedule, then is given up."""
    capture = Capture(*[lambda: web.Response(status=500)] * 100)
    expected, elapsed, retry = 1, 0.0, 1
    while elapsed + backoff(retry) <= MAX_RETRY_WINDOW:
        elapsed += backoff(retry)
        expected += 1
        retry += 1
    async with serving(capture.app) as url, Emulator(speed=0) as emu:
        emu.add_webhook(url, SECRET)
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            await start_job(client, tmp_path)
        stats = emu.stats.webhooks
        emu.advance(FOREVER)
        for retry in range(1, expected + 1):
            await until(lambda: stats.failed == retry, f"failed attempt {retry}")  # noqa: B023
            emu.advance(backoff(retry))
        await until(lambda: stats.gave_up == 1, "giving up")

    assert expected == stats.attempts == len(capture.seen)
    assert 0 == stats.delivered
    assert len({h["webhook-id"] for _, h in capture.seen}) == 1


# --- faults -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_duplicates_and_delays_reach_on_event_once_each(tmp_path: Path) -> None:
    """Every delivery sent twice, late and out of order: the receiver's dedupe keeps one each."""
    inbox = Inbox()
    faults = Faults(webhook_duplicate_rate=1.0, webhook_delay=0.2)
    async with (
        serving(inbox.receiver.aiohttp_app()) as url,
        Emulator(speed=0, faults=faults, seed=3) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as client,
    ):
        emu.add_webhook(url, SECRET)
        jobs = [await start_job(client, tmp_path) for _ in range(3)]
        emu.advance(FOREVER)
        await until(lambda: emu.stats.webhooks.delivered == 6, "six deliveries")

    assert 6 == emu.stats.webhooks.attempts
    assert sorted(jobs) == sorted(str(e.data.id) for e in inbox.events)
    assert 3 == inbox.calls


@pytest.mark.asyncio
async def test_dropped_deliveries_are_never_sent(tmp_path: Path) -> None:
    """webhook_drop_rate=1: nothing is sent, and each delivery counts as dropped."""
    capture = Capture()
    async with (
        serving(capture.app) as url,
        Emulator(speed=0, faults=Faults(webhook_drop_rate=1.0)) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as client,
    ):
        emu.add_webhook(url, SECRET)
        await start_job(client, tmp_path)
        await start_job(client, tmp_path)
        emu.advance(FOREVER)
        await until(lambda: emu.stats.webhooks.dropped == 2, "two drops")
        await asyncio.sleep(0.2)

    assert [] == capture.seen
    assert 0 == emu.stats.webhooks.attempts


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rotation_signs_with_every_secret(tmp_path: Path) -> None:
    """Two secrets on one endpoint: two signatures, each verifying alone; a receiver of either."""
    capture = Capture()
    new_only = Inbox(OTHER)
    async with (
        serving(capture.app) as raw_url,
        serving(new_only.receiver.aiohttp_app()) as receiver_url,
        Emulator(speed=0) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as client,
    ):
        emu.add_webhook(raw_url, [SECRET, OTHER])
        emu.add_webhook(receiver_url, (SECRET, OTHER))
        job_id = await start_job(client, tmp_path)
        emu.advance(FOREVER)
        await until(lambda: emu.stats.webhooks.delivered == 2, "both deliveries")

    body, headers = capture.seen[0]
    assert 2 == len(headers["webhook-signature"].split(" "))
    verify_signature(body, headers, secret=SECRET)
    verify_signature(body, headers, secret=OTHER)
    stranger = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        verify_signature(body, headers, secret=stranger)
    assert [job_id] == [e.data.id for e in new_only.events]
    # One event, two endpoints: the same event id, a webhook-id of each endpoint's own.
    assert orjson.loads(body)["id"] == new_only.events[0].id
    assert headers["webhook-id"] != new_only.events[0].webhook_id


@pytest.mark.asyncio
async def test_a_generated_secret_is_the_one_that_signs(tmp_path: Path) -> None:
    """add_webhook(url) generates the secret; a receiver given endpoint.secret verifies."""
    async with Emulator(speed=0) as emu:
        capture = Capture()
        async with serving(capture.app) as url:
            endpoint = emu.add_webhook(url)
            async with AsyncClient(base_url=emu.url, api_key="test") as client:
                await start_job(client, tmp_path)
            emu.advance(FOREVER)
            await until(lambda: emu.stats.webhooks.delivered == 1, "the delivery")

    body, headers = capture.seen[0]
    assert isinstance(endpoint.secret, str)
    verify_signature(body, headers, secret=endpoint.secret)
