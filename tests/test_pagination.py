"""Lists paginate by ``after``/``limit`` against a real loopback server (docs/api.md, lists)."""

from __future__ import annotations

import asyncio
import gc
import sys
import types
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing, contextmanager
from typing import Any, TypeVar

import pytest
from aiohttp import web

from finetune_async import AsyncClient, NotFoundError
from finetune_async.types import Page
from tests.conftest import NO_BACKOFF, LoopbackServer

T = TypeVar("T")

JOBS_PATH = "/fine_tuning/jobs"
JOB_ID = "ftjob-abc"
EVENTS_PATH = f"/fine_tuning/jobs/{JOB_ID}/events"
CHECKPOINTS_PATH = f"/fine_tuning/jobs/{JOB_ID}/checkpoints"
MODEL_CHECKPOINT = "ft-model-ckpt-10"
PERMISSIONS_PATH = f"/fine_tuning/checkpoints/{MODEL_CHECKPOINT}/permissions"
TIMEOUT = 10.0

Item = Mapping[str, Any]
Handler = Callable[[web.Request], Awaitable[web.Response]]


# --- fake data --------------------------------------------------------------------------------


def make_jobs(n: int, *, team: str | None = None) -> list[Item]:
    """Return ``n`` jobs ``ftjob-n`` .. ``ftjob-1``, newest first as the API lists them."""
    return [
        {
            "id": f"ftjob-{i}",
            "object": "fine_tuning.job",
            "status": "succeeded",
            "model": "gpt-4o-mini-2024-07-18",
            "created_at": 1_700_000_000 + i,
            "metadata": {"team": team or ("a" if i % 2 else "b")},
        }
        for i in range(n, 0, -1)
    ]


def make_events(n: int) -> list[Item]:
    """Return ``n`` events ``ftevent-n`` .. ``ftevent-1``, newest first."""
    return [
        {
            "id": f"ftevent-{i}",
            "object": "fine_tuning.job.event",
            "created_at": 1_700_000_000 + i,
            "level": "info",
            "message": f"Step {i}",
            "type": "message",
        }
        for i in range(n, 0, -1)
    ]


def make_checkpoints(n: int) -> list[Item]:
    """Return ``n`` checkpoints ``ftckpt-n`` .. ``ftckpt-1``, newest first."""
    return [
        {
            "id": f"ftckpt-{i}",
            "object": "fine_tuning.job.checkpoint",
            "created_at": 1_700_000_000 + i,
            "fine_tuning_job_id": JOB_ID,
            "step_number": 10 * i,
        }
        for i in range(n, 0, -1)
    ]


def make_permissions(n: int) -> list[Item]:
    """Return ``n`` permissions ``cp-n`` .. ``cp-1``, newest first, alternating projects p / q."""
    return [
        {
            "id": f"cp-{i}",
            "object": "checkpoint.permission",
            "created_at": 1_700_000_000 + i,
            "project_id": "p" if i % 2 else "q",
        }
        for i in range(n, 0, -1)
    ]


def ids(items: Sequence[Item]) -> list[str]:
    """Return the ids of raw items."""
    return [str(item["id"]) for item in items]


# --- the fake list endpoint -------------------------------------------------------------------


