"""``Tracker`` push and pull: the emulator's webhooks through ``tracker.serve_webhooks``, polling
every ``reconcile_interval`` to catch what they missed.

The emulator's clock is stopped (``speed=0``): jobs and batches end only when a test calls
``advance``, and each end sends one signed webhook to every endpoint at once. So a test knows
which requests each step causes, and asserts on counts, not on times.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from typing import TYPE_CHECKING

import aiohttp
import orjson
import pytest

from finetune_async import AsyncClient, FinetuneError, InvalidParameterError
from finetune_async.emulator import Emulator, Faults
from finetune_async.tracking import MemoryStore, SQLiteStore, Tracker
from finetune_async.webhooks import sign

from .test_tracking_tracker import (
    BOUND,
    FOREVER,
    JOB_ROUTE,
    create_batches,
    create_jobs,
    routes,
    until,
)

if TYPE_CHECKING:
    from pathlib import Path

    from finetune_async.tracking import TrackedUpdate, WebhookServer

SECRET = "whsec_" + base64.b64encode(b"the tracker tests' webhook secret").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody else's webhook secret!!").decode()


def webhook_tracker(api: AsyncClient, **settings: object) -> Tracker:
    """A tracker taking webhooks, whose reconcile polls never come within a test unless asked."""
    options: dict[str, object] = {
        "store": MemoryStore(),
        "poll_interval": 0.01,  # ignored with webhooks: reconcile_interval applies
        "reconcile_interval": 3600.0,
        "webhook_secret": SECRET,
    }
    return Tracker(api, **(options | settings))  # type: ignore[arg-type]


def event_body(object_id: str, kind: str, webhook_id: str) -> bytes:
    """A thin event as OpenAI sends it: the id only."""
    return orjson.dumps(
        {
            "id": f"evt_{webhook_id}",
            "object": "event",
            "type": kind,
            "created_at": int(time.time()),
            "data": {"id": object_id},
        }
    )


async def post_event(
    url: str,
    object_id: str,
    *,
    kind: str = "fine_tuning.job.succeeded",
    webhook_id: str = "wh_1",
    secret: str = SECRET,
) -> int:
    """POST one signed event, as OpenAI sends it; return the HTTP status."""
    body = event_body(object_id, kind, webhook_id)
    headers = sign(body, secret=secret, webhook_id=webhook_id, timestamp=int(time.time()))
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status


async def first_statuses(tracker: Tracker, n: int) -> list[TrackedUpdate]:
    """The first ``n`` updates (each object's first status), leaving the loop open."""
    seen = []
    async with asyncio.timeout(BOUND):
        async for got in tracker.updates():
            seen.append(got)
            if len(seen) == n:
                break
    return seen


async def the_rest(tracker: Tracker) -> list[TrackedUpdate]:
    """Every further update, until every object is terminal and delivered."""
    async with asyncio.timeout(BOUND):
        return [got async for got in tracker.updates()]


def free_port() -> int:
    """A port nobody listens on (bound, read, and closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def serve(tracker: Tracker, emu: Emulator) -> WebhookServer:
    server = await tracker.serve_webhooks(port=0)
    emu.add_webhook(server.url, SECRET)
    return server


# --- push: each terminal status through its webhook -----------------------------------------------


@pytest.mark.asyncio
async def test_terminal_statuses_arrive_through_webhooks_with_one_retrieve_each() -> None:
    """With an hour-long reconcile_interval (and poll_interval ignored), each job's and batch's
    end reaches the tracker as a webhook and costs exactly one retrieve: 6 ends, 6 requests,
    none of them reconciled."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        jobs = await create_jobs(api, 4)
        batches = await create_batches(api, 2)
        async with webhook_tracker(api) as tracker:
            await serve(tracker, emu)
            await tracker.add_jobs(jobs)
            await tracker.add_batches(batches)
            await first_statuses(tracker, 6)
            emu.reset_stats()
            await asyncio.sleep(0.1)  # ten poll_intervals, and no poll: nothing moved
            assert 0 == emu.stats.total
            emu.advance(FOREVER)
            rest = await the_rest(tracker)
        assert {*jobs, *batches} == {got.id for got in rest}
        assert all(got.terminal for got in rest)
        assert len(rest) == len({got.update_id for got in rest})
        assert 6 == emu.stats.total == emu.stats.webhooks.delivered
        assert {JOB_ROUTE: 4, "GET /batches/{batch_id}": 2} == routes(emu)
        assert (6, 0, 0, 0) == (
            tracker.stats.webhooks,
            tracker.stats.reconciled,
            tracker.stats.rechecks,
            tracker.stats.webhooks_ignored,
        )


@pytest.mark.asyncio
async def test_a_webhook_before_the_api_caught_up_is_rechecked_once(tmp_path: Path) -> None:
    """A webhook whose retrieve still finds the job running is followed by one more retrieve
    ``recheck_delay`` later, not a reconcile_interval later; a recheck that finds it running
    too is the last one (the reconcile poll does the rest)."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        (job,) = await create_jobs(api, 1)
        store = SQLiteStore(tmp_path / "t.db")
        async with webhook_tracker(api, store=store, recheck_delay=0.3) as tracker:
            server = await tracker.serve_webhooks(port=0)
            await tracker.add_jobs([job])
            (first,) = await first_statuses(tracker, 1)
            emu.reset_stats()
            # The API has not caught up: the job has not ended when its webhook comes.
            assert 200 == await post_event(server.url, job, webhook_id="wh_early")
            await until(lambda: emu.stats.total >= 2, "the hint's retrieve and its recheck")
            await asyncio.sleep(0.9)  # three recheck delays: no third request
            assert (2, 1) == (emu.stats.total, tracker.stats.rechecks)
            # A second webhook: its retrieve (the 3rd request) is answered before the clock
            # moves; the recheck (same loop, a later timer) then finds the job succeeded.
            assert 200 == await post_event(server.url, job, webhook_id="wh_again")
            await until(lambda: emu.stats.total >= 3, "the second hint's retrieve")
            emu.advance(FOREVER)
            rest = await the_rest(tracker)
        assert "validating_files" == first.status
        assert [("succeeded", True)] == [(got.status, got.terminal) for got in rest]
        assert {JOB_ROUTE: 4} == routes(emu)
        assert (2, 2, 0) == (
            tracker.stats.webhooks,
            tracker.stats.rechecks,
            tracker.stats.reconciled,
        )


# --- pull: what the webhooks missed -------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("missed", ["dropped", "unreachable"])
async def test_missed_webhooks_are_reconciled_by_the_next_poll(missed: str) -> None:
    """Every webhook dropped by the sender (``webhook_drop_rate=1.0``), or a receiver nobody can
    reach: the next reconcile poll finds every end (one round: one retrieve per object, so at
    most one reconcile_interval late), counts it in ``stats.reconciled``, and loses nothing."""
    faults = Faults(webhook_drop_rate=1.0) if missed == "dropped" else None
    async with (
        Emulator(speed=0, faults=faults) as emu,
        AsyncClient(base_url=emu.url, api_key="k") as api,
    ):
        jobs = await create_jobs(api, 3)
        batches = await create_batches(api, 2)
        async with webhook_tracker(api, reconcile_interval=0.5, refresh="retrieve") as tracker:
            if missed == "dropped":
                await serve(tracker, emu)
            else:
                emu.add_webhook(f"http://127.0.0.1:{free_port()}/webhooks", SECRET)
            await tracker.add_jobs(jobs)
            await tracker.add_batches(batches)
            await first_statuses(tracker, 5)
            emu.reset_stats()
            emu.advance(FOREVER)
            rest = await the_rest(tracker)
            if missed == "unreachable":
                await until(lambda: emu.stats.webhooks.failed >= 5, "the failed deliveries")
        assert sorted([*jobs, *batches]) == sorted(got.id for got in rest if got.terminal)
        assert len(rest) == 5
        # One reconcile round found every end: later rounds have no live object to read.
        assert 5 == emu.stats.total
        assert (5, 0) == (tracker.stats.reconciled, tracker.stats.webhooks)
        if missed == "dropped":
            assert 5 == emu.stats.webhooks.dropped
        assert 0 == emu.stats.webhooks.delivered


@pytest.mark.asyncio
async def test_half_the_webhooks_dropped_lose_nothing() -> None:
    """With half the deliveries dropped, the webhooks bring some ends and the reconcile poll the
    others: every object ends once, and each dropped one is reconciled."""
    async with (
        Emulator(speed=0, seed=3, faults=Faults(webhook_drop_rate=0.5)) as emu,
        AsyncClient(base_url=emu.url, api_key="k") as api,
    ):
        jobs = await create_jobs(api, 6)
        batches = await create_batches(api, 2)
        async with webhook_tracker(api, reconcile_interval=0.5) as tracker:
            await serve(tracker, emu)
            await tracker.add_jobs(jobs)
            await tracker.add_batches(batches)
            await first_statuses(tracker, 8)
            emu.advance(FOREVER)
            rest = await the_rest(tracker)
            sent = emu.stats.webhooks
            await until(lambda: sent.delivered + sent.dropped >= 8, "every delivery settled")
        assert sorted([*jobs, *batches]) == sorted(got.id for got in rest if got.terminal)
        assert len(rest) == len({got.update_id for got in rest}) == 8
        assert 0 < sent.dropped < 8
        assert tracker.stats.reconciled >= sent.dropped
        assert tracker.stats.webhooks == sent.delivered


# --- duplicates, strangers and forgeries ----------------------------------------------------------


@pytest.mark.asyncio
async def test_duplicated_webhooks_make_no_duplicate_update() -> None:
    """Every delivery sent twice with one ``webhook-id`` (the emulator's fault): both answered
    200, one event taken, one retrieve, one update per object."""
    async with (
        Emulator(speed=0, faults=Faults(webhook_duplicate_rate=1.0)) as emu,
        AsyncClient(base_url=emu.url, api_key="k") as api,
    ):
        jobs = await create_jobs(api, 3)
        batches = await create_batches(api, 1)
        async with webhook_tracker(api) as tracker:
            await serve(tracker, emu)
            await tracker.add_jobs(jobs)
            await tracker.add_batches(batches)
            await first_statuses(tracker, 4)
            emu.reset_stats()
            emu.advance(FOREVER)
            rest = await the_rest(tracker)
            await until(lambda: emu.stats.webhooks.delivered >= 8, "both copies answered")
        assert sorted([*jobs, *batches]) == sorted(got.id for got in rest)
        assert 8 == emu.stats.webhooks.attempts
        assert 4 == emu.stats.total == tracker.stats.webhooks
        assert 0 == tracker.stats.reconciled


@pytest.mark.asyncio
async def test_the_same_end_told_twice_under_two_webhook_ids_is_one_update() -> None:
    """Two events for one job's end (a receiver's dedupe cannot tell them apart): one update;
    the second costs no request, since the job is terminal already."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        (job,) = await create_jobs(api, 1)
        async with webhook_tracker(api) as tracker:
            server = await tracker.serve_webhooks(port=0)
            await tracker.add_jobs([job])
            await first_statuses(tracker, 1)
            emu.advance(FOREVER)
            emu.reset_stats()
            assert 200 == await post_event(server.url, job, webhook_id="wh_a")
            (last,) = await the_rest(tracker)
            assert 200 == await post_event(server.url, job, webhook_id="wh_b")
            assert 200 == await post_event(server.url, job, webhook_id="wh_a")  # deduplicated
            await asyncio.sleep(0.1)
            assert [] == await the_rest(tracker)
        assert ("succeeded", True) == (last.status, last.terminal)
        assert 1 == emu.stats.total
        assert 2 == tracker.stats.webhooks


@pytest.mark.asyncio
async def test_an_untracked_id_and_a_bad_signature_change_nothing() -> None:
    """A verified event for an id not tracked is answered 200 and ignored; a delivery signed
    with another secret is 400. Neither sends a request or writes a hint."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        (job,) = await create_jobs(api, 1)
        store = MemoryStore()
        async with webhook_tracker(api, store=store) as tracker:
            server = await tracker.serve_webhooks(port=0)
            await tracker.add_jobs([job])
            await first_statuses(tracker, 1)
            emu.advance(FOREVER)
            emu.reset_stats()
            assert 200 == await post_event(server.url, "ftjob-stranger", webhook_id="wh_s")
            assert 200 == await post_event(
                server.url, "batch_stranger", kind="batch.completed", webhook_id="wh_b"
            )
            assert 400 == await post_event(server.url, job, secret=OTHER_SECRET)
            await asyncio.sleep(0.1)
            (stored,) = await store.objects()
            status = await tracker.status()
        assert 0 == emu.stats.total
        assert (None, False) == (stored.hinted_at, stored.terminal)
        assert [(job, "validating_files")] == [(o.id, o.status) for o in status]
        assert (0, 2) == (tracker.stats.webhooks, tracker.stats.webhooks_ignored)


# --- serving --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_serve_webhooks_binds_a_free_port_and_stops_with_the_tracker() -> None:
    """Port 0 gives a free port, told by the result; both ``/webhooks`` and ``/webhooks/`` are
    answered; leaving the tracker closes the port."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        async with webhook_tracker(api) as tracker:
            server = await tracker.serve_webhooks("127.0.0.1", 0)
            root = await tracker.serve_webhooks(port=0, path="/")
            assert server.port > 0
            assert f"http://127.0.0.1:{server.port}/webhooks" == server.url
            assert 200 == await post_event(server.url, "ftjob-x", webhook_id="wh_1")
            assert 200 == await post_event(server.url + "/", "ftjob-x", webhook_id="wh_2")
            assert 200 == await post_event(root.url, "ftjob-x", webhook_id="wh_3")
            assert 3 == tracker.stats.webhooks_ignored
            assert "serving" in repr(server)
        assert server.closed
        assert root.closed
        with pytest.raises(aiohttp.ClientConnectionError):
            await post_event(server.url, "ftjob-x", webhook_id="wh_4")


@pytest.mark.asyncio
async def test_webhooks_need_a_secret_and_an_open_tracker() -> None:
    """Without ``webhook_secret`` the receiver is refused with an error naming it; serving is
    refused outside ``async with`` and for a bad port or path."""
    async with AsyncClient(base_url="http://127.0.0.1:9/v1", api_key="k") as api:
        plain = Tracker(api, store=MemoryStore())
        with pytest.raises(InvalidParameterError, match="webhook_secret=") as caught:
            plain.webhook_receiver  # noqa: B018 - the property raises
        assert "webhook_secret" == caught.value.param
        async with plain:
            with pytest.raises(InvalidParameterError, match="webhook_secret="):
                await plain.serve_webhooks(port=0)
        tracker = webhook_tracker(api)
        assert tracker.webhook_receiver is tracker.webhook_receiver
        with pytest.raises(FinetuneError, match="async with"):
            await tracker.serve_webhooks(port=0)
        async with tracker:
            with pytest.raises(InvalidParameterError, match="port"):
                await tracker.serve_webhooks(port=70_000)
            with pytest.raises(InvalidParameterError, match="path"):
                await tracker.serve_webhooks(port=0, path="webhooks")
        for bad in (0, -1.0, "soon"):
            with pytest.raises(InvalidParameterError, match="recheck_delay"):
                Tracker(api, store=MemoryStore(), recheck_delay=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="webhook_secret") as caught:
            Tracker(api, store=MemoryStore(), webhook_secret="not-a-secret")
        assert "webhook_secret" == caught.value.param


@pytest.mark.asyncio
async def test_a_delivery_to_a_closed_tracker_is_500_so_the_sender_retries() -> None:
    """A receiver mounted elsewhere outlives its tracker: a delivery then is answered 500 (the
    sender retries it), not 200 for an event that was never stored."""
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        tracker = webhook_tracker(api)
        receiver = tracker.webhook_receiver
        async with tracker:
            pass
        body = event_body("batch_1", "batch.completed", "wh_late")
        headers = sign(body, secret=SECRET, webhook_id="wh_late", timestamp=int(time.time()))
        status, _ = await receiver.deliver(body, headers)
        assert 500 == status


@pytest.mark.asyncio
async def test_a_webhook_for_an_id_another_process_added_is_followed_at_once(
    tmp_path: Path,
) -> None:
    """An id added to the SQLite file by another process (``track add``) after the tracker's
    last round: its webhook is followed by a retrieve at once, not at the next reconcile."""
    path = tmp_path / "t.db"
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as api:
        (job,) = await create_jobs(api, 1)
        async with webhook_tracker(api, store=SQLiteStore(path)) as tracker:
            await serve(tracker, emu)
            await asyncio.sleep(0.05)  # the first (empty) round is over
            other = SQLiteStore(path)
            await other.open()
            await other.add([("job", job)], time.time())
            await other.close()
            emu.reset_stats()
            emu.advance(FOREVER)
            updates = tracker.updates(follow=True)
            async with asyncio.timeout(BOUND):
                got = await anext(updates)
            await updates.aclose()
        assert (job, "succeeded", True) == (got.id, got.status, got.terminal)
        assert {JOB_ROUTE: 1} == routes(emu)
        assert (1, 0) == (tracker.stats.webhooks, tracker.stats.reconciled)
