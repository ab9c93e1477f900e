"""Polling: ``jobs.wait`` / ``watch`` / ``stream_events``, ``batches.wait``, files processing.

Most tests run the emulator with its clock stopped (``speed=0``) and move it with ``advance``,
either in lock-step with what the test has just seen or from a background task, so every status
change happens exactly when the test says. The tests of early exits (``break``, ``aclose``,
cancellation, timeout) run the emulator on its own thread: the test's loop then holds only the
client's tasks, and ``asyncio.all_tasks()`` before and after can be compared exactly. The server's
``openai-poll-after-ms`` hint and a file still being processed come from a loopback server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
from collections import Counter
from contextlib import aclosing
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from finetune_async import (
    APIStatusError,
    AsyncClient,
    InvalidParameterError,
    JobUpdate,
    NotFoundError,
    WaitTimeoutError,
    is_terminal,
)
from finetune_async.emulator import Emulator, Faults
from finetune_async.types import FineTuningJob

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Callable,
        Iterable,
        Iterator,
        Sequence,
        Sized,
    )

    from finetune_async.types import FineTuningJobEvent

    from .conftest import LoopbackServer

MODEL = "gpt-4o-mini-2024-07-18"
#: A 6-step job: 12 examples, batch 4, 2 epochs (validating 30 s, queued 60 s, 2 s a step, 20 s).
SMALL_METHOD: dict[str, Any] = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}},
}
#: Virtual seconds from creation to "queued", and to "running" (the default ``Timing``).
TO_QUEUED = 30.0
TO_RUNNING = 90.0
#: Enough virtual seconds to end any job or batch of these tests.
FOREVER = 100_000.0
JOB_ROUTE = "GET /fine_tuning/jobs/{fine_tuning_job_id}"
#: Bound of every wait of this module, in seconds.
BOUND = 10.0
#: Outer bound of a loop over a watch whose own ``timeout`` is ``BOUND``.
OUTER = BOUND + 5
#: Time the server takes to record a request that was already on its way, before counting.
GRACE = 0.1
#: The period over which the server must see no request once a watch has stopped.
QUIET = 0.3


# --- helpers -------------------------------------------------------------------------------------


def chat_jsonl(n: int = 12, *, assistant: bool = True) -> bytes:
    """A supervised training file of ``n`` examples (invalid without assistant turns)."""
    rows = []
    for i in range(n):
        messages = [{"role": "user", "content": f"What is {i} plus {i}?"}]
        if assistant:
            messages.append({"role": "assistant", "content": str(2 * i)})
        rows.append(orjson.dumps({"messages": messages}))
    return b"\n".join(rows) + b"\n"


def batch_jsonl(n: int = 3, *, url: str = "/v1/chat/completions") -> bytes:
    """A batch input file of ``n`` chat requests, all sent to ``url``."""
    rows = [
        orjson.dumps(
            {
                "custom_id": f"request-{i}",
                "method": "POST",
                "url": url,
                "body": {"model": MODEL, "messages": [{"role": "user", "content": f"Hi {i}"}]},
            }
        )
        for i in range(n)
    ]
    return b"\n".join(rows) + b"\n"


async def new_job(
    api: AsyncClient, data: bytes | None = None, method: dict[str, Any] | None = None
) -> FineTuningJob:
    """Upload a training file and start a job on it."""
    uploaded = await api.files.create(
        file=("train.jsonl", chat_jsonl() if data is None else data), purpose="fine-tune"
    )
    return await api.fine_tuning.jobs.create(
        model=MODEL, training_file=uploaded.id, method=SMALL_METHOD if method is None else method
    )


def job_polls(emu: Emulator, job_id: str) -> int:
    """How many times the emulator answered a GET of this job."""
    return sum(
        1 for r in emu.stats.requests if r.route == JOB_ROUTE and r.path.endswith("/" + job_id)
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most ``BOUND`` seconds) until ``condition()`` holds."""
    try:
        async with asyncio.timeout(BOUND):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"not within {BOUND} s: {what}")


@contextlib.asynccontextmanager
async def ticking(emu: Emulator, seconds: float = 5.0) -> AsyncIterator[None]:
    """Move the emulated clock by ``seconds`` every 10 ms while the block runs."""

    async def tick() -> None:
        while True:
            emu.advance(seconds)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def transitions(updates: Iterable[JobUpdate]) -> list[tuple[str | None, str]]:
    """(previous_status, status) of each update that carries no error."""
    seen = []
    for update in updates:
        assert update.error is None, update.error
        assert update.job is not None
        seen.append((update.previous_status, str(update.job.status)))
    return seen


def at_least(items: Sized, n: int) -> Callable[[], bool]:
    """A condition: ``items`` holds ``n`` things or more."""
    return lambda: len(items) >= n


def polled(emu: Emulator, job_id: str, n: int) -> Callable[[], bool]:
    """A condition: the job has been polled ``n`` times or more."""
    return lambda: job_polls(emu, job_id) >= n


