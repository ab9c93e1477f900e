"""A tracker that survives restarts: a real process killed with SIGKILL mid-run (with an update
in flight, or right after its receiver took a webhook) and started again on the same SQLite
store, and a 5,000-object store opened and loaded in bounded time.

The tracker runs in a subprocess (a small script written by the test); the emulator runs on the
test's loop, its clock stopped, so the test decides when every object moves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import AsyncClient
from finetune_async.emulator import Emulator
from finetune_async.tracking import SQLiteStore, Tracker
from finetune_async.tracking._plan import update_id
from finetune_async.tracking._sqlite import migrate

from .test_tracking_tracker import FOREVER, create_batches, create_jobs
from .test_tracking_webhooks import SECRET, post_event

if TYPE_CHECKING:
    from collections.abc import Sequence

BOUND = 20.0
ROOT = Path(__file__).resolve().parent.parent

#: The tracker process: prints each update as a JSON line; after the ``stop_after``-th it stops
#: asking for the next one (that update is in flight) until it is killed.
SCRIPT = """
import asyncio, sys
import orjson
from finetune_async import AsyncClient
from finetune_async.tracking import Tracker

async def main(url, store, stop_after, jobs, batches):
    async with AsyncClient(base_url=url, api_key="k") as api, Tracker(
        api, store=store, poll_interval=0.02
    ) as tracker:
        await tracker.add_jobs(jobs)
        await tracker.add_batches(batches)
        count = 0
        async for update in tracker.updates():
            count += 1
            line = {"update_id": update.update_id, "id": update.id, "status": update.status,
                    "terminal": update.terminal}
            sys.stdout.write(orjson.dumps(line).decode() + "\\n")
            sys.stdout.flush()
            if count == stop_after:
                await asyncio.sleep(3600)
    sys.stdout.write("END\\n")
    sys.stdout.flush()