def list_handler(
    items: Sequence[Item],
    *,
    boundary_ids: bool = False,
    opaque_cursor: bool = False,
    send_has_more: bool = True,
    not_found_on_call: int | None = None,
) -> Handler:
    """Serve ``items`` by ``after``/``limit`` as the real API does.

    Args:
        items: Every item, newest first (``order=ascending`` reverses them).
        boundary_ids: Send ``first_id`` / ``last_id`` (checkpoints and permissions do).
        opaque_cursor: Send ``last_id`` as a server cursor ``cursor-<offset>`` unlike any item id,
            and accept only such cursors as ``after``.
        send_has_more: Leave ``has_more`` out of the answer when False.
        not_found_on_call: Answer this call (counting from 1) with a 404.
    """
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == not_found_on_call:
            error = {"message": "no such page", "type": "invalid_request_error", "code": None}
            return web.json_response({"error": error}, status=404)
        query = request.query
        selected = list(items)
        if query.get("order") == "ascending":
            selected.reverse()
        if "project_id" in query:
            selected = [i for i in selected if i.get("project_id") == query["project_id"]]
        for key, value in query.items():
            if key.startswith("metadata[") and key.endswith("]"):
                name = key[len("metadata[") : -1]
                selected = [i for i in selected if i.get("metadata", {}).get(name) == value]
        start = 0
        after = query.get("after")
        if after is not None:
            if opaque_cursor:
                if not after.startswith("cursor-"):
                    error = {"message": f"bad cursor {after}", "type": "invalid_request_error"}
                    return web.json_response({"error": error}, status=400)
                start = int(after.removeprefix("cursor-"))
            else:
                start = [i["id"] for i in selected].index(after) + 1
        limit = int(query.get("limit", "20"))
        end = start + limit
        page = selected[start:end]
        body: dict[str, Any] = {"object": "list", "data": page}
        if send_has_more:
            body["has_more"] = end < len(selected)
        if boundary_ids:
            body["first_id"] = page[0]["id"] if page else None
            last = f"cursor-{end}" if opaque_cursor else page[-1]["id"] if page else None
            body["last_id"] = last
        return web.json_response(body)

    return handler


def queries(server: LoopbackServer) -> list[dict[str, str]]:
    """Return the query of every request the server saw, in order."""
    return [dict(request.query) for request in server.requests]


def paths(server: LoopbackServer) -> list[str]:
    """Return the path of every request the server saw, in order."""
    return [request.path for request in server.requests]


async def collect(iterable: AsyncIterable[T]) -> list[T]:
    """Drain an async iterable, giving up after ``TIMEOUT`` seconds (a loop must not hang)."""

    async def drain() -> list[T]:
        return [item async for item in iterable]

    return await asyncio.wait_for(drain(), TIMEOUT)


async def serve(server: LoopbackServer, path: str, handler: Handler) -> AsyncClient:
    """Route ``GET path`` to ``handler``, start the server, return a client on it (not entered)."""
    server.route("GET", path, handler)
    await server.start()
    return AsyncClient(api_key="k", base_url=server.url, backoff=NO_BACKOFF)


@contextmanager
def collected_unclosed() -> Iterator[list[str]]:
    """Record the ``_pagination.py`` generators that reach the garbage collector still open.

    A generator dropped while suspended is closed later by the loop's finalizer hook, in a task
    of its own; one closed at once (``aclosing``) never reaches that hook.
    """
    firstiter, finalizer = sys.get_asyncgen_hooks()
    unclosed: list[str] = []

    def record(agen: AsyncGenerator[Any, Any]) -> None:
        code = getattr(agen, "ag_code", None)
        if code is not None and code.co_filename.endswith("_pagination.py"):
            unclosed.append(code.co_qualname)
        if finalizer is not None:
            finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=record)
    try:
        yield unclosed
    finally:
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)


def live_pagination_generators() -> list[types.AsyncGeneratorType[Any, Any]]:
    """Return the loop's async generators from ``_pagination.py`` not yet finished or closed."""
    loop = asyncio.get_running_loop()
    generators: Any = getattr(loop, "_asyncgens", ())
    return [
        gen
        for gen in list(generators)
        if gen.ag_frame is not None and gen.ag_code.co_filename.endswith("_pagination.py")
    ]