def new_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks of this loop that are not done and were not there ``before``."""
    return asyncio.all_tasks() - before - {asyncio.current_task()}


async def assert_quiet(emu: Emulator) -> None:
    """Let requests already on the way land, then check that no more arrive for ``QUIET`` s."""
    await asyncio.sleep(GRACE)
    seen = emu.stats.total
    await asyncio.sleep(QUIET)
    assert seen == emu.stats.total


async def all_events(api: AsyncClient, job_id: str) -> list[FineTuningJobEvent]:
    """Every event of a job, newest first, as the server lists them."""
    return [event async for event in api.fine_tuning.jobs.list_events(job_id, limit=100)]


def job_json(job_id: str, status: str) -> dict[str, Any]:
    """A ``fine_tuning.job`` object for the loopback server."""
    return {
        "object": "fine_tuning.job",
        "id": job_id,
        "model": MODEL,
        "created_at": 1_700_000_000,
        "status": status,
        "training_file": "file-abc",
    }


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator on this loop whose clock moves only by ``advance``."""
    async with Emulator(speed=0, seed=11) as running:
        yield running


@pytest_asyncio.fixture
async def api(emu: Emulator) -> AsyncIterator[AsyncClient]:
    """A client of ``emu``."""
    async with AsyncClient(base_url=emu.url, api_key="test") as client:
        yield client


@pytest.fixture
def threaded_emu() -> Iterator[Emulator]:
    """An emulator on its own thread (clock stopped): it adds no task to the test's loop."""
    with Emulator(speed=0, seed=12) as running:
        yield running


@pytest_asyncio.fixture
async def threaded_api(threaded_emu: Emulator) -> AsyncIterator[AsyncClient]:
    """A client of ``threaded_emu``."""
    async with AsyncClient(base_url=threaded_emu.url, api_key="test") as client:
        yield client


# --- wait ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_wait_returns_the_succeeded_job(emu: Emulator, api: AsyncClient) -> None:
    """``wait`` polls through validating, queued and running and returns the succeeded job."""
    job = await new_job(api)
    async with ticking(emu):
        done = await asyncio.wait_for(api.fine_tuning.jobs.wait(job.id, poll_interval=0.02), BOUND)
    assert (job.id, "succeeded") == (done.id, done.status)
    assert done.fine_tuned_model is not None
    assert job_polls(emu, job.id) >= 2


@pytest.mark.asyncio
async def test_wait_returns_the_failed_job(emu: Emulator, api: AsyncClient) -> None:
    """A job on a bad training file ends ``failed``, and ``wait`` returns it with its error."""
    job = await new_job(api, chat_jsonl(assistant=False))
    async with ticking(emu):
        done = await asyncio.wait_for(api.fine_tuning.jobs.wait(job.id, poll_interval=0.02), BOUND)
    assert "failed" == done.status
    assert done.error is not None
    assert "invalid_training_file" == done.error.code


@pytest.mark.asyncio
async def test_wait_returns_the_job_cancelled_while_waiting(
    emu: Emulator, api: AsyncClient
) -> None:
    """A job cancelled from another task while ``wait`` polls it makes ``wait`` return it."""
    job = await new_job(api)
    waiter = asyncio.create_task(api.fine_tuning.jobs.wait(job.id, poll_interval=0.02))
    await until(lambda: job_polls(emu, job.id) >= 3, "three polls of the job")
    assert not waiter.done()
    await api.fine_tuning.jobs.cancel(job.id)
    done = await asyncio.wait_for(waiter, BOUND)
    assert (job.id, "cancelled") == (done.id, done.status)


@pytest.mark.asyncio
async def test_wait_keeps_polling_through_paused(emu: Emulator, api: AsyncClient) -> None:
    """``wait`` does not return at ``paused``: it returns once the resumed job has succeeded."""
    job = await new_job(api)
    emu.advance(TO_RUNNING + 1)
    waiter = asyncio.create_task(api.fine_tuning.jobs.wait(job.id, poll_interval=0.02))
    await until(lambda: job_polls(emu, job.id) >= 2, "polls of the running job")
    paused = await api.fine_tuning.jobs.pause(job.id)
    assert "paused" == paused.status
    polls = job_polls(emu, job.id)
    await until(lambda: job_polls(emu, job.id) >= polls + 5, "polls of the paused job")
    assert not waiter.done()
    await api.fine_tuning.jobs.resume(job.id)
    emu.advance(FOREVER)
    done = await asyncio.wait_for(waiter, BOUND)
    assert "succeeded" == done.status


