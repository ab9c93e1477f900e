"""``Tracker`` against the emulator: jobs and batches, the three refresh modes, the requests
sweeps save, the shared 429 pause, the webhook hint, and the delivery rule.

The emulator's clock is stopped (``speed=0``): objects move only when a test calls ``advance``,
so each test knows how many status changes there are. Trackers poll every few milliseconds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import AsyncClient, FinetuneError, InvalidParameterError
from finetune_async._config import Backoff
from finetune_async._polling import RatePause
from finetune_async.emulator import Emulator, Faults
from finetune_async.tracking import MemoryStore, SQLiteStore, Tracker
from finetune_async.types import WebhookEvent, WebhookEventData

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from finetune_async.tracking import TrackedUpdate

MODEL = "gpt-4o-mini-2024-07-18"
METHOD: dict[str, Any] = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}},
}
FOREVER = 100_000.0
BOUND = 15.0
JOB_ROUTE = "GET /fine_tuning/jobs/{fine_tuning_job_id}"
JOBS_ROUTE = "GET /fine_tuning/jobs"


def training() -> bytes:
    rows = [
        {"messages": [{"role": "user", "content": f"{i}?"}, {"role": "assistant", "content": "ok"}]}
        for i in range(12)
    ]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def batch_input() -> bytes:
    row = {
        "custom_id": "r-0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
    }
    return orjson.dumps(row) + b"\n"


async def create_jobs(api: AsyncClient, n: int) -> list[str]:
    """Create ``n`` jobs on one training file, 32 at a time."""
    uploaded = await api.files.create(file=("t.jsonl", training()), purpose="fine-tune")
    gate = asyncio.Semaphore(32)

    async def one() -> str:
        async with gate:
            job = await api.fine_tuning.jobs.create(
                model=MODEL, training_file=uploaded.id, method=METHOD
            )
            return job.id

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def create_batches(api: AsyncClient, n: int) -> list[str]:
    uploaded = await api.files.create(file=("b.jsonl", batch_input()), purpose="batch")
    ids = []
    for _ in range(n):
        batch = await api.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        ids.append(batch.id)
    return ids


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(BOUND):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"not within {BOUND} s: {what}")


async def collect(tracker: Tracker, emu: Emulator, first: int) -> list[TrackedUpdate]:
    """Every update until the end; the clock jumps to the end after the ``first`` ones."""
    seen: list[TrackedUpdate] = []
    async with asyncio.timeout(BOUND):
        async for got in tracker.updates():
            seen.append(got)
            if len(seen) == first:
                emu.advance(FOREVER)
    return seen


async def drain(tracker: Tracker) -> list[TrackedUpdate]:
    return [got async for got in tracker.updates()]


def routes(emu: Emulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in emu.stats.requests:
        counts[record.route] = counts.get(record.route, 0) + 1
    return counts


# --- life cycles in each mode ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("refresh", ["retrieve", "list", "auto"])
async def test_jobs_and_batches_are_followed_to_the_end(refresh: str) -> None:
    """Each object yields its first status, then its terminal one, each once, in every mode."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 3)
        batches = await create_batches(api, 2)
        emu.reset_stats()
        store = MemoryStore()
        async with Tracker(api, store=store, poll_interval=0.02, refresh=refresh) as tracker:
            await tracker.add_jobs(jobs)
            await tracker.add_batches(batches)
            await tracker.add_jobs(jobs[:1])  # already tracked: nothing happens
            seen = await collect(tracker, emu, first=5)
            status = await tracker.status()
        by_id: dict[str, list[str]] = {}
        for got in seen:
            by_id.setdefault(got.id, []).append(got.status)
        assert {j: ["validating_files", "succeeded"] for j in jobs} | {
            b: ["validating", "completed"] for b in batches
        } == by_id
        assert len(seen) == len({got.update_id for got in seen})
        terminal = [got for got in seen if got.terminal]
        assert all(got.previous_status is not None for got in terminal)
        assert {"job"} == {got.kind for got in seen if got.id in jobs}
        assert all(got.record.id == got.id for got in seen)
        assert all(o.terminal and o.delivered and o.polls >= 2 for o in status)
        assert [*jobs, *batches] == [o.id for o in status]
        if refresh == "retrieve":
            assert 0 == tracker.stats.sweeps
            assert JOBS_ROUTE not in routes(emu)
        if refresh == "list":
            assert tracker.stats.sweeps >= 2
        assert tracker.stats.requests == emu.stats.total


# --- how many requests sweeps save ----------------------------------------------------------------