# --- walking the pages ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_jobs_list_walks_every_page_with_after_cursor(loopback: LoopbackServer) -> None:
    """jobs.list(limit=2) over 7 jobs yields all 7 in order from 4 requests chained by `after`."""
    jobs = make_jobs(7)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        got = await collect(client.fine_tuning.jobs.list(limit=2))

    assert ids(jobs) == [job.id for job in got]
    assert [
        {"limit": "2"},
        {"after": "ftjob-6", "limit": "2"},
        {"after": "ftjob-4", "limit": "2"},
        {"after": "ftjob-2", "limit": "2"},
    ] == queries(loopback)
    assert [f"/v1{JOBS_PATH}"] * 4 == paths(loopback)
    assert ["GET"] * 4 == [request.method for request in loopback.requests]


@pytest.mark.asyncio
async def test_pages_yields_page_objects_ending_with_has_more_false(
    loopback: LoopbackServer,
) -> None:
    """pages() yields Page records with has_more and data; only the last has has_more False."""
    jobs = make_jobs(7)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        pages = await collect(client.fine_tuning.jobs.list(limit=2).pages())

    assert all(isinstance(page, Page) for page in pages)
    assert [True, True, True, False] == [page.has_more for page in pages]
    assert [ids(jobs[0:2]), ids(jobs[2:4]), ids(jobs[4:6]), ids(jobs[6:7])] == [
        [job.id for job in page.data] for page in pages
    ]
    assert ["list"] * 4 == [page.object for page in pages]
    assert 4 == len(loopback.requests)


@pytest.mark.asyncio
async def test_stops_when_has_more_is_absent(loopback: LoopbackServer) -> None:
    """An answer without has_more is the last page, though the server had more to serve."""
    jobs = make_jobs(7)
    handler = list_handler(jobs, send_has_more=False)
    async with await serve(loopback, JOBS_PATH, handler) as client:
        got = await collect(client.fine_tuning.jobs.list(limit=2))
        pages = await collect(client.fine_tuning.jobs.list(limit=2).pages())

    assert ids(jobs[:2]) == [job.id for job in got]
    assert [None] == [page.has_more for page in pages]
    assert [{"limit": "2"}, {"limit": "2"}] == queries(loopback)


@pytest.mark.asyncio
async def test_stops_on_empty_data_even_if_has_more_is_true(loopback: LoopbackServer) -> None:
    """An empty page ends the list even when it claims has_more: true (no endless loop)."""

    async def empty_forever(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [], "has_more": True})

    async with await serve(loopback, JOBS_PATH, empty_forever) as client:
        got = await collect(client.fine_tuning.jobs.list(limit=2))

    assert [] == got
    assert [{"limit": "2"}] == queries(loopback)


@pytest.mark.asyncio
async def test_empty_page_after_full_pages_ends_the_list(loopback: LoopbackServer) -> None:
    """A server that says has_more on its last full page and then sends nothing stops there."""
    jobs = make_jobs(4)
    answers = [
        {"object": "list", "data": jobs[:2], "has_more": True},
        {"object": "list", "data": jobs[2:], "has_more": True},
        {"object": "list", "data": [], "has_more": True},
        {"object": "list", "data": jobs, "has_more": True},
    ]

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(answers[len(loopback.requests) - 1])

    async with await serve(loopback, JOBS_PATH, handler) as client:
        got = await collect(client.fine_tuning.jobs.list(limit=2))

    assert ids(jobs) == [job.id for job in got]
    assert 3 == len(loopback.requests)


@pytest.mark.asyncio
async def test_last_id_is_preferred_over_last_item_id(loopback: LoopbackServer) -> None:
    """The answer's last_id is the next `after`, even when it differs from the last item's id."""
    checkpoints = make_checkpoints(5)
    handler = list_handler(checkpoints, boundary_ids=True, opaque_cursor=True)
    async with await serve(loopback, CHECKPOINTS_PATH, handler) as client:
        got = await collect(client.fine_tuning.jobs.checkpoints.list(JOB_ID, limit=2))

    assert ids(checkpoints) == [checkpoint.id for checkpoint in got]
    assert [
        {"limit": "2"},
        {"after": "cursor-2", "limit": "2"},
        {"after": "cursor-4", "limit": "2"},
    ] == queries(loopback)