@pytest.mark.asyncio
async def test_wait_timeout_raises_with_the_job_as_last_seen(
    emu: Emulator, api: AsyncClient
) -> None:
    """On a job that cannot finish, ``timeout=0.5`` raises ``WaitTimeoutError`` with ``last``."""
    job = await new_job(api)
    with pytest.raises(WaitTimeoutError) as raised:
        await asyncio.wait_for(
            api.fine_tuning.jobs.wait(job.id, poll_interval=0.05, timeout=0.5), BOUND
        )
    last = raised.value.last
    assert isinstance(last, FineTuningJob)
    assert (job.id, "validating_files") == (last.id, last.status)
    assert job_polls(emu, job.id) >= 2


@pytest.mark.asyncio
async def test_wait_on_an_unknown_job_raises_not_found_at_once(
    emu: Emulator, api: AsyncClient
) -> None:
    """An unknown job id raises ``NotFoundError`` after one poll, not after a retry interval."""
    with pytest.raises(NotFoundError):
        await asyncio.wait_for(
            api.fine_tuning.jobs.wait("ftjob-doesnotexist", poll_interval=30.0), 2.0
        )
    assert 1 == job_polls(emu, "ftjob-doesnotexist")


# --- watch ---------------------------------------------------------------------------------------


async def direct(
    emu: Emulator,
    job_id: str,
    updates: list[JobUpdate],
    actions: Iterable[Callable[[], Awaitable[object]]],
) -> None:
    """After the n-th update and three more polls of the job, run the n-th action."""
    for seen, action in enumerate(actions, start=1):
        await until(at_least(updates, seen), f"update {seen}")
        await until(polled(emu, job_id, job_polls(emu, job_id) + 3), "polls with no change")
        await action()


async def watch_directed(
    emu: Emulator,
    api: AsyncClient,
    job_id: str,
    actions: Sequence[Callable[[], Awaitable[object]]],
) -> list[JobUpdate]:
    """Watch one job while ``direct`` moves it along; return every update."""
    updates: list[JobUpdate] = []
    watch = api.fine_tuning.jobs.watch([job_id], poll_interval=0.02, timeout=BOUND)
    director = asyncio.create_task(direct(emu, job_id, updates, actions))
    try:
        async with asyncio.timeout(OUTER), aclosing(watch):
            async for update in watch:
                updates.append(update)  # noqa: PERF401 - the director reads it meanwhile
        await asyncio.wait_for(director, BOUND)
    finally:
        director.cancel()
    assert 0 == watch.pending
    return updates


def advance(emu: Emulator, seconds: float) -> Callable[[], Awaitable[None]]:
    """An action that moves the emulated clock."""

    async def action() -> None:
        emu.advance(seconds)

    return action