async def refresh_costs(refresh: str, tracked: int, newer: int, rounds: int) -> tuple[int, int]:
    """Requests and sweeps of ``rounds`` full refreshes of ``tracked`` jobs under ``newer`` ones."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, tracked)
        await create_jobs(api, newer)
        emu.reset_stats()
        async with Tracker(
            api, store=MemoryStore(), poll_interval=0.05, refresh=refresh, max_concurrency=32
        ) as tracker:
            await tracker.add_jobs(jobs)
            await until(lambda: tracker.stats.polls >= tracked * rounds, f"{rounds} refreshes")
        assert tracker.stats.requests == emu.stats.total
        return tracker.stats.requests, tracker.stats.sweeps


@pytest.mark.asyncio
async def test_a_sweep_reads_150_jobs_in_two_requests_where_retrieves_need_150() -> None:
    """150 tracked jobs under 30 newer ones: 2 pages a refresh against 150 GETs."""
    swept, sweeps = await refresh_costs("list", 150, 30, rounds=3)
    assert sweeps >= 3
    assert swept <= 2 * sweeps
    retrieved, none = await refresh_costs("retrieve", 150, 30, rounds=3)
    assert 0 == none
    assert retrieved >= 150 * 3


@pytest.mark.asyncio
async def test_auto_sweeps_dense_jobs_and_retrieves_sparse_ones() -> None:
    """``auto``: dense tracked jobs are swept; 3 jobs under 250 newer ones are retrieved after
    the first sweep showed how deep they are."""
    requests, sweeps = await refresh_costs("auto", 150, 30, rounds=3)
    assert requests <= 2 * sweeps
    requests, sweeps = await refresh_costs("auto", 3, 250, rounds=4)
    # The first (blind) sweep reads 3 pages to find them; after it, 3 retrieves a refresh.
    assert 1 == sweeps


# --- the shared 429 pause -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_429_pauses_the_whole_tracker_with_a_growing_floor() -> None:
    """Every retrieve refused: nothing is sent for the floor (0.2 s, Retry-After says 0.05),
    then twice as long; once the server lets requests through, every job is seen."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 8)
        emu.reset_stats()
        emu.set_faults(Faults(rate_429=1.0, retry_after=0.05), route=JOB_ROUTE)
        async with Tracker(
            api, store=MemoryStore(), poll_interval=60, refresh="retrieve", max_concurrency=8
        ) as tracker:
            tracker._pause = RatePause(Backoff(initial=0.2, maximum=1.0, jitter=0.0))
            await tracker.add_jobs(jobs)
            await until(lambda: emu.stats.total >= 17, "three refused rounds")
            emu.set_faults(Faults(), route=JOB_ROUTE)
            seen = []
            async with asyncio.timeout(BOUND):
                async for got in tracker.updates():
                    seen.append(got.id)
                    if len(seen) == len(jobs):
                        break
        # Rounds of 8 (one retry per job and pause): the pause begins once the first refusal of
        # a round is answered, which is after that round's first request arrived.
        starts = sorted(r.started for r in emu.stats.requests)
        assert starts[8] - starts[0] >= 0.19
        assert starts[16] - starts[8] >= 0.39
        assert sorted(jobs) == sorted(seen)
        assert 8 <= emu.stats.faults["429"]


# --- webhooks: the hint the receiver's on_event gives ---------------------------------------------


def event(object_id: str | None, kind: str = "fine_tuning.job.succeeded") -> WebhookEvent:
    return WebhookEvent(
        id="evt_1",
        type=kind,
        created_at=1,
        data=WebhookEventData(id=object_id, raw={"id": object_id}),
        webhook_id="msg_1",
    )


@pytest.mark.asyncio
async def test_a_webhook_is_stored_then_answered_by_one_retrieve_at_once() -> None:
    """The hint is in the store when ``on_webhook_event`` returns; one retrieve follows at once
    (no waiting for the hour-long poll interval), and the terminal status is not reconciled."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        (job,) = await create_jobs(api, 1)
        store = MemoryStore()
        async with Tracker(
            api, store=store, poll_interval=3600, webhook_secret="whsec_c2VjcmV0"
        ) as tracker:
            await tracker.add_jobs([job])
            updates = tracker.updates()
            first = await anext(updates)
            assert "validating_files" == first.status
            emu.advance(FOREVER)
            emu.reset_stats()
            assert not await tracker.on_webhook_event(event("ftjob-unknown"))
            assert not await tracker.on_webhook_event(event(None))
            assert await tracker.on_webhook_event(event(job))
            (stored,) = await store.objects()
            assert stored.hinted_at is not None
            async with asyncio.timeout(BOUND):
                last = await anext(updates)
            await updates.aclose()
        assert ("succeeded", True) == (last.status, last.terminal)
        assert 1 == tracker.stats.webhooks
        assert 0 == tracker.stats.reconciled
        assert [JOB_ROUTE] == [r.route for r in emu.stats.requests]


@pytest.mark.asyncio
async def test_without_a_webhook_the_terminal_status_counts_as_reconciled() -> None:
    """A terminal status that only polling found is counted in ``stats.reconciled``."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 2)
        async with Tracker(api, store=MemoryStore(), poll_interval=0.02) as tracker:
            await tracker.add_jobs(jobs)
            await collect(tracker, emu, first=2)
        assert 2 == tracker.stats.reconciled