asyncio.run(main(*orjson.loads(sys.argv[1])))
"""


async def start(script: Path, args: Sequence[Any]) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        orjson.dumps(list(args)).decode(),
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


async def lines(process: asyncio.subprocess.Process, n: int) -> list[dict[str, Any]]:
    """The next ``n`` updates the process prints."""
    assert process.stdout is not None
    out = []
    async with asyncio.timeout(BOUND):
        for _ in range(n):
            raw = await process.stdout.readline()
            assert raw, "the tracker process ended early"
            out.append(orjson.loads(raw))
    return out


async def until_end(process: asyncio.subprocess.Process) -> list[dict[str, Any]]:
    assert process.stdout is not None
    out = []
    async with asyncio.timeout(BOUND):
        while (raw := await process.stdout.readline()) != b"END\n":
            assert raw, "the tracker process ended without END"
            out.append(orjson.loads(raw))
        assert 0 == await process.wait()
    return out


@pytest.mark.asyncio
async def test_a_tracker_killed_mid_run_goes_on_where_it_stopped(tmp_path: Path) -> None:
    """SIGKILL with an update in flight; the restarted process (no ids re-added) delivers that
    update again with the same update_id, then every other terminal update, and nothing that
    was delivered before the kill."""
    script = tmp_path / "track.py"
    script.write_text(SCRIPT)
    store = str(tmp_path / "tracker.db")
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 3)
        batches = await create_batches(api, 2)
        first = await start(script, [emu.url, store, 7, jobs, batches])
        try:
            seen = await lines(first, 5)
            assert {*jobs, *batches} == {line["id"] for line in seen}
            emu.advance(FOREVER)
            seen += await lines(first, 2)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert -signal.SIGKILL == first.returncode
        in_flight = seen[-1]
        assert in_flight["terminal"]

        second = await start(script, [emu.url, store, 0, [], []])
        try:
            after = await until_end(second)
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()

    assert in_flight == after[0]
    delivered_before = {line["update_id"] for line in seen[:-1]}
    assert not delivered_before & {line["update_id"] for line in after}
    everything = seen[:-1] + after
    assert len(everything) == len({line["update_id"] for line in everything}) == 10
    terminal = {line["id"]: line["status"] for line in everything if line["terminal"]}
    assert dict.fromkeys(jobs, "succeeded") | dict.fromkeys(batches, "completed") == terminal
    # The ids are what the update is, so the restarted process could have recomputed them.
    for line in everything:
        seq = 2 if line["terminal"] else 1
        assert (
            update_id("job" if line["id"] in jobs else "batch", line["id"], seq, line["status"])
            == line["update_id"]
        )


def write_store(path: Path, n: int) -> None:
    """A store of ``n`` running jobs, each with one update, the first half delivered."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO objects (id, kind, added_at, status, seq, created_at) "
        "VALUES (?, 'job', 1, 'running', 1, ?)",
        [(f"ftjob-{i:05d}", 1_700_000_000 + i) for i in range(n)],
    )
    record = orjson.dumps({"id": "x", "status": "running", "object": "fine_tuning.job"})
    conn.executemany(
        "INSERT INTO updates (update_id, object_id, kind, seq, status, terminal, record, "
        "delivered) VALUES (?, ?, 'job', 1, 'running', 0, ?, ?)",
        [(f"upd-{i}", f"ftjob-{i:05d}", record, int(i < n // 2)) for i in range(n)],
    )
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.asyncio
async def test_a_5000_object_tracker_restarts_in_bounded_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opening a 5,000-job store, loading its live set and its first undelivered update takes
    well under the (generous) bound; the figure is printed for the report."""
    path = tmp_path / "big.db"
    write_store(path, 5000)
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        tracker = Tracker(api, store=SQLiteStore(path), poll_interval=3600, refresh="list")
        started = time.perf_counter()
        async with tracker:
            entered = time.perf_counter()
            updates = tracker.updates()
            first = await anext(updates)
            loaded = time.perf_counter()
            await updates.aclose()
            assert 5000 == len(tracker._live)
            assert "upd-2500" == first.update_id
        with capsys.disabled():
            print(  # noqa: T201 - the figure the report quotes
                f"\n5,000-object restart: open+load {entered - started:.3f} s, "
                f"first undelivered update after {loaded - started:.3f} s"
            )
    assert loaded - started < 10.0


#: A tracker process taking webhooks: it serves its receiver, prints the URL, and waits. Its API
#: never answers (a black hole), so no retrieve follows a webhook before the process is killed.
WEBHOOK_SCRIPT = """
import asyncio, sys
import orjson
from finetune_async import AsyncClient
from finetune_async.tracking import Tracker

async def main(url, store, secret, jobs):
    async with AsyncClient(base_url=url, api_key="k") as api, Tracker(
        api, store=store, webhook_secret=secret, reconcile_interval=3600, refresh="retrieve"
    ) as tracker:
        await tracker.add_jobs(jobs)
        server = await tracker.serve_webhooks(port=0)
        sys.stdout.write(server.url + "\\n")
        sys.stdout.flush()
        await asyncio.sleep(3600)

asyncio.run(main(*orjson.loads(sys.argv[1])))
"""


@pytest.mark.asyncio
async def test_a_webhook_taken_just_before_a_sigkill_is_followed_first_at_the_restart(
    tmp_path: Path,
) -> None:
    """A tracker process answers a webhook 200 through its real receiver (the hint is in the
    store), then dies by SIGKILL before any retrieve came back; the restarted tracker, sweeping
    the rest, retrieves that hinted job first, and does not count it as reconciled."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answer; until the client goes away
        writer.close()

    script = tmp_path / "track_webhooks.py"
    script.write_text(WEBHOOK_SCRIPT)
    store = str(tmp_path / "tracker.db")
    black_hole = await asyncio.start_server(hold, "127.0.0.1", 0)
    hole_url = f"http://127.0.0.1:{black_hole.sockets[0].getsockname()[1]}/v1"
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 3)
        tracker_process = await start(script, [hole_url, store, SECRET, jobs])
        try:
            assert tracker_process.stdout is not None
            async with asyncio.timeout(BOUND):
                url = (await tracker_process.stdout.readline()).decode().strip()
            assert 200 == await post_event(url, jobs[1], webhook_id="wh_before_kill")
        finally:
            tracker_process.send_signal(signal.SIGKILL)
            await tracker_process.wait()
        black_hole.close()
        await black_hole.wait_closed()
        emu.advance(FOREVER)
        emu.reset_stats()
        async with Tracker(
            api, store=store, webhook_secret=SECRET, reconcile_interval=3600, refresh="list"
        ) as tracker:
            async with asyncio.timeout(BOUND):
                ends = [got async for got in tracker.updates()]
        first = min(emu.stats.requests, key=lambda record: record.started)
    assert -signal.SIGKILL == tracker_process.returncode
    assert ("GET /fine_tuning/jobs/{fine_tuning_job_id}", True) == (
        first.route,
        first.path.endswith(jobs[1]),
    )
    assert sorted(jobs) == sorted(got.id for got in ends if got.terminal)
    # The other two were found by the sweep, and no webhook had told of them.
    assert (0, 2) == (tracker.stats.webhooks, tracker.stats.reconciled)
