"""The aiohttp transport against a real loopback server: timeouts, drops, sessions, life cycle."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from finetune_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    FinetuneError,
    Timeout,
    errors,
)
from finetune_async._transport import AiohttpTransport
from tests.conftest import API_KEY, NO_BACKOFF, LoopbackServer

if TYPE_CHECKING:
    from types import SimpleNamespace

    from finetune_async.types import FineTuningJob

T = TypeVar("T")

JOB_ID = "ftjob-loop"
JOB_PATH = "/fine_tuning/jobs/{id}"
JOB: dict[str, Any] = {
    "object": "fine_tuning.job",
    "id": JOB_ID,
    "model": "gpt-4o-mini-2024-07-18",
    "created_at": 1721764800,
    "status": "queued",
    "training_file": "file-train",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def bounded(call: Awaitable[T]) -> T:
    """Await a client call, failing the test instead of hanging."""
    return await asyncio.wait_for(call, 10)


def assert_sdk_error(exc: BaseException) -> None:
    """The exception comes from finetune_async.errors, never from aiohttp."""
    assert "finetune_async.errors" == type(exc).__module__
    assert isinstance(exc, aiohttp.ClientError) is False


async def ok_job(request: web.Request) -> web.StreamResponse:
    return web.json_response(JOB)


async def slow_job(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(0.8)
    return web.json_response(JOB)


async def dropped(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering, so that the client sees a disconnect."""
    assert request.transport is not None
    request.transport.close()
    raise ConnectionResetError("dropped by the test server")


def first_call_then(first: Handler, rest: Handler) -> Handler:
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return await (first if calls == 1 else rest)(request)

    return handler


def dropping_first(times: int, then: Handler) -> Handler:
    """Drop the first ``times`` requests, then answer with ``then``."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return await (dropped if calls <= times else then)(request)

    return handler


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def counting_trace() -> tuple[aiohttp.TraceConfig, list[str]]:
    """A trace config that records the URL of every request the session starts."""
    started: list[str] = []

    async def on_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        started.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    return trace, started


def session_of(client: AsyncClient) -> aiohttp.ClientSession | None:
    """The aiohttp session behind a client's transport (None until the first request)."""
    transport = client._transport
    assert isinstance(transport, AiohttpTransport)
    return transport._session


def is_open(session: aiohttp.ClientSession) -> bool:
    """Read ``closed`` through a call, so that type checkers do not narrow it across awaits."""
    return not session.closed


def new_client(url: str, **options: Any) -> AsyncClient:
    options.setdefault("backoff", NO_BACKOFF)
    return AsyncClient(api_key=API_KEY, base_url=url, **options)


async def create(client: AsyncClient) -> FineTuningJob:
    return await client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file="file-train"
    )


# --- per-attempt and total timeouts --------------------------------------------------------------