# --- the delivery rule ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_break_delivers_and_an_exception_redelivers_after_a_restart(tmp_path: Path) -> None:
    """``break`` then a clean exit: delivered. A raise out of the block: the same update again
    from the next tracker on the store, with the same update_id."""
    path = tmp_path / "t.db"
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 2)
        async with Tracker(api, store=path, poll_interval=0.02) as tracker:
            await tracker.add_jobs(jobs)
            await until(lambda: tracker.stats.polls >= 2, "both jobs seen")
            async for got in tracker.updates():
                first = got
                break
        async with Tracker(api, store=SQLiteStore(path), poll_interval=0.02) as tracker:
            async for got in tracker.updates():
                second = got
                break
        assert first.id != second.id
        emu.advance(FOREVER)
        failed: list[TrackedUpdate] = []

        async def fail_on_the_first() -> None:
            async with Tracker(api, store=path, poll_interval=0.02) as tracker:
                async for got in tracker.updates():
                    failed.append(got)
                    raise RuntimeError("consumer failed")

        with pytest.raises(RuntimeError, match="consumer failed"):
            await fail_on_the_first()
        assert failed[0].update_id not in {first.update_id, second.update_id}
        async with Tracker(api, store=path, poll_interval=0.02) as tracker:
            async with asyncio.timeout(BOUND):
                again = [got async for got in tracker.updates()]
        assert failed[0].update_id == again[0].update_id
        assert {"succeeded"} == {got.status for got in again[1:]}
        assert sorted(jobs) == sorted(got.id for got in again if got.terminal)


@pytest.mark.asyncio
async def test_remove_and_an_empty_tracker() -> None:
    """A removed id is no longer polled and its updates are gone; an empty tracker's loop ends."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 2)
        async with Tracker(api, store=MemoryStore(), poll_interval=0.02) as tracker:
            assert [] == [got async for got in tracker.updates()]
            await tracker.add_jobs(jobs)
            await until(lambda: tracker.stats.polls >= 2, "both jobs seen")
            await tracker.remove(jobs[0])
            await tracker.remove("ftjob-unknown")
            emu.advance(FOREVER)
            emu.reset_stats()
            async with asyncio.timeout(BOUND):
                seen = [got async for got in tracker.updates()]
            assert [jobs[1]] == [o.id for o in await tracker.status()]
        assert {jobs[1]} == {got.id for got in seen}
        assert all(r.path.endswith(jobs[1]) for r in emu.stats.requests)


@pytest.mark.asyncio
async def test_bad_settings_and_use_outside_the_block() -> None:
    """Bad settings are ``InvalidParameterError``; calls outside ``async with`` are refused."""
    async with AsyncClient(base_url="http://127.0.0.1:9/v1", api_key="k") as api:
        for settings in (
            {"poll_interval": 0},
            {"reconcile_interval": -1},
            {"max_concurrency": 0},
            {"refresh": "sometimes"},
            {"webhook_secret": ""},
        ):
            with pytest.raises(InvalidParameterError):
                Tracker(api, store=MemoryStore(), **settings)
        with pytest.raises(InvalidParameterError, match="store"):
            Tracker(api, store=42)  # type: ignore[arg-type]
        tracker = Tracker(api, store=MemoryStore())
        with pytest.raises(FinetuneError, match="async with"):
            await tracker.add_jobs(["ftjob-1"])
        async with tracker:
            with pytest.raises(InvalidParameterError, match="not one string"):
                await tracker.add_jobs("ftjob-1")
            with pytest.raises(InvalidParameterError, match="non-empty"):
                await tracker.add_batches([""])


@pytest.mark.asyncio
async def test_auto_sweeps_ids_added_after_the_first_sweep() -> None:
    """100 jobs added to a tracker that has swept 150 are found by a sweep (new jobs are at the
    top of the list), not by 100 retrieves."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        old = await create_jobs(api, 150)
        new = await create_jobs(api, 100)
        async with Tracker(api, store=MemoryStore(), poll_interval=3600) as tracker:
            await tracker.add_jobs(old)
            await until(lambda: tracker.stats.polls >= 150, "the first sweep")
            before = tracker.stats.requests
            await tracker.add_jobs(new)
            await until(lambda: tracker.stats.polls >= 250, "the new jobs")
            spent = tracker.stats.requests - before
        assert 0 == routes(emu).get(JOB_ROUTE, 0)
        assert spent <= 2
        assert 2 == tracker.stats.sweeps