# --- laziness, early exit, restarts -----------------------------------------------------------


@pytest.mark.asyncio
async def test_list_sends_nothing_until_iteration_starts(loopback: LoopbackServer) -> None:
    """Calling jobs.list() or aiter() on it sends no request; the first anext() sends one."""
    jobs = make_jobs(3)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        pager = client.fine_tuning.jobs.list()
        iterator = aiter(pager)
        pages = pager.pages()
        await asyncio.sleep(0.05)
        assert [] == loopback.requests

        async with aclosing(pages):
            first = await asyncio.wait_for(anext(iterator), TIMEOUT)
        assert "ftjob-3" == first.id
        assert [{}] == queries(loopback)


@pytest.mark.asyncio
async def test_break_after_first_item_sends_no_further_request(loopback: LoopbackServer) -> None:
    """Breaking after the first item of a 3-page list: one request, and the generators close."""
    jobs = make_jobs(6)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        pager = client.fine_tuning.jobs.list(limit=2)
        iterator = aiter(pager)
        assert isinstance(iterator, types.AsyncGeneratorType)
        seen: list[str] = []

        async def first_only() -> None:
            async with aclosing(iterator) as items:
                async for job in items:
                    seen.append(job.id)
                    break

        with collected_unclosed() as unclosed:
            await asyncio.wait_for(first_only(), TIMEOUT)
            # At once, not left to the garbage collector's aclose task: the page generator too.
            assert [] == live_pagination_generators()
            gc.collect()
            await asyncio.sleep(0.05)

        assert [] == unclosed

        assert ["ftjob-6"] == seen
        assert [{"limit": "2"}] == queries(loopback)
        assert iterator.ag_frame is None
        assert not iterator.ag_running
        assert [] == live_pagination_generators()
        with pytest.raises(StopAsyncIteration):
            await anext(iterator)
        assert 1 == len(loopback.requests)


@pytest.mark.asyncio
async def test_break_out_of_pages_closes_it(loopback: LoopbackServer) -> None:
    """Breaking out of pages() after the first page closes it with no further request."""
    jobs = make_jobs(6)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        pages = client.fine_tuning.jobs.list(limit=2).pages()
        seen: list[Page[Any]] = []

        async def first_only() -> None:
            async with aclosing(pages) as walk:
                async for page in walk:
                    seen.append(page)
                    break

        with collected_unclosed() as unclosed:
            await asyncio.wait_for(first_only(), TIMEOUT)
            assert [] == live_pagination_generators()
            gc.collect()
            await asyncio.sleep(0.05)

        assert [] == unclosed

        assert [ids(jobs[:2])] == [[job.id for job in page.data] for page in seen]
        assert [{"limit": "2"}] == queries(loopback)
        assert isinstance(pages, types.AsyncGeneratorType)
        assert pages.ag_frame is None
        assert [] == live_pagination_generators()
        with pytest.raises(StopAsyncIteration):
            await anext(pages)


@pytest.mark.asyncio
async def test_aclose_mid_page_leaves_no_pending_task(loopback: LoopbackServer) -> None:
    """Closing a half-read list leaves no task behind and no live page generator."""
    jobs = make_jobs(6)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        # A first full walk opens the keep-alive connection, so the server's own connection task
        # exists before the snapshot below.
        await collect(client.fine_tuning.jobs.list(limit=2))
        await asyncio.sleep(0.05)
        before = {task for task in asyncio.all_tasks() if not task.done()}

        with collected_unclosed() as unclosed:
            iterator = aiter(client.fine_tuning.jobs.list(limit=2))
            first = await asyncio.wait_for(anext(iterator), TIMEOUT)
            assert isinstance(iterator, types.AsyncGeneratorType)
            await asyncio.wait_for(iterator.aclose(), TIMEOUT)
            right_after = {task for task in asyncio.all_tasks() if not task.done()}
            live_right_after = live_pagination_generators()
            gc.collect()
            await asyncio.sleep(0.05)
            after = {task for task in asyncio.all_tasks() if not task.done()}

        assert [] == unclosed

        assert "ftjob-6" == first.id
        assert set() == {repr(task) for task in right_after - before}
        assert [] == live_right_after
        assert before == after
        assert [] == live_pagination_generators()
        assert 4 == len(loopback.requests)


