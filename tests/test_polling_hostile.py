"""Polling against hostile servers: bad ``Retry-After`` hints, stalled polls, endless event pages.

A server that answers every poll with a 429 and ``Retry-After: 0`` (or a date in the past,
``retry-after-ms: 0``, garbage, nothing) used to be polled tens of thousands of times a second.
These tests count what a real loopback server received in a bounded window and check it against
the most the floor and its growth allow, and check that each gap between two requests is at
least the floor of its place in the run (lower bounds only: a loaded machine makes gaps longer,
never shorter). Most run a ``Watcher`` with a small floor so that they take about a second; one
runs the public calls with their default floor (1 s). A server that never answers shows that a
poll's own timeout frees its slot; event pages that come back to a cursor end with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from contextlib import aclosing
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from aiohttp import web

from finetune_async import (
    APIResponseValidationError,
    APITimeoutError,
    AsyncClient,
    Backoff,
    InvalidParameterError,
    JobUpdate,
    is_terminal,
)
from finetune_async._polling import (
    DEFAULT_POLL_TIMEOUT,
    RATE_LIMIT_BACKOFF,
    JobWatch,
    Watcher,
    rate_limit_pause,
    stream_events,
)
from finetune_async.types import FineTuningJob

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from .conftest import LoopbackServer

T = TypeVar("T")

MODEL = "gpt-4o-mini-2024-07-18"
#: Bound of every wait of this module, in seconds.
BOUND = 10.0
#: Clock resolution allowed between two stamps of the server.
EPSILON = 0.005
#: The small floor of the fast tests: 50 ms, doubling up to 0.8 s.
FAST = Backoff(initial=0.05, maximum=0.8, jitter=0.25, max_retry_after=60.0)
#: How long each always-429 server is watched, from its first request, in seconds.
WINDOW = 1.0
#: Each bad hint, as the headers of the 429 (or, last, of a 503).
BAD_HINTS: dict[str, dict[str, str]] = {
    "Retry-After: 0": {"Retry-After": "0"},
    "a past HTTP date": {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    "Retry-After: -5": {"Retry-After": "-5"},
    "Retry-After: soon": {"Retry-After": "soon"},
    "retry-after-ms: 0": {"retry-after-ms": "0"},
    "no hint": {},
    "503 with Retry-After: 0": {"Retry-After": "0"},
}


# --- helpers -------------------------------------------------------------------------------------


def job_json(job_id: str, status: str) -> dict[str, Any]:
    """A ``fine_tuning.job`` object."""
    return {
        "object": "fine_tuning.job",
        "id": job_id,
        "model": MODEL,
        "created_at": 1_700_000_000,
        "status": status,
        "training_file": "file-abc",
    }


def event_json(n: int) -> dict[str, Any]:
    """A ``fine_tuning.job.event`` object numbered ``n``."""
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{n}",
        "created_at": 1_700_000_000 + n,
        "level": "info",
        "message": f"step {n}",
        "type": "message",
    }


def job_watch(client: AsyncClient, ids: list[str], **settings: Any) -> JobWatch:
    """What ``jobs.watch`` builds, with the scheduler's settings (floor, poll timeout) given."""
    watcher = Watcher(
        client,
        ids,
        path_of=lambda job_id: f"/fine_tuning/jobs/{job_id}",
        into=FineTuningJob,
        status_of=lambda job: job.status,
        is_done=is_terminal,
        **{"poll_interval": 0.01, "max_concurrency": 1, "timeout": BOUND, **settings},
    )
    return JobWatch(watcher)


def most_requests(window: float, backoff: Backoff) -> int:
    """The most requests a window can hold when each gap is at least the floor of its place.

    The n-th gap (from 0) is at least ``min(maximum, initial * 2**n)``: count the requests whose
    earliest time falls within ``window`` of the first one.
    """
    count, elapsed, gap = 1, 0.0, backoff.initial
    while elapsed + gap <= window + EPSILON:
        elapsed += gap
        count += 1
        gap = min(backoff.maximum, gap * 2)
    return count


def short_gaps(stamps: list[float], backoff: Backoff) -> list[tuple[int, float]]:
    """The gaps (place, seconds) shorter than the floor of their place in the run."""
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return [
        (n, round(gap, 4))
        for n, gap in enumerate(gaps)
        if gap < min(backoff.maximum, backoff.initial * 2**n) - EPSILON
    ]