@pytest.mark.asyncio
async def test_read_timeout_is_retried_then_raises_timeout(loopback: LoopbackServer) -> None:
    """A too slow server gets the GET twice (max_retries=1), then APITimeoutError is raised."""
    loopback.route("GET", JOB_PATH, slow_job)
    await loopback.start()
    timeout = Timeout(connect=1, read=0.2, total=5)

    async with new_client(loopback.url, timeout=timeout, max_retries=1) as client:
        with pytest.raises(APITimeoutError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert 2 == len(loopback.requests)
    assert_sdk_error(caught.value)
    assert caught.value.outcome_unknown is False


@pytest.mark.asyncio
async def test_slow_first_answer_succeeds_on_retry(loopback: LoopbackServer) -> None:
    """A server slow only on the first request: the retried GET returns the job."""
    loopback.route("GET", JOB_PATH, first_call_then(slow_job, ok_job))
    await loopback.start()
    timeout = Timeout(connect=1, read=0.2, total=5)

    async with new_client(loopback.url, timeout=timeout, max_retries=1) as client:
        job = await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert JOB_ID == job.id
    assert 2 == len(loopback.requests)


@pytest.mark.asyncio
async def test_total_timeout_ends_retries_early(loopback: LoopbackServer) -> None:
    """With total=0.5 s and read=0.3 s, APITimeoutError comes before the 6 attempts are used."""
    loopback.route("GET", JOB_PATH, slow_job)
    await loopback.start()
    timeout = Timeout(connect=1, read=0.3, total=0.5)

    async with new_client(loopback.url, timeout=timeout, max_retries=5) as client:
        with pytest.raises(APITimeoutError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert len(loopback.requests) < 6
    assert len(loopback.requests) >= 1
    assert_sdk_error(caught.value)


@pytest.mark.asyncio
async def test_create_read_timeout_is_outcome_unknown(loopback: LoopbackServer) -> None:
    """A create whose answer times out is sent once and raises APITimeoutError, outcome unknown."""
    loopback.route("POST", "/fine_tuning/jobs", slow_job)
    await loopback.start()
    timeout = Timeout(connect=1, read=0.2, total=5)

    async with new_client(loopback.url, timeout=timeout) as client:
        with pytest.raises(APITimeoutError) as caught:
            await bounded(create(client))

    assert 1 == len(loopback.requests)
    assert caught.value.outcome_unknown is True
    assert "outcome is unknown" in str(caught.value)
    assert_sdk_error(caught.value)


# --- dropped and refused connections -------------------------------------------------------------


@pytest.mark.asyncio
async def test_dropped_connection_on_get_is_retried(loopback: LoopbackServer) -> None:
    """A GET whose connection is dropped without an answer is retried and returns the job."""
    # aiohttp re-sends an idempotent request once by itself on a disconnect, so two drops are
    # needed before the SDK's retry loop has to act; either way the third request succeeds.
    loopback.route("GET", JOB_PATH, dropping_first(2, ok_job))
    await loopback.start()

    async with new_client(loopback.url, max_retries=2) as client:
        job = await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert JOB_ID == job.id
    assert 3 == len(loopback.requests)


@pytest.mark.asyncio
async def test_dropped_connection_on_get_every_time_raises_connection_error(
    loopback: LoopbackServer,
) -> None:
    """A GET dropped on every attempt raises APIConnectionError, outcome known, after retrying."""
    loopback.route("GET", JOB_PATH, dropped)
    await loopback.start()

    async with new_client(loopback.url, max_retries=2) as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert len(loopback.requests) >= 3
    assert APIConnectionError is type(caught.value)
    assert caught.value.may_have_reached_server is True
    assert caught.value.outcome_unknown is False
    assert_sdk_error(caught.value)


@pytest.mark.asyncio
async def test_dropped_get_with_max_retries_zero_is_sent_once(loopback: LoopbackServer) -> None:
    """With max_retries=0 a dropped GET reaches the server exactly once (no hidden re-send)."""
    loopback.route("GET", JOB_PATH, dropped)
    await loopback.start()

    async with new_client(loopback.url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert 1 == len(loopback.requests)
    assert_sdk_error(caught.value)


@pytest.mark.asyncio
async def test_dropped_connection_on_create_is_outcome_unknown(loopback: LoopbackServer) -> None:
    """A create cut off after reaching the server is sent once: APIConnectionError, unknown."""
    loopback.route("POST", "/fine_tuning/jobs", first_call_then(dropped, ok_job))
    await loopback.start()

    async with new_client(loopback.url) as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(create(client))

    assert 1 == len(loopback.requests)
    assert APIConnectionError is type(caught.value)
    assert caught.value.outcome_unknown is True
    assert caught.value.may_have_reached_server is True
    assert "outcome is unknown" in str(caught.value)
    assert_sdk_error(caught.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["cancel", "pause", "resume"])
async def test_dropped_connection_on_job_action_is_outcome_unknown(
    loopback: LoopbackServer, action: str
) -> None:
    """A cancel / pause / resume cut off after sending is sent once, outcome unknown."""
    loopback.route("POST", JOB_PATH + "/" + action, dropped)
    await loopback.start()

    async with new_client(loopback.url) as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(getattr(client.fine_tuning.jobs, action)(JOB_ID))

    assert 1 == len(loopback.requests)
    assert caught.value.outcome_unknown is True
    assert_sdk_error(caught.value)


@pytest.mark.asyncio
async def test_refused_create_is_retried_and_outcome_known() -> None:
    """A create refused by a closed port is retried, then APIConnectionError with outcome known."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    trace, started = counting_trace()

    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = new_client(
            url, session=session, max_retries=2, timeout=Timeout(connect=2, total=5)
        )
        async with client:
            with pytest.raises(APIConnectionError) as caught:
                await bounded(create(client))

    assert 3 == len(started)
    assert APIConnectionError is type(caught.value)
    assert caught.value.may_have_reached_server is False
    assert caught.value.outcome_unknown is False
    assert "outcome is unknown" not in str(caught.value)
    assert_sdk_error(caught.value)


@pytest.mark.asyncio
async def test_refused_get_raises_connection_error() -> None:
    """A GET to a port with nothing listening raises APIConnectionError, never an aiohttp error."""
    url = f"http://127.0.0.1:{free_port()}/v1"

    async with new_client(url, max_retries=1) as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert caught.value.may_have_reached_server is False
    assert_sdk_error(caught.value)


# --- sessions and the client's life cycle --------------------------------------------------------


@pytest.mark.asyncio
async def test_injected_session_is_used_and_left_open(loopback: LoopbackServer) -> None:
    """An injected ClientSession carries the requests and is still open after aclose()."""
    loopback.route("GET", JOB_PATH, ok_job)
    await loopback.start()
    trace, started = counting_trace()

    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = new_client(loopback.url, session=session)
        job = await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))
        await client.aclose()

        assert JOB_ID == job.id
        assert [f"{loopback.url}/fine_tuning/jobs/{JOB_ID}"] == started
        assert is_open(session) is True
        async with session.get(f"{loopback.url}/fine_tuning/jobs/{JOB_ID}") as resp:
            assert 200 == resp.status

    assert 2 == len(loopback.requests)


@pytest.mark.asyncio
async def test_own_session_is_closed_by_aclose(loopback: LoopbackServer) -> None:
    """The session a client creates itself is closed by aclose()."""
    loopback.route("GET", JOB_PATH, ok_job)
    await loopback.start()
    client = new_client(loopback.url)

    await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))
    session = session_of(client)
    assert session is not None
    assert is_open(session) is True
    await client.aclose()

    assert is_open(session) is False
    assert client.is_closed is True


@pytest.mark.asyncio
async def test_aclose_twice_is_fine(loopback: LoopbackServer) -> None:
    """Calling aclose() a second time does nothing and raises nothing."""
    loopback.route("GET", JOB_PATH, ok_job)
    await loopback.start()
    client = new_client(loopback.url)
    await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    await client.aclose()
    await client.aclose()

    assert client.is_closed is True


@pytest.mark.asyncio
async def test_aclose_without_any_request_is_fine() -> None:
    """A client that never sent anything closes cleanly (no session was ever made)."""
    client = new_client("http://127.0.0.1:9/v1")

    await client.aclose()

    assert client.is_closed is True


@pytest.mark.asyncio
async def test_call_after_aclose_raises_and_sends_nothing(loopback: LoopbackServer) -> None:
    """A call on a closed client raises FinetuneError saying it is closed, and sends nothing."""
    loopback.route("GET", JOB_PATH, ok_job)
    await loopback.start()
    client = new_client(loopback.url)
    await client.aclose()

    with pytest.raises(FinetuneError) as caught:
        await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert FinetuneError is type(caught.value)
    assert "closed" in str(caught.value)
    assert [] == loopback.requests


@pytest.mark.asyncio
async def test_with_options_shares_the_pool(loopback: LoopbackServer) -> None:
    """A with_options child shares the pool: closing it spares the parent; the parent closes it."""
    loopback.route("GET", JOB_PATH, ok_job)
    await loopback.start()
    parent = new_client(loopback.url)
    child = parent.with_options(max_retries=0)

    await bounded(child.fine_tuning.jobs.retrieve(JOB_ID))
    session = session_of(parent)
    assert session is not None
    assert session is session_of(child)
    await child.aclose()

    assert is_open(session) is True
    job = await bounded(parent.fine_tuning.jobs.retrieve(JOB_ID))
    assert JOB_ID == job.id
    assert 2 == len(loopback.requests)

    await parent.aclose()
    assert is_open(session) is False
    with pytest.raises(FinetuneError) as caught:
        await bounded(child.fine_tuning.jobs.retrieve(JOB_ID))
    assert "closed" in str(caught.value)
    assert 2 == len(loopback.requests)


@pytest.mark.asyncio
async def test_closed_child_refuses_calls_while_the_parent_works(loopback: LoopbackServer) -> None:
    """A closed with_options child raises FinetuneError and sends nothing, the pool being open."""
    loopback.route("GET", JOB_PATH, ok_job)
    await loopback.start()

    async with new_client(loopback.url) as parent:
        child = parent.with_options(max_retries=0)
        await child.aclose()

        with pytest.raises(FinetuneError) as caught:
            await bounded(child.fine_tuning.jobs.retrieve(JOB_ID))
        assert "closed" in str(caught.value)
        assert [] == loopback.requests

        job = await bounded(parent.fine_tuning.jobs.retrieve(JOB_ID))
        assert JOB_ID == job.id
        assert 1 == len(loopback.requests)


def test_client_is_built_outside_an_event_loop_without_a_session() -> None:
    """Constructing AsyncClient in plain sync code works and creates no aiohttp session."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()

    client = new_client("http://127.0.0.1:9/v1")

    assert session_of(client) is None
    assert client.is_closed is False


@pytest.mark.asyncio
async def test_client_built_outside_a_loop_works_inside_one(loopback: LoopbackServer) -> None:
    """A client made before the loop that serves it still sends on that loop."""
    loopback.route("GET", JOB_PATH, ok_job)
    await loopback.start()
    client = await asyncio.to_thread(new_client, loopback.url)

    async with client:
        job = await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert JOB_ID == job.id


@pytest.mark.asyncio
async def test_no_aiohttp_error_escapes_a_non_http_answer(loopback: LoopbackServer) -> None:
    """A server answering non-HTTP bytes gives an SDK error, never an aiohttp one."""

    async def garbage(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.write(b"this is not HTTP at all\r\n\r\n")
        request.transport.close()
        raise ConnectionResetError("garbage sent")

    loopback.route("GET", JOB_PATH, garbage)
    await loopback.start()

    async with new_client(loopback.url, max_retries=1) as client:
        with pytest.raises(errors.APIError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve(JOB_ID))

    assert_sdk_error(caught.value)
    assert 2 == len(loopback.requests)