@pytest.mark.asyncio
async def test_watch_yields_each_status_change_once_in_order(
    emu: Emulator, api: AsyncClient
) -> None:
    """One update per change, first with ``previous_status`` None, never repeating a status."""
    job = await new_job(api)
    actions = [
        advance(emu, TO_QUEUED),
        advance(emu, TO_RUNNING - TO_QUEUED),
        advance(emu, FOREVER),
    ]
    updates = await watch_directed(emu, api, job.id, actions)
    assert [
        (None, "validating_files"),
        ("validating_files", "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ] == transitions(updates)
    # Each status was polled several times but reported once.
    assert job_polls(emu, job.id) >= 3 * len(actions)


@pytest.mark.asyncio
async def test_watch_never_repeats_a_status_while_the_clock_runs(
    emu: Emulator, api: AsyncClient
) -> None:
    """With the clock running freely, statuses may be skipped between polls but never repeated."""
    jobs = [await new_job(api) for _ in range(3)]
    order = ["validating_files", "queued", "running", "succeeded"]
    watch = api.fine_tuning.jobs.watch([j.id for j in jobs], poll_interval=0.01, timeout=BOUND)
    async with asyncio.timeout(OUTER), ticking(emu, seconds=3.0), aclosing(watch):
        updates = [update async for update in watch]
    for job in jobs:
        steps = transitions(u for u in updates if u.job is not None and u.job.id == job.id)
        statuses = [status for _, status in steps]
        assert [None, *statuses[:-1]] == [previous for previous, _ in steps]
        assert sorted(statuses, key=order.index) == statuses
        assert len(set(statuses)) == len(statuses)
        assert "succeeded" == statuses[-1]


@pytest.mark.asyncio
async def test_watch_shows_paused_then_running_across_pause_and_resume(
    emu: Emulator, api: AsyncClient
) -> None:
    """Pausing and resuming a watched job yields ``paused`` then ``running`` again."""
    job = await new_job(api)
    actions: list[Callable[[], Awaitable[object]]] = [
        advance(emu, TO_RUNNING + 1),
        partial(api.fine_tuning.jobs.pause, job.id),
        partial(api.fine_tuning.jobs.resume, job.id),
        advance(emu, FOREVER),
    ]
    updates = await watch_directed(emu, api, job.id, actions)
    assert [
        (None, "validating_files"),
        ("validating_files", "running"),
        ("running", "paused"),
        ("paused", "running"),
        ("running", "succeeded"),
    ] == transitions(updates)


@pytest.mark.asyncio
async def test_watch_add_while_iterating_watches_the_new_job(
    emu: Emulator, api: AsyncClient
) -> None:
    """A job added during the iteration is watched to its end; re-adding a job is ignored."""
    first, second = await new_job(api), await new_job(api)
    updates: list[JobUpdate] = []
    pending: list[int] = []
    watch = api.fine_tuning.jobs.watch([first.id], poll_interval=0.02, timeout=BOUND)
    async with asyncio.timeout(OUTER), aclosing(watch):
        async for update in watch:
            updates.append(update)
            assert update.job is not None
            if update.job.id == first.id and update.previous_status is None:
                watch.add(second.id, first.id)
                pending.append(watch.pending)
            elif update.job.id == second.id and update.previous_status is None:
                emu.advance(FOREVER)
    assert [2] == pending
    for job in (first, second):
        assert [(None, "validating_files"), ("validating_files", "succeeded")] == transitions(
            u for u in updates if u.job is not None and u.job.id == job.id
        )
    assert 4 == len(updates)


@pytest.mark.asyncio
async def test_watch_keeps_at_most_max_concurrency_polls_in_flight(
    emu: Emulator, api: AsyncClient
) -> None:
    """With slow answers and twelve jobs due at once, the server never sees more than 3 polls."""
    jobs = [await new_job(api) for _ in range(12)]
    emu.reset_stats()
    emu.set_faults(Faults(latency=0.02))
    watch = api.fine_tuning.jobs.watch(
        [j.id for j in jobs], poll_interval=0.02, max_concurrency=3, timeout=BOUND
    )
    async with asyncio.timeout(OUTER), ticking(emu, seconds=10.0), aclosing(watch):
        updates = [update async for update in watch]
    finals = Counter(u.job.id for u in updates if u.job is not None and u.job.status == "succeeded")
    assert {j.id: 1 for j in jobs} == dict(finals)
    assert 3 >= emu.stats.max_in_flight
    assert emu.stats.max_in_flight >= 2  # the bound was reached for, not idle


@pytest.mark.asyncio
async def test_watch_reports_a_failing_job_with_its_error_and_keeps_watching_it(
    emu: Emulator, api: AsyncClient
) -> None:
    """Polls that keep failing yield one update with ``error``; the job is still seen to its end."""
    job = await new_job(api)
    updates: list[JobUpdate] = []
    watch = api.fine_tuning.jobs.watch([job.id], poll_interval=0.02, timeout=BOUND)
    async with asyncio.timeout(OUTER), aclosing(watch):
        async for update in watch:
            updates.append(update)
            if update.error is not None:
                emu.set_faults(Faults(), route=JOB_ROUTE)
                emu.advance(FOREVER)
            elif update.previous_status is None:
                emu.set_faults(Faults(rate_5xx=1.0), route=JOB_ROUTE)
    assert 3 == len(updates)
    failing = updates[1]
    assert isinstance(failing.error, APIStatusError)
    assert 500 == failing.error.status_code
    assert failing.job is not None
    assert (job.id, "validating_files") == (failing.job.id, failing.job.status)
    last = updates[-1]
    assert last.job is not None
    assert (None, "succeeded") == (last.error, last.job.status)
    assert emu.stats.faults["5xx"] >= 3


@pytest.mark.asyncio
async def test_watch_reports_an_unknown_job_once_and_the_others_still_finish(
    emu: Emulator, api: AsyncClient
) -> None:
    """An unknown id yields one update with ``job`` None and the error, and stays watched."""
    job = await new_job(api)
    missing = "ftjob-doesnotexist"
    updates: list[JobUpdate] = []
    watch = api.fine_tuning.jobs.watch([job.id, missing], poll_interval=0.02, timeout=BOUND)

    async def consume() -> None:
        async with aclosing(watch):
            async for update in watch:
                updates.append(update)
                if update.error is None and update.previous_status is None:
                    emu.advance(FOREVER)

    task = asyncio.create_task(consume())
    try:
        await until(lambda: len(updates) >= 3, "three updates")
        # The unknown job is still watched: counted as pending and polled again, and again.
        await until(lambda: job_polls(emu, missing) >= 5, "five polls of the unknown job")
        assert 1 == watch.pending
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)
    errors = [u for u in updates if u.error is not None]
    assert 1 == len(errors)
    assert errors[0].job is None
    assert isinstance(errors[0].error, NotFoundError)
    assert [(None, "validating_files"), ("validating_files", "succeeded")] == transitions(
        u for u in updates if u.error is None
    )


@pytest.mark.asyncio
async def test_watch_honours_a_longer_poll_after_hint(loopback: LoopbackServer) -> None:
    """``openai-poll-after-ms: 200`` slows a 10 ms interval down to about five polls a second."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            job_json(request.match_info["job_id"], "running"),
            headers={"openai-poll-after-ms": "200"},
        )

    loopback.route("GET", "/fine_tuning/jobs/{job_id}", handler)
    await loopback.start()
    polls = await count_polls(loopback, poll_interval=0.01, period=1.0)
    # At 0, 0.2 ... 1.0 s: six at most (with a spare); without the hint, about a hundred.
    assert 3 <= polls <= 7


@pytest.mark.asyncio
async def test_watch_honours_a_shorter_poll_after_hint(loopback: LoopbackServer) -> None:
    """``openai-poll-after-ms: 150`` makes a 30 s interval poll several times in a second."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            job_json(request.match_info["job_id"], "running"),
            headers={"openai-poll-after-ms": "150"},
        )

    loopback.route("GET", "/fine_tuning/jobs/{job_id}", handler)
    await loopback.start()
    polls = await count_polls(loopback, poll_interval=30.0, period=1.0)
    # About 7; without the hint, one (the next would come after 7.5 s). A hint is floored at
    # 0.1 s (test_polling_hostile.py), so this one is used as it is.
    assert polls >= 3