async def run_for(seconds: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work()`` for ``seconds``, then cancel it (if it ends sooner, it must not fail)."""
    task = asyncio.ensure_future(work())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        task.result()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, BOUND)


async def drain(watch: JobWatch) -> list[JobUpdate]:
    """Every update of a watch, closing it at the end."""
    async with aclosing(watch):
        return [update async for update in watch]


class AlwaysLimited:
    """A loopback server answering every GET with a 429 (or a 503) and the headers it is told.

    The path's last segment chooses the answer, so that one server serves every hint; each
    request's arrival time (the loop's clock, as the client's) is kept per path.
    """

    def __init__(self, loopback: LoopbackServer, hints: Mapping[str, Mapping[str, str]]) -> None:
        self.hints = hints
        self.stamps: dict[str, list[float]] = {}
        loopback.route("GET", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        key = request.path.rsplit("/", 1)[-1]
        self.stamps.setdefault(key, []).append(asyncio.get_running_loop().time())
        status = 503 if key.startswith("503") else 429
        body = {"error": {"message": "slow down", "type": "rate_limit_exceeded"}}
        return web.json_response(body, status=status, headers=dict(self.hints.get(key, {})))

    def within(self, key: str, window: float) -> int:
        """How many requests for ``key`` arrived within ``window`` of its first one."""
        stamps = self.stamps.get(key, [])
        return sum(1 for t in stamps if t - stamps[0] <= window)


def hint_key(name: str) -> str:
    """A path segment for a hint's name."""
    return "".join(c if c.isalnum() else "-" for c in name)


# --- the floor and its growth, without a server --------------------------------------------------


def test_the_default_pause_is_one_second_at_least_doubling_up_to_a_minute() -> None:
    """``RATE_LIMIT_BACKOFF``: 1, 2, 4 ... 60 s floors, up to a quarter longer, never beyond 60."""
    rng = random.Random(5)
    floors = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    for streak, floor in enumerate(floors, start=1):
        for _ in range(50):
            pause = rate_limit_pause(streak, None, RATE_LIMIT_BACKOFF, rng)
            assert floor <= pause <= min(60.0, floor * 1.25), (streak, pause)


@pytest.mark.parametrize("hint", [0.0, 0.2, 0.999])
def test_a_hint_shorter_than_the_floor_is_raised_to_it(hint: float) -> None:
    """``Retry-After: 0`` (or a past date, which parses as 0) waits the floor: 1 s, then 2 s."""
    assert rate_limit_pause(1, hint, RATE_LIMIT_BACKOFF) >= 1.0
    assert rate_limit_pause(2, hint, RATE_LIMIT_BACKOFF) >= 2.0


def test_a_longer_hint_is_honoured_up_to_max_retry_after() -> None:
    """A 30 s hint waits 30 s (not the 1 s floor); a day's hint waits ``max_retry_after``."""
    no_jitter = Backoff(initial=1.0, maximum=60.0, jitter=0.0, max_retry_after=60.0)
    assert 30.0 == rate_limit_pause(1, 30.0, no_jitter)
    assert 60.0 == rate_limit_pause(1, 86_400.0, no_jitter)


def test_a_very_long_run_of_429s_stays_at_the_maximum() -> None:
    """After ten thousand 429s in a row, the pause is the maximum (no overflow, no growth)."""
    assert 60.0 == rate_limit_pause(10_000, None, RATE_LIMIT_BACKOFF)


def test_the_answers_of_one_burst_grow_the_pause_once() -> None:
    """Four 429s to polls sent together count as one step, the next round's as a second; a poll
    of that round answered ends the streak, so that the next 429 waits the floor again."""
    watcher = Watcher(
        RecordingRequester(),  # nothing is sent
        ["a"],
        path_of=str,
        into=FineTuningJob,
        status_of=lambda job: job.status,
        is_done=is_terminal,
        poll_interval=1.0,
        max_concurrency=4,
        timeout=None,
        rate_limit=Backoff(initial=1.0, maximum=60.0, jitter=0.0),
    )
    rate = watcher._rate
    for arrived in (10.0, 10.1, 10.2, 10.3):  # four polls sent together, answered one by one
        rate.refused(0, None, arrived)
    assert (1, 11.3) == (rate.streak, round(rate.until, 6))
    rate.refused(1, None, 11.4)  # sent after the pause: the limit still holds
    assert (2, 13.4) == (rate.streak, round(rate.until, 6))
    rate.answered(0, None, 11.5)  # sent before the last growth, answered late: no news
    assert 2 == rate.streak
    rate.answered(1, None, 11.6)  # a poll of the round that met the last 429 got through
    assert 0 == rate.streak
    rate.refused(2, None, 14.0)  # the next 429 waits the floor again
    assert (1, 15.0) == (rate.streak, round(rate.until, 6))


# --- an always-429 server ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_watch_of_an_always_limited_server_waits_the_growing_floor_for_every_bad_hint(
    loopback: LoopbackServer,
) -> None:
    """For each bad hint, a window holds at most the requests the floor allows, gaps doubling.

    Before the floor, ``Retry-After: 0``, a past date and ``retry-after-ms: 0`` were re-polled at
    once: tens of thousands of requests in this window; with no usable hint, every 0.75-1 s
    without growing.
    """
    server = AlwaysLimited(loopback, {hint_key(name): h for name, h in BAD_HINTS.items()})
    await loopback.start()
    keys = [hint_key(name) for name in BAD_HINTS]
    async with AsyncClient(base_url=loopback.url, api_key="test") as client:
        watches = [job_watch(client, [key], rate_limit=FAST) for key in keys]

        def enough() -> bool:
            return all(len(server.stamps.get(key, [])) >= 4 for key in keys)

        async def watch_all() -> None:
            tasks = [asyncio.ensure_future(drain(watch)) for watch in watches]
            try:
                while not enough():
                    await asyncio.sleep(0.01)
                first = min(server.stamps[key][0] for key in keys)
                await asyncio.sleep(max(0.0, first + WINDOW - asyncio.get_running_loop().time()))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        await asyncio.wait_for(watch_all(), BOUND)
    most = most_requests(WINDOW, FAST)
    assert 5 == most  # at 0, 0.05, 0.15, 0.35, 0.75 s: the next is at 1.55 s
    counts = {name: server.within(hint_key(name), WINDOW) for name in BAD_HINTS}
    assert {} == {name: n for name, n in counts.items() if n > most}
    gaps = {name: short_gaps(server.stamps[hint_key(name)], FAST) for name in BAD_HINTS}
    assert {} == {name: short for name, short in gaps.items() if short}