@pytest.mark.asyncio
async def test_iterating_the_same_pager_twice_restarts(loopback: LoopbackServer) -> None:
    """A second iteration of one pager starts again from the first page."""
    jobs = make_jobs(5)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        pager = client.fine_tuning.jobs.list(limit=2)
        first = await collect(pager)
        second = await collect(pager)
        pages = await collect(pager.pages())

    assert ids(jobs) == [job.id for job in first]
    assert ids(jobs) == [job.id for job in second]
    assert [ids(jobs[0:2]), ids(jobs[2:4]), ids(jobs[4:5])] == [
        [job.id for job in page.data] for page in pages
    ]
    walk = [{"limit": "2"}, {"after": "ftjob-4", "limit": "2"}, {"after": "ftjob-2", "limit": "2"}]
    assert walk * 3 == queries(loopback)


@pytest.mark.asyncio
async def test_after_starts_after_that_id(loopback: LoopbackServer) -> None:
    """jobs.list(after="ftjob-3") sends after=ftjob-3 first, and restarts there each time."""
    jobs = make_jobs(7)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        pager = client.fine_tuning.jobs.list(after="ftjob-5", limit=2)
        first = await collect(pager)
        second = await collect(pager)
        loopback.requests.clear()
        rest = await collect(client.fine_tuning.jobs.list(after="ftjob-3"))

    assert ["ftjob-4", "ftjob-3", "ftjob-2", "ftjob-1"] == [job.id for job in first]
    assert [job.id for job in first] == [job.id for job in second]
    assert ["ftjob-2", "ftjob-1"] == [job.id for job in rest]
    assert [{"after": "ftjob-3"}] == queries(loopback)


@pytest.mark.asyncio
async def test_metadata_filter_is_sent_on_every_page(loopback: LoopbackServer) -> None:
    """jobs.list(metadata={"team": "a"}) sends metadata[team]=a with each page request."""
    jobs = make_jobs(10)
    async with await serve(loopback, JOBS_PATH, list_handler(jobs)) as client:
        got = await collect(client.fine_tuning.jobs.list(metadata={"team": "a"}, limit=2))

    assert ["ftjob-9", "ftjob-7", "ftjob-5", "ftjob-3", "ftjob-1"] == [job.id for job in got]
    assert [
        {"limit": "2", "metadata[team]": "a"},
        {"after": "ftjob-7", "limit": "2", "metadata[team]": "a"},
        {"after": "ftjob-3", "limit": "2", "metadata[team]": "a"},
    ] == queries(loopback)


# --- the other lists --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_list_events_paginates_newest_first(loopback: LoopbackServer) -> None:
    """jobs.list_events walks the events newest first, page by page, on the job's events path."""
    events = make_events(5)
    async with await serve(loopback, EVENTS_PATH, list_handler(events)) as client:
        got = await collect(client.fine_tuning.jobs.list_events(JOB_ID, limit=2))

    assert ["ftevent-5", "ftevent-4", "ftevent-3", "ftevent-2", "ftevent-1"] == [
        event.id for event in got
    ]
    assert ["Step 5", "Step 1"] == [got[0].message, got[-1].message]
    assert [
        {"limit": "2"},
        {"after": "ftevent-4", "limit": "2"},
        {"after": "ftevent-2", "limit": "2"},
    ] == queries(loopback)
    assert [f"/v1{EVENTS_PATH}"] * 3 == paths(loopback)