async def count_polls(loopback: LoopbackServer, *, poll_interval: float, period: float) -> int:
    """Watch one job on the loopback server for ``period`` seconds; return the polls it got."""
    async with AsyncClient(base_url=loopback.url, api_key="test") as client:
        watch = client.fine_tuning.jobs.watch(["ftjob-hint"], poll_interval=poll_interval)

        async def consume() -> None:
            async with aclosing(watch):
                async for _ in watch:
                    pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(period)
        polls = len(loopback.requests)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)
    return polls


# --- leaving a watch early -----------------------------------------------------------------------


async def threaded_jobs(api: AsyncClient, n: int = 6) -> list[str]:
    """Start ``n`` jobs (that never finish: the clock is stopped) and return their ids."""
    return [(await new_job(api)).id for _ in range(n)]


@pytest.mark.asyncio
async def test_break_out_of_watch_leaves_no_task_and_no_polling(
    threaded_emu: Emulator, threaded_api: AsyncClient
) -> None:
    """After ``break`` out of ``async for``, no task remains and the server sees no more polls."""
    ids = await threaded_jobs(threaded_api)
    before = asyncio.all_tasks()
    seen = 0
    async with asyncio.timeout(BOUND):
        async for _ in threaded_api.fine_tuning.jobs.watch(
            ids, poll_interval=0.02, max_concurrency=3
        ):
            seen += 1
            if seen == 4:
                break
    await assert_quiet(threaded_emu)
    assert set() == new_tasks(before)


@pytest.mark.asyncio
async def test_aclose_cancels_every_poll_at_once(
    threaded_emu: Emulator, threaded_api: AsyncClient
) -> None:
    """``aclose()`` returns with no poll task left, and the server sees no more polls."""
    ids = await threaded_jobs(threaded_api)
    before = asyncio.all_tasks()
    watch = threaded_api.fine_tuning.jobs.watch(ids, poll_interval=0.02, max_concurrency=3)
    for _ in range(4):
        await asyncio.wait_for(anext(watch), BOUND)
    await asyncio.wait_for(watch.aclose(), BOUND)
    assert set() == new_tasks(before)
    await assert_quiet(threaded_emu)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(watch), BOUND)


@pytest.mark.asyncio
async def test_cancelling_the_watching_task_leaves_no_task_and_no_polling(
    threaded_emu: Emulator, threaded_api: AsyncClient
) -> None:
    """Cancelling the task that iterates a watch stops every poll and leaves no task."""
    ids = await threaded_jobs(threaded_api)
    before = asyncio.all_tasks()
    firsts = asyncio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ in threaded_api.fine_tuning.jobs.watch(
            ids, poll_interval=0.02, max_concurrency=3
        ):
            count += 1
            if count == len(ids):
                firsts.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(firsts.wait(), BOUND)
    polls = threaded_emu.stats.total
    await until(lambda: threaded_emu.stats.total >= polls + 6, "more polls after the firsts")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, BOUND)
    assert set() == new_tasks(before)
    await assert_quiet(threaded_emu)


@pytest.mark.asyncio
async def test_watch_timeout_raises_and_leaves_no_task_and_no_polling(
    threaded_emu: Emulator, threaded_api: AsyncClient
) -> None:
    """``timeout`` ends the iteration with ``WaitTimeoutError``, no task left, no more polls."""
    ids = await threaded_jobs(threaded_api)
    before = asyncio.all_tasks()
    seen: list[JobUpdate] = []

    async def consume() -> None:
        watch = threaded_api.fine_tuning.jobs.watch(
            ids, poll_interval=0.02, max_concurrency=3, timeout=0.5
        )
        async for update in watch:
            seen.append(update)  # noqa: PERF401 - kept when the iteration raises

    with pytest.raises(WaitTimeoutError):
        await asyncio.wait_for(consume(), BOUND)
    assert len(ids) == len(seen)
    assert set() == new_tasks(before)
    await assert_quiet(threaded_emu)