@pytest.mark.asyncio
async def test_the_public_calls_wait_a_second_at_least_after_retry_after_0(
    loopback: LoopbackServer,
) -> None:
    """``jobs.watch``, ``jobs.wait``, ``batches.wait``, ``files.wait_for_processing``: 2 in 1.5 s.

    With the default floor (1 s) the second request comes a second after the first, the third
    two seconds later; before it, each call sent thousands of requests in this window.
    ``stream_events`` keeps going through the 429s instead of ending with ``RateLimitError``.
    """
    keys = ("j1", "j2", "b1", "f1", "s1")
    server = AlwaysLimited(loopback, {key: {"Retry-After": "0"} for key in keys})
    await loopback.start()
    window = 1.5
    async with AsyncClient(base_url=loopback.url, api_key="test") as client:
        jobs = client.fine_tuning.jobs

        async def watch_one() -> None:
            async for _ in jobs.watch(["j1"]):
                pass

        async def stream_one() -> None:
            async for _ in jobs.stream_events("s1"):
                pass

        await asyncio.gather(
            run_for(window, watch_one),
            run_for(window, stream_one),
            run_for(window, lambda: jobs.wait("j2")),
            run_for(window, lambda: client.batches.wait("b1")),
            run_for(window, lambda: client.files.wait_for_processing("f1")),
        )
    counts = {key: len(stamps) for key, stamps in server.stamps.items()}
    assert set(keys) == set(counts)
    # stream_events goes through the client's retries first (0.5 s, then 1 s, at least 0.375 s
    # and 0.75 s with jitter), then waits out the 429 as watch does instead of ending with it.
    assert counts.pop("s1") <= 3
    assert {} == {key: n for key, n in counts.items() if n > 2}
    assert {} == {key: s for key, s in server.stamps.items() if len(s) > 1 and s[1] - s[0] < 0.375}
    assert {} == {
        key: s
        for key, s in server.stamps.items()
        if key != "s1" and len(s) > 1 and s[1] - s[0] < 1.0
    }


