"""``watch`` at scale: 10,000 emulated jobs under injected 429s, 500s and dropped connections.

The emulator runs at ``speed=1`` with short phases (a job takes 5 s: validating 1 s, queued 1 s,
ten 0.2 s steps, 1 s to finish) on the test's own loop. Every job is created first, faults off;
then faults go on and one ``watch`` follows all of them. What the server saw (``emu.stats``) is
checked against the watcher's promises: each job's terminal status reported once, never more
than ``max_concurrency`` polls in flight, and after a 429 with ``Retry-After: N`` no request sent
before N seconds. The server sees, after a 429 arriving at t, the requests already in flight when
the watcher learned of it (at most ``max_concurrency - 1``) and nothing else before t + N. A second
test with one poll in flight checks the same from the other side: the very next request arrives
N seconds after the 429 or later. Both build what ``jobs.watch`` builds, with a shared pause whose
floor is 10 ms (the default, 1 s, would make hundreds of 429s take minutes). CPU time (client and
server: one process) and peak RSS are printed (``pytest -s``), not asserted.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import resource
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import APIError, AsyncClient, Backoff, JobUpdate, is_terminal
from finetune_async._polling import JobWatch, Watcher
from finetune_async.emulator import Emulator, Faults, Limits, Timing
from finetune_async.types import FineTuningJob

if TYPE_CHECKING:
    from finetune_async.emulator import RequestRecord

MODEL = "gpt-4o-mini-2024-07-18"
JOBS = 10_000
CONCURRENCY = 32
CREATE_CONCURRENCY = 64
RETRY_AFTER = 0.05
#: The emulator's phases: 1 s validating, 1 s queued, 0.2 s a step, 1 s to finish.
TIMING = Timing(validate=1, queue=1, step=0.2, finalize=1)
FAULTS = Faults(rate_429=0.05, rate_5xx=0.02, rate_drop=0.01, latency=0.002, retry_after=0.05)
#: One example a step, one epoch: ten steps.
METHOD: dict[str, Any] = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 1}},
}
JOB_ROUTE = "GET /fine_tuning/jobs/{fine_tuning_job_id}"
#: Clock resolution allowed between the server's stamps of two requests.
EPSILON = 0.005
BOUND = 10.0
#: The shared pause after a 429: 10 ms at least (below the 50 ms hints), doubling up to 0.5 s.
RATE_LIMIT = Backoff(initial=0.01, maximum=0.5)


def job_watch(api: AsyncClient, ids: list[str], **settings: Any) -> JobWatch:
    """What ``jobs.watch`` builds, with the small floor of ``RATE_LIMIT``."""
    watcher = Watcher(
        api,
        ids,
        path_of=lambda job_id: f"/fine_tuning/jobs/{job_id}",
        into=FineTuningJob,
        status_of=lambda job: job.status,
        is_done=is_terminal,
        rate_limit=RATE_LIMIT,
        **settings,
    )
    return JobWatch(watcher)


def chat_jsonl(n: int) -> bytes:
    """A valid supervised training file of ``n`` examples."""
    return b"".join(
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": str(2 * i)},
                ]
            }
        )
        + b"\n"
        for i in range(n)
    )


async def create_jobs(api: AsyncClient, n: int) -> list[str]:
    """Upload one training file and create ``n`` jobs on it, 64 at a time."""
    uploaded = await api.files.create(file=("train.jsonl", chat_jsonl(10)), purpose="fine-tune")
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create() -> str:
        async with gate:
            job = await api.fine_tuning.jobs.create(
                model=MODEL, training_file=uploaded.id, method=METHOD
            )
            return job.id

    return list(await asyncio.gather(*(create() for _ in range(n))))


def cpu_seconds() -> float:
    """User plus system CPU time of this process (the client and the emulator)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def arrivals_within(records: list[RequestRecord], window: float) -> list[tuple[float, int]]:
    """For each injected 429 (arriving at t), t and the requests arriving in (t, t + window)."""
    ordered = sorted(records, key=lambda r: r.started)
    starts = [r.started for r in ordered]
    counts = []
    for record in ordered:
        if record.fault == "429":
            first = bisect.bisect_right(starts, record.started)
            end = bisect.bisect_left(starts, record.started + window)
            counts.append((record.started, end - first))
    return counts