class HungServer:
    """A loopback server answering ``ftjob-fast`` at once and ``ftjob-slow`` never (until freed).

    The server runs on the test's loop: its tasks (aiohttp's ``RequestHandler``) are told apart
    from the client's by their coroutine.
    """

    def __init__(self, loopback: LoopbackServer) -> None:
        self.loopback = loopback
        self.release = asyncio.Event()
        self.slow_polls = 0
        loopback.route("GET", "/fine_tuning/jobs/{job_id}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        if job_id == "ftjob-slow":
            self.slow_polls += 1
            await self.release.wait()
        return web.json_response(job_json(job_id, "running"))

    def client_tasks(self, before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
        """Tasks of the client (not the server's) not done and not there ``before``."""
        return {
            task
            for task in new_tasks(before)
            if not getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler.")
        }


@contextlib.asynccontextmanager
async def hung_server(loopback: LoopbackServer) -> AsyncIterator[tuple[HungServer, AsyncClient]]:
    """Start a ``HungServer`` and a client of it; free the hung answers at the end."""
    server = HungServer(loopback)
    await loopback.start()
    try:
        async with AsyncClient(base_url=loopback.url, api_key="test") as client:
            yield server, client
    finally:
        server.release.set()


HUNG_IDS = ["ftjob-fast", "ftjob-slow"]


@pytest.mark.asyncio
async def test_aclose_cancels_a_poll_the_server_has_not_answered(
    loopback: LoopbackServer,
) -> None:
    """``aclose()`` returns while a poll is still unanswered, leaving no client task."""
    async with hung_server(loopback) as (server, client):
        before = asyncio.all_tasks()
        watch = client.fine_tuning.jobs.watch(HUNG_IDS, poll_interval=0.05)
        first = await asyncio.wait_for(anext(watch), BOUND)
        assert first.job is not None
        assert "ftjob-fast" == first.job.id
        await until(lambda: server.slow_polls >= 1, "the slow poll to reach the server")
        await asyncio.wait_for(watch.aclose(), BOUND)
        assert not server.release.is_set()
        assert set() == server.client_tasks(before)


@pytest.mark.asyncio
async def test_cancelling_the_watching_task_cancels_an_unanswered_poll(
    loopback: LoopbackServer,
) -> None:
    """Cancelling the iterating task ends it while a poll is unanswered, leaving no task."""
    async with hung_server(loopback) as (server, client):
        before = asyncio.all_tasks()
        watch = client.fine_tuning.jobs.watch(HUNG_IDS, poll_interval=0.05)

        async def consume() -> None:
            async for _ in watch:
                pass

        task = asyncio.create_task(consume())
        await until(lambda: server.slow_polls >= 1, "the slow poll to reach the server")
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=BOUND)
        assert {task} == done
        assert task.cancelled()
        assert set() == server.client_tasks(before)


@pytest.mark.asyncio
async def test_watch_timeout_cancels_an_unanswered_poll(loopback: LoopbackServer) -> None:
    """``timeout`` ends the watch while a poll is unanswered, leaving no task."""
    async with hung_server(loopback) as (server, client):
        before = asyncio.all_tasks()
        watch = client.fine_tuning.jobs.watch(HUNG_IDS, poll_interval=0.05, timeout=0.5)

        async def consume() -> None:
            async for _ in watch:
                pass

        with pytest.raises(WaitTimeoutError):
            await asyncio.wait_for(consume(), BOUND)
        assert 1 == server.slow_polls
        assert set() == server.client_tasks(before)


@pytest.mark.asyncio
async def test_break_out_of_watch_cancels_an_unanswered_poll(loopback: LoopbackServer) -> None:
    """After ``break`` out of ``async for`` while a poll is unanswered, no client task remains."""
    async with hung_server(loopback) as (server, client):
        before = asyncio.all_tasks()
        async with asyncio.timeout(BOUND):
            async for update in client.fine_tuning.jobs.watch(HUNG_IDS, poll_interval=0.05):
                assert update.job is not None
                assert "ftjob-fast" == update.job.id
                await until(lambda: server.slow_polls >= 1, "the slow poll to reach the server")
                break
        await asyncio.sleep(GRACE)
        gc.collect()
        await asyncio.sleep(GRACE)
        assert not server.release.is_set()
        assert set() == server.client_tasks(before)


# --- stream_events -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stream_events_delivers_each_event_once_oldest_first_while_running(
    emu: Emulator, api: AsyncClient
) -> None:
    """Round by round, the stream has every event so far; at the end it is the list reversed."""
    job = await new_job(api)
    got: list[FineTuningJobEvent] = []

    async def consume() -> None:
        async for event in api.fine_tuning.jobs.stream_events(job.id, poll_interval=0.02):
            got.append(event)  # noqa: PERF401 - the test reads it while the stream runs

    task = asyncio.create_task(consume())
    sizes = []
    try:
        # validating, queued, each of the six steps, then finalising.
        for advance in (0.0, TO_QUEUED, TO_RUNNING - TO_QUEUED, 2, 2, 2, 2, 2, 2):
            emu.advance(advance)
            listed = await all_events(api, job.id)
            await until(at_least(got, len(listed)), "the stream to catch up")
            sizes.append(len(got))
            assert [e.id for e in reversed(listed)] == [e.id for e in got]
            assert not is_terminal((await api.fine_tuning.jobs.retrieve(job.id)).status)
        emu.advance(FOREVER)
        await asyncio.wait_for(task, BOUND)
    finally:
        task.cancel()
    listed = await all_events(api, job.id)
    assert [e.id for e in reversed(listed)] == [e.id for e in got]
    assert len(got) == len({e.id for e in got})
    assert "The job has successfully completed" == got[-1].message
    assert sorted(set(sizes)) == sizes  # the stream grew round after round