@pytest.mark.asyncio
async def test_a_poll_after_hint_of_0_does_not_re_poll_at_once(loopback: LoopbackServer) -> None:
    """``openai-poll-after-ms: 0`` on every answer re-polls after 0.1 s, not in a busy loop."""
    stamps: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        stamps.append(asyncio.get_running_loop().time())
        return web.json_response(
            job_json(request.match_info["job_id"], "running"),
            headers={"openai-poll-after-ms": "0"},
        )

    loopback.route("GET", "/fine_tuning/jobs/{job_id}", handler)
    await loopback.start()
    async with AsyncClient(base_url=loopback.url, api_key="test") as client:
        watch = client.fine_tuning.jobs.watch(["ftjob-hint"], poll_interval=30.0)

        async def watch_until_enough() -> None:
            async with aclosing(watch):
                async for _ in watch:
                    pass

        async def enough() -> None:
            while len(stamps) < 3:
                await asyncio.sleep(0.01)
            await asyncio.sleep(max(0.0, stamps[0] + WINDOW - asyncio.get_running_loop().time()))

        task = asyncio.ensure_future(watch_until_enough())
        try:
            await asyncio.wait_for(enough(), BOUND)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    within = [t for t in stamps if t - stamps[0] <= WINDOW]
    # At 0, 0.1 ... 1.0 s at most; before the floor, thousands.
    assert len(within) <= 11
    assert [] == [round(b - a, 4) for a, b in itertools.pairwise(stamps) if b - a < 0.1 - EPSILON]


@pytest.mark.asyncio
async def test_stream_events_of_an_always_limited_server_waits_the_growing_floor(
    loopback: LoopbackServer,
) -> None:
    """``stream_events`` (no client retries) waits the same growing floor for every bad hint.

    Before, the first 429 the client gave up on ended the stream with ``RateLimitError``.
    """
    server = AlwaysLimited(loopback, {hint_key(name): h for name, h in BAD_HINTS.items()})
    await loopback.start()
    keys = [hint_key(name) for name in BAD_HINTS]
    async with AsyncClient(base_url=loopback.url, api_key="test", max_retries=0) as client:

        async def stream(key: str) -> None:
            events = stream_events(
                client, f"/fine_tuning/jobs/{key}", poll_interval=0.01, rate_limit=FAST
            )
            async with aclosing(events):
                async for _ in events:
                    pass

        async def stream_all() -> None:
            await asyncio.gather(*(run_for(WINDOW + 0.1, partial(stream, key)) for key in keys))

        await asyncio.wait_for(stream_all(), BOUND)
    assert set(keys) == set(server.stamps)
    most = most_requests(WINDOW, FAST)
    counts = {name: server.within(hint_key(name), WINDOW) for name in BAD_HINTS}
    assert {} == {name: n for name, n in counts.items() if n > most}
    assert {} == {name: n for name, n in counts.items() if n < 2}  # it went on after the first
    gaps = {name: short_gaps(server.stamps[hint_key(name)], FAST) for name in BAD_HINTS}
    assert {} == {name: short for name, short in gaps.items() if short}


@pytest.mark.asyncio
async def test_stream_events_delivers_every_event_once_after_rounds_refused_with_429(
    loopback: LoopbackServer,
) -> None:
    """Three refused rounds (one of them in the middle of the event pages), then every event."""
    answers = iter(["429", "ok", "429", "429"])  # job, events page 1 refused, job, job

    async def job(request: web.Request) -> web.Response:
        if next(answers, "ok") == "429":
            return web.json_response({"error": {"message": "slow down"}}, status=429)
        return web.json_response(job_json(request.match_info["job_id"], "succeeded"))

    async def events(request: web.Request) -> web.Response:
        after = request.query.get("after")
        if after is None:
            page = {"data": [event_json(3), event_json(2)], "has_more": True}
        elif next(answers, "ok") == "429":
            return web.json_response({"error": {"message": "slow down"}}, status=429)
        else:
            page = {"data": [event_json(1)], "has_more": False}
        return web.json_response({"object": "list", **page})

    loopback.route("GET", "/fine_tuning/jobs/{job_id}", job)
    loopback.route("GET", "/fine_tuning/jobs/{job_id}/events", events)
    await loopback.start()
    async with AsyncClient(base_url=loopback.url, api_key="test", max_retries=0) as client:
        stream = stream_events(
            client, "/fine_tuning/jobs/ftjob-1", poll_interval=0.01, rate_limit=FAST
        )
        async with asyncio.timeout(BOUND), aclosing(stream):
            ids = [event.id async for event in stream]
    assert ["ftevent-1", "ftevent-2", "ftevent-3"] == ids