@pytest.mark.asyncio
async def test_checkpoints_list_paginates_with_last_id(loopback: LoopbackServer) -> None:
    """jobs.checkpoints.list walks every page, chaining the answers' last_id."""
    checkpoints = make_checkpoints(5)
    handler = list_handler(checkpoints, boundary_ids=True)
    async with await serve(loopback, CHECKPOINTS_PATH, handler) as client:
        pages = await collect(client.fine_tuning.jobs.checkpoints.list(JOB_ID, limit=2).pages())

    assert [ids(checkpoints[0:2]), ids(checkpoints[2:4]), ids(checkpoints[4:5])] == [
        [checkpoint.id for checkpoint in page.data] for page in pages
    ]
    assert [("ftckpt-5", "ftckpt-4"), ("ftckpt-3", "ftckpt-2"), ("ftckpt-1", "ftckpt-1")] == [
        (page.first_id, page.last_id) for page in pages
    ]
    assert [True, True, False] == [page.has_more for page in pages]
    assert [
        {"limit": "2"},
        {"after": "ftckpt-4", "limit": "2"},
        {"after": "ftckpt-2", "limit": "2"},
    ] == queries(loopback)
    assert [f"/v1{CHECKPOINTS_PATH}"] * 3 == paths(loopback)


@pytest.mark.asyncio
async def test_permissions_list_paginates_with_its_filters(loopback: LoopbackServer) -> None:
    """permissions.list sends project_id and order on every page and follows last_id."""
    permissions = make_permissions(10)
    handler = list_handler(permissions, boundary_ids=True, opaque_cursor=True)
    async with await serve(loopback, PERMISSIONS_PATH, handler) as client:
        pager = client.fine_tuning.checkpoints.permissions.list(
            MODEL_CHECKPOINT, order="ascending", project_id="p", limit=2
        )
        got = await collect(pager)

    assert ["cp-1", "cp-3", "cp-5", "cp-7", "cp-9"] == [permission.id for permission in got]
    assert ["p"] * 5 == [permission.project_id for permission in got]
    common = {"project_id": "p", "limit": "2", "order": "ascending"}
    assert [
        common,
        {**common, "after": "cursor-2"},
        {**common, "after": "cursor-4"},
    ] == queries(loopback)
    assert [f"/v1{PERMISSIONS_PATH}"] * 3 == paths(loopback)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_error_on_second_page_raises_after_first_page_items(
    loopback: LoopbackServer,
) -> None:
    """A 404 on page 2 raises NotFoundError from the loop, after page 1's items were yielded."""
    jobs = make_jobs(6)
    handler = list_handler(jobs, not_found_on_call=2)
    async with await serve(loopback, JOBS_PATH, handler) as client:
        seen: list[str] = []

        async def walk() -> None:
            async for job in client.fine_tuning.jobs.list(limit=2):
                seen.append(job.id)  # noqa: PERF401 - keep what arrived before the error

        with pytest.raises(NotFoundError) as caught:
            await asyncio.wait_for(walk(), TIMEOUT)

    assert ids(jobs[:2]) == seen
    assert 404 == caught.value.status_code
    assert [{"limit": "2"}, {"after": "ftjob-5", "limit": "2"}] == queries(loopback)
    assert [] == live_pagination_generators()


@pytest.mark.asyncio
async def test_error_on_second_page_of_pages(loopback: LoopbackServer) -> None:
    """pages() yields the first page, then raises NotFoundError for the second."""
    jobs = make_jobs(6)
    handler = list_handler(jobs, not_found_on_call=2)
    async with await serve(loopback, JOBS_PATH, handler) as client:
        seen: list[list[str]] = []

        async def walk() -> None:
            async for page in client.fine_tuning.jobs.list(limit=2).pages():
                seen.append([job.id for job in page.data])  # noqa: PERF401 - idem

        with pytest.raises(NotFoundError):
            await asyncio.wait_for(walk(), TIMEOUT)

    assert [ids(jobs[:2])] == seen
    assert 2 == len(loopback.requests)