@pytest.mark.asyncio
async def test_stream_events_pages_back_over_more_than_a_page_of_new_events(
    emu: Emulator, api: AsyncClient
) -> None:
    """A round with 130+ new events (more than one page) still yields each once, in order."""
    job = await new_job(
        api,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 10, "batch_size": 1}},
        },
    )
    got: list[FineTuningJobEvent] = []
    async with aclosing(api.fine_tuning.jobs.stream_events(job.id, poll_interval=0.02)) as stream:
        async with asyncio.timeout(BOUND):
            async for event in stream:
                got.append(event)
                if len(got) == 2:  # "Created" and "Validating": now the rest, all at once
                    emu.advance(FOREVER)
    listed = await all_events(api, job.id)
    assert len(listed) > 130
    assert [e.id for e in reversed(listed)] == [e.id for e in got]
    assert "The job has successfully completed" == got[-1].message


@pytest.mark.asyncio
async def test_stream_events_of_a_failed_job_ends_with_its_error(
    emu: Emulator, api: AsyncClient
) -> None:
    """The stream of a job that fails ends after the error event."""
    job = await new_job(api, chat_jsonl(assistant=False))
    async with ticking(emu), asyncio.timeout(BOUND):
        got = [e async for e in api.fine_tuning.jobs.stream_events(job.id, poll_interval=0.02)]
    listed = await all_events(api, job.id)
    assert [e.id for e in reversed(listed)] == [e.id for e in got]
    assert "error" == got[-1].level


# --- batches and files ---------------------------------------------------------------------------


async def new_batch(api: AsyncClient, data: bytes | None = None) -> str:
    """Upload a batch input file, create a batch on it and return its id."""
    uploaded = await api.files.create(
        file=("batch.jsonl", batch_jsonl() if data is None else data), purpose="batch"
    )
    batch = await api.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions")
    return batch.id


@pytest.mark.asyncio
async def test_batches_wait_returns_the_completed_batch(emu: Emulator, api: AsyncClient) -> None:
    """``batches.wait`` follows a batch through validating and in progress to completed."""
    batch_id = await new_batch(api)
    async with ticking(emu, seconds=1.0):
        done = await asyncio.wait_for(api.batches.wait(batch_id, poll_interval=0.02), BOUND)
    assert (batch_id, "completed") == (done.id, done.status)
    assert done.output_file_id is not None


@pytest.mark.asyncio
async def test_batches_wait_returns_the_failed_batch(emu: Emulator, api: AsyncClient) -> None:
    """A batch whose lines name another endpoint fails validation; ``wait`` returns it."""
    batch_id = await new_batch(api, batch_jsonl(url="/v1/embeddings"))
    async with ticking(emu, seconds=1.0):
        done = await asyncio.wait_for(api.batches.wait(batch_id, poll_interval=0.02), BOUND)
    assert (batch_id, "failed") == (done.id, done.status)


@pytest.mark.asyncio
async def test_batches_wait_returns_the_batch_cancelled_while_waiting(
    emu: Emulator, api: AsyncClient
) -> None:
    """A batch cancelled while ``wait`` polls goes through cancelling; ``wait`` returns it."""
    batch_id = await new_batch(api)
    waiter = asyncio.create_task(api.batches.wait(batch_id, poll_interval=0.02))
    await until(
        lambda: any(r.path.endswith("/" + batch_id) for r in emu.stats.requests),
        "a poll of the batch",
    )
    cancelling = await api.batches.cancel(batch_id)
    assert "cancelling" == cancelling.status
    await asyncio.sleep(0.1)
    assert not waiter.done()
    emu.advance(FOREVER)
    done = await asyncio.wait_for(waiter, BOUND)
    assert (batch_id, "cancelled") == (done.id, done.status)