# --- a server that never answers -----------------------------------------------------------------


class Stalled:
    """Answers ``ftjob-fast`` at once (succeeded) and never answers ``ftjob-slow``."""

    def __init__(self, loopback: LoopbackServer) -> None:
        self.slow_polls = 0
        self.release = asyncio.Event()
        loopback.route("GET", "/fine_tuning/jobs/{job_id}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        if job_id == "ftjob-slow":
            self.slow_polls += 1
            await self.release.wait()
            return web.json_response(job_json(job_id, "running"))
        return web.json_response(job_json(job_id, "succeeded"))


@pytest.mark.asyncio
async def test_a_stalled_poll_frees_its_slot_and_the_job_is_reported_and_kept(
    loopback: LoopbackServer,
) -> None:
    """With one slot, held by a poll never answered: the other job still finishes, and the
    stalled one is reported with ``APITimeoutError`` after three timeouts and polled on."""
    server = Stalled(loopback)
    await loopback.start()
    updates: list[JobUpdate] = []
    try:
        async with AsyncClient(base_url=loopback.url, api_key="test") as client:
            watch = job_watch(
                client, ["ftjob-slow", "ftjob-fast"], poll_timeout=0.2, max_concurrency=1
            )

            async def consume() -> None:
                async with aclosing(watch):
                    async for update in watch:
                        updates.append(update)  # noqa: PERF401 - read while the watch runs

            async def reported_then_polled_again() -> None:
                while not any(u.error is not None for u in updates):
                    await asyncio.sleep(0.01)
                polls = server.slow_polls
                while server.slow_polls < polls + 1:
                    await asyncio.sleep(0.01)

            task = asyncio.ensure_future(consume())
            try:
                await asyncio.wait_for(reported_then_polled_again(), BOUND)
                assert 1 == watch.pending
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        server.release.set()
    fast, slow = updates
    assert fast.job is not None
    assert ("ftjob-fast", "succeeded", None) == (fast.job.id, fast.job.status, fast.error)
    assert (None, None) == (slow.job, slow.previous_status)
    assert isinstance(slow.error, APITimeoutError)
    assert server.slow_polls >= 4


class RecordingRequester:
    """A requester whose ``poll`` records the timeout it was given and ends the watch."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("polling sends single attempts through poll()")

    async def poll(
        self, path: str, into: type[T], *, timeout: float | None = None
    ) -> tuple[T, Mapping[str, str]]:
        self.timeouts.append(timeout)
        raise LookupError(path)

    async def download(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no download")


@pytest.mark.asyncio
async def test_the_public_calls_bound_each_poll_by_30_seconds() -> None:
    """``jobs.wait`` / ``watch``, ``batches.wait``, ``files.wait_for_processing``: timeout=30."""
    from finetune_async.resources.batches import AsyncBatches
    from finetune_async.resources.files import AsyncFiles
    from finetune_async.resources.fine_tuning import AsyncJobs

    requester = RecordingRequester()
    jobs = AsyncJobs(requester)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: jobs.wait("ftjob-1"),
        lambda: drain(jobs.watch(["ftjob-2"])),
        lambda: AsyncBatches(requester).wait("batch-1"),
        lambda: AsyncFiles(requester).wait_for_processing("file-1"),
    ]
    for call in calls:
        with pytest.raises(LookupError):
            await asyncio.wait_for(call(), BOUND)
    assert [DEFAULT_POLL_TIMEOUT] * 4 == requester.timeouts
    assert 30.0 == DEFAULT_POLL_TIMEOUT


@pytest.mark.parametrize("value", [0, -1.0, math.nan, "30", True])
@pytest.mark.asyncio
async def test_a_bad_poll_timeout_raises_before_sending(value: object) -> None:
    """A non-positive (or non-number) ``poll_timeout`` is refused at once; nothing is polled."""
    requester = RecordingRequester()
    with pytest.raises(InvalidParameterError) as caught:
        Watcher(
            requester,
            ["ftjob-1"],
            path_of=str,
            into=FineTuningJob,
            status_of=lambda job: job.status,
            is_done=is_terminal,
            poll_interval=1.0,
            max_concurrency=1,
            timeout=None,
            poll_timeout=value,  # type: ignore[arg-type]
        )
    assert "poll_timeout" == caught.value.param
    assert [] == requester.timeouts


# --- event pages that never end ------------------------------------------------------------------


def events_server(
    loopback: LoopbackServer, pages: Mapping[str | None, tuple[list[int], bool, str | None]]
) -> list[str | None]:
    """Serve a succeeded job and its events, ``pages[after] = (numbers, has_more, last_id)``.

    Returns the list of the ``after`` cursors the server was asked for, in order.
    """
    asked: list[str | None] = []

    async def job(request: web.Request) -> web.Response:
        return web.json_response(job_json(request.match_info["job_id"], "succeeded"))

    async def events(request: web.Request) -> web.Response:
        after = request.query.get("after")
        asked.append(after)
        numbers, has_more, last_id = pages[after]
        page: dict[str, Any] = {
            "object": "list",
            "data": [event_json(n) for n in numbers],
            "has_more": has_more,
        }
        if last_id is not None:
            page["last_id"] = last_id
        return web.json_response(page)

    loopback.route("GET", "/fine_tuning/jobs/{job_id}", job)
    loopback.route("GET", "/fine_tuning/jobs/{job_id}/events", events)
    return asked


async def stream_all(loopback: LoopbackServer) -> list[str]:
    """The ids ``stream_events`` yields for ``ftjob-1``, within ``BOUND``."""
    async with AsyncClient(base_url=loopback.url, api_key="test") as client:
        stream = client.fine_tuning.jobs.stream_events("ftjob-1", poll_interval=0.01)
        async with asyncio.timeout(BOUND), aclosing(stream):
            return [event.id async for event in stream]


@pytest.mark.asyncio
async def test_stream_events_ends_with_a_clear_error_on_a_repeated_cursor(
    loopback: LoopbackServer,
) -> None:
    """``has_more: true`` with the same ``last_id`` again: one repeat asked, then the error.

    Before, the same page was asked for forever (41,225 requests in 10 s), yielding nothing.
    """
    asked = events_server(
        loopback, {None: ([3, 2], True, "ftevent-2"), "ftevent-2": ([1], True, "ftevent-2")}
    )
    await loopback.start()
    with pytest.raises(APIResponseValidationError, match="'ftevent-2'") as caught:
        await stream_all(loopback)
    assert "GET" == caught.value.method
    assert [None, "ftevent-2"] == asked


@pytest.mark.asyncio
async def test_stream_events_ends_with_a_clear_error_on_a_cycle_of_cursors(
    loopback: LoopbackServer,
) -> None:
    """A, B, A: the walk ends when the cursor A comes back, naming it."""
    asked = events_server(
        loopback,
        {
            None: ([6, 5], True, "A"),
            "A": ([4, 3], True, "B"),
            "B": ([2, 1], True, "A"),
        },
    )
    await loopback.start()
    with pytest.raises(APIResponseValidationError, match="'A'"):
        await stream_all(loopback)
    assert [None, "A", "B"] == asked


@pytest.mark.asyncio
async def test_stream_events_yields_an_event_listed_on_two_pages_once(
    loopback: LoopbackServer,
) -> None:
    """Pages that overlap (event 3 on both) give each event once, oldest first."""
    asked = events_server(
        loopback,
        {
            None: ([4, 3], True, "ftevent-3"),
            "ftevent-3": ([3, 2], True, "ftevent-2"),
            "ftevent-2": ([1], False, None),
        },
    )
    await loopback.start()
    assert ["ftevent-1", "ftevent-2", "ftevent-3", "ftevent-4"] == await stream_all(loopback)
    assert [None, "ftevent-3", "ftevent-2"] == asked