@pytest.mark.asyncio
async def test_a_closed_client_ends_the_loop_with_its_error() -> None:
    """The runner's fatal error (the client closed under it) is raised by ``updates()``."""
    async with Emulator(speed=0) as emu:
        api = AsyncClient(base_url=emu.url, api_key="k")
        (job,) = await create_jobs(api, 1)
        async with Tracker(api, store=MemoryStore(), poll_interval=0.02) as tracker:
            await tracker.add_jobs([job])
            await until(lambda: tracker.stats.polls >= 1, "the first poll")
            await api.aclose()
            with pytest.raises(FinetuneError, match="closed"):
                await asyncio.wait_for(drain(tracker), BOUND)


@pytest.mark.asyncio
async def test_a_hint_stored_before_a_crash_is_followed_at_the_restart(tmp_path: Path) -> None:
    """A webhook written to the store but never followed by a retrieve (the process died after
    answering 200) is retrieved first when a tracker opens the store again."""
    path = tmp_path / "t.db"
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 4)
        store = SQLiteStore(path)
        await store.open()
        await store.add([("job", job) for job in jobs], 1.0)
        await store.hint(jobs[2], 2.0)
        await store.close()
        emu.reset_stats()
        async with Tracker(api, store=path, poll_interval=3600, refresh="list") as tracker:
            await until(lambda: tracker.stats.polls >= 5, "the hint's retrieve and a sweep")
        first = emu.stats.requests[0]
        assert (JOB_ROUTE, True) == (first.route, first.path.endswith(jobs[2]))


@pytest.mark.asyncio
async def test_follow_waits_for_ids_added_later() -> None:
    """With ``follow=True`` the loop outlives the terminal objects and yields a later one's."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        early, late = await create_jobs(api, 2)
        emu.advance(FOREVER)
        async with Tracker(api, store=MemoryStore(), poll_interval=0.02) as tracker:
            await tracker.add_jobs([early])
            seen = []
            async with asyncio.timeout(BOUND):
                async for got in tracker.updates(follow=True):
                    seen.append(got.id)
                    if got.id == early:
                        await asyncio.sleep(0.1)  # every object is terminal and delivered now
                        await tracker.add_jobs([late])
                    if got.id == late:
                        break
        assert [early, late] == seen


@pytest.mark.asyncio
async def test_ids_added_by_another_process_are_picked_up(tmp_path: Path) -> None:
    """A second store on the same file (``track add`` beside ``track run``) adds an id while a
    tracker runs; the tracker polls it from its next full refresh."""
    path = tmp_path / "t.db"
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        first, second = await create_jobs(api, 2)
        async with Tracker(api, store=path, poll_interval=0.05) as tracker:
            await tracker.add_jobs([first])
            other = SQLiteStore(path)
            await other.open()
            await other.add([("job", second)], 1.0)
            await other.close()
            seen = set()
            async with asyncio.timeout(BOUND):
                async for got in tracker.updates(follow=True):
                    seen.add(got.id)
                    if seen == {first, second}:
                        break
        assert {first, second} == seen


@pytest.mark.asyncio
@pytest.mark.parametrize("refresh", ["retrieve", "list"])
async def test_errors_and_dropped_connections_lose_nothing(refresh: str) -> None:
    """With half the answers 500 or cut, every job and batch still reaches its terminal update,
    once: a failed read is tried again at the next refresh."""
    async with Emulator(speed=0, seed=7) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 4)
        batches = await create_batches(api, 2)
        emu.set_faults(Faults(rate_5xx=0.3, rate_drop=0.2))
        async with Tracker(api, store=MemoryStore(), poll_interval=0.01, refresh=refresh) as t:
            await t.add_jobs(jobs)
            await t.add_batches(batches)
            seen = await collect(t, emu, first=6)
        terminal = [got.id for got in seen if got.terminal]
        assert sorted([*jobs, *batches]) == sorted(terminal)
        assert len(seen) == len({got.update_id for got in seen})
        assert emu.stats.faults["5xx"] + emu.stats.faults["drop"] > 0