@pytest.mark.asyncio
async def test_files_wait_for_processing_returns_the_processed_file(api: AsyncClient) -> None:
    """``files.wait_for_processing`` returns an uploaded file once it is processed."""
    uploaded = await api.files.create(file=("train.jsonl", chat_jsonl()), purpose="fine-tune")
    done = await asyncio.wait_for(
        api.files.wait_for_processing(uploaded.id, poll_interval=0.02), BOUND
    )
    assert (uploaded.id, "processed") == (done.id, done.status)


@pytest.mark.asyncio
async def test_files_wait_for_processing_polls_until_processed(loopback: LoopbackServer) -> None:
    """A file answered ``uploaded`` twice, then ``processed``, is returned after three polls."""

    async def handler(request: web.Request) -> web.Response:
        status = "processed" if len(loopback.requests) >= 3 else "uploaded"
        return web.json_response(
            {"id": request.match_info["file_id"], "object": "file", "status": status}
        )

    loopback.route("GET", "/files/{file_id}", handler)
    await loopback.start()
    async with AsyncClient(base_url=loopback.url, api_key="test") as client:
        done = await asyncio.wait_for(
            client.files.wait_for_processing("file-abc", poll_interval=0.02), BOUND
        )
    assert ("file-abc", "processed") == (done.id, done.status)
    assert 3 == len(loopback.requests)


# --- terminal statuses and bad input -------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        "succeeded",
        "failed",
        "cancelled",
        "completed",
        "error",
        "user_error",
        "expired",
        "SUCCEEDED",
        "Failed",
        "CANCELLED",
        "Completed",
        "ERROR",
        "User_Error",
        "EXPIRED",
    ],
)
def test_is_terminal_for_every_final_spelling(status: str) -> None:
    """OpenAI's and the providers' final statuses are terminal, in any case."""
    assert is_terminal(status) is True


@pytest.mark.parametrize(
    "status",
    [
        "paused",
        "pending",
        "created",
        "pausing",
        "resuming",
        "cancel_requested",
        "queued",
        "running",
        "validating_files",
        "PAUSED",
        "Running",
        "",
        None,
    ],
)
def test_is_terminal_is_false_for_moving_statuses(status: str | None) -> None:
    """Statuses that may still change (and no status at all) are not terminal."""
    assert is_terminal(status) is False


BAD_CALLS: dict[str, Callable[[AsyncClient], object]] = {
    "wait poll_interval=0": lambda c: c.fine_tuning.jobs.wait("ftjob-1", poll_interval=0),
    "wait poll_interval=-1": lambda c: c.fine_tuning.jobs.wait("ftjob-1", poll_interval=-1),
    "wait timeout=0": lambda c: c.fine_tuning.jobs.wait("ftjob-1", timeout=0),
    "wait empty id": lambda c: c.fine_tuning.jobs.wait(""),
    "watch poll_interval=0": lambda c: c.fine_tuning.jobs.watch(["ftjob-1"], poll_interval=0),
    "watch poll_interval=-1": lambda c: c.fine_tuning.jobs.watch(["ftjob-1"], poll_interval=-1),
    "watch max_concurrency=0": lambda c: c.fine_tuning.jobs.watch(["ftjob-1"], max_concurrency=0),
    "watch timeout=0": lambda c: c.fine_tuning.jobs.watch(["ftjob-1"], timeout=0),
    "watch a string": lambda c: c.fine_tuning.jobs.watch("ftjob-1"),
    "watch an empty id": lambda c: c.fine_tuning.jobs.watch([""]),
    "watch a blank id among others": lambda c: c.fine_tuning.jobs.watch(["ftjob-1", "  "]),
    "stream_events poll_interval=0": lambda c: c.fine_tuning.jobs.stream_events(
        "ftjob-1", poll_interval=0
    ),
    "stream_events empty id": lambda c: c.fine_tuning.jobs.stream_events(""),
    "batches.wait poll_interval=0": lambda c: c.batches.wait("batch_1", poll_interval=0),
    "batches.wait timeout=0": lambda c: c.batches.wait("batch_1", timeout=0),
    "files.wait_for_processing poll_interval=-1": lambda c: c.files.wait_for_processing(
        "file-1", poll_interval=-1
    ),
    "files.wait_for_processing timeout=0": lambda c: c.files.wait_for_processing(
        "file-1", timeout=0
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("call", list(BAD_CALLS.values()), ids=list(BAD_CALLS))
async def test_bad_polling_input_raises_before_sending(
    emu: Emulator, api: AsyncClient, call: Callable[[AsyncClient], object]
) -> None:
    """A bad interval, timeout, concurrency or id raises ``InvalidParameterError``; nothing sent."""

    async def start() -> None:
        started = call(api)
        if inspect.isawaitable(started):
            await started

    with pytest.raises(InvalidParameterError):
        await asyncio.wait_for(start(), BOUND)
    assert 0 == emu.stats.total