def check_each_job_reported(updates: list[JobUpdate], ids: list[str]) -> None:
    """Each job's changes come once each, in order, ending with one terminal status."""
    known = set(ids)
    by_job: dict[str, list[JobUpdate]] = {}
    for index, update in enumerate(updates):
        if update.error is not None:
            # A failing job is reported with the error, and it stays watched (checked below).
            assert isinstance(update.error, APIError), update.error
            assert update.job is None or update.job.id in known
            if update.job is not None:
                assert not is_terminal(update.job.status)
                later = [
                    u
                    for u in updates[index + 1 :]
                    if u.job is not None and u.job.id == update.job.id and u.error is None
                ]
                assert later, f"{update.job.id} was dropped after its error"
            continue
        assert update.job is not None
        by_job.setdefault(update.job.id, []).append(update)
    assert known == set(by_job)
    terminal = Counter(
        job_id
        for job_id, seen in by_job.items()
        for u in seen
        if u.job is not None and is_terminal(u.job.status)
    )
    assert [] == [job_id for job_id in ids if terminal[job_id] != 1]
    for job_id, seen in by_job.items():
        statuses = [str(u.job.status) for u in seen if u.job is not None]
        assert [None, *statuses[:-1]] == [u.previous_status for u in seen], job_id
        assert len(set(statuses)) == len(statuses), job_id
        assert "succeeded" == statuses[-1], job_id


@pytest.mark.asyncio
async def test_watch_ten_thousand_jobs_under_injected_faults() -> None:
    """10,000 jobs, 5 % 429, 2 % 500, 1 % drops: each terminal status once, limits kept."""
    async with (
        # Every request of the watch is checked (about 12,600): keep them all, not the last 10,000.
        Emulator(speed=1, seed=2024, timing=TIMING, limits=Limits(request_log=1_000_000)) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as api,
    ):
        ids = await asyncio.wait_for(create_jobs(api, JOBS), 120)
        emu.reset_stats()
        emu.set_faults(FAULTS)
        rss_before, cpu_before, wall_before = peak_rss_mb(), cpu_seconds(), time.perf_counter()
        watch = job_watch(api, ids, poll_interval=1.0, max_concurrency=CONCURRENCY, timeout=240)

        async def collect() -> list[JobUpdate]:
            async with contextlib.aclosing(watch):
                return [update async for update in watch]

        updates = await asyncio.wait_for(collect(), 300)
        wall = time.perf_counter() - wall_before
        cpu = cpu_seconds() - cpu_before
        emu.set_faults(Faults())
        stats = emu.stats
    counts = arrivals_within(list(stats.requests), RETRY_AFTER)
    print(  # noqa: T201 - the figures asked for, shown with -s
        f"\n{JOBS} jobs watched: wall {wall:.1f} s, CPU {cpu:.1f} s (client + emulator), "
        f"peak RSS {peak_rss_mb():.0f} MiB (before the watch {rss_before:.0f} MiB); "
        f"{stats.total} requests, faults {dict(stats.faults)}, "
        f"max in flight {stats.max_in_flight}, {len(updates)} updates, "
        f"{sum(u.error is not None for u in updates)} with an error, "
        f"at most {max((n for _, n in counts), default=0)} arrivals within {RETRY_AFTER} s of a 429"
    )
    check_each_job_reported(updates, ids)
    assert {JOB_ROUTE} == {r.route for r in stats.requests}
    assert CONCURRENCY >= stats.max_in_flight
    # The faults really happened.
    assert stats.faults["429"] >= 100
    assert stats.faults["5xx"] >= 50
    assert stats.faults["drop"] >= 20
    # After a 429 at t, only requests already in flight may arrive before t + Retry-After.
    assert stats.faults["429"] == len(counts)
    assert [] == [(t, n) for t, n in counts if n > CONCURRENCY - 1]


@pytest.mark.asyncio
async def test_one_poller_sends_nothing_until_retry_after_has_passed() -> None:
    """With one poll in flight, the request after each 429 comes ``Retry-After`` later or more."""
    async with (
        Emulator(speed=0, seed=7) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as api,
    ):
        uploaded = await api.files.create(file=("train.jsonl", chat_jsonl(10)), purpose="fine-tune")
        ids = [
            (await api.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)).id
            for _ in range(4)
        ]
        emu.reset_stats()
        emu.set_faults(Faults(rate_429=0.3, retry_after=RETRY_AFTER))
        watch = job_watch(api, ids, poll_interval=0.01, max_concurrency=1, timeout=BOUND)

        async def consume() -> None:
            async with contextlib.aclosing(watch):
                async for _ in watch:
                    pass

        task = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(BOUND):
                while emu.stats.faults["429"] < 25:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, BOUND)
        emu.set_faults(Faults())
        records = sorted(emu.stats.requests, key=lambda r: r.started)
    followed = [(a, b) for a, b in itertools.pairwise(records) if a.fault == "429"]
    assert len(followed) >= 20
    early = [
        round(b.started - a.started, 4)
        for a, b in followed
        if b.started < a.started + RETRY_AFTER - EPSILON
    ]
    assert [] == early
    assert 1 == emu.stats.max_in_flight
