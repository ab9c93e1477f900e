"""A server whose pages point back at a cursor already sent ends the walk with a clear error.

``has_more: true`` with the same cursor again, or a cycle A, B, A, once made every list walk ask
for the same pages forever (41,225 requests in 10 s, nothing yielded). The servers here give up
after ``GIVE_UP`` requests (they answer ``has_more: false`` from then on), so a walk that does
not notice the loop ends too, with the wrong number of requests instead of a hung test.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from aiohttp import web

from finetune_async import APIResponseValidationError, AsyncClient
from tests.conftest import NO_BACKOFF, LoopbackServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Mapping, Sequence

    from finetune_async.types import Page

T = TypeVar("T")

JOBS_PATH = "/fine_tuning/jobs"
EVENTS_PATH = "/fine_tuning/jobs/ftjob-abc/events"
#: Requests after which the looping servers end their list, so an unguarded walk stops too.
GIVE_UP = 50
TIMEOUT = 10.0


def job(job_id: str) -> dict[str, Any]:
    """A minimal fine-tuning job record."""
    return {
        "id": job_id,
        "object": "fine_tuning.job",
        "status": "succeeded",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1_700_000_000,
    }


def looping_server(pages: Mapping[str | None, Sequence[str]], *, last_id: bool = False) -> Any:
    """A handler answering ``after`` with the jobs ``pages[after]``, always ``has_more: true``.

    Past ``GIVE_UP`` requests it answers ``has_more: false``. With ``last_id`` the cursor is sent
    as the page's ``last_id`` (the checkpoints shape) rather than read from the last item.
    """
    served = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        ids = pages[request.query.get("after")]
        body: dict[str, Any] = {
            "object": "list",
            "data": [job(i) for i in ids],
            "has_more": served < GIVE_UP,
        }
        if last_id:
            body["last_id"] = ids[-1]
        return web.json_response(body)

    return handler


async def serve(server: LoopbackServer, path: str, handler: Any) -> AsyncClient:
    """Route ``GET path`` to ``handler``, start the server, return a client on it (not entered)."""
    server.route("GET", path, handler)
    await server.start()
    return AsyncClient(api_key="k", base_url=server.url, backoff=NO_BACKOFF)


async def drain(iterable: AsyncIterable[T], into: list[T]) -> None:
    """Append every item of ``iterable`` to ``into``, within ``TIMEOUT`` seconds."""

    async def walk() -> None:
        # One at a time, not extend(): the items yielded before an error must be kept.
        async for item in iterable:
            into.append(item)  # noqa: PERF401

    await asyncio.wait_for(walk(), TIMEOUT)


def afters(server: LoopbackServer) -> list[str | None]:
    """The ``after`` cursor of each request the server saw."""
    return [request.query.get("after") for request in server.requests]


@pytest.mark.asyncio
async def test_same_cursor_again_ends_the_list_with_an_error(loopback: LoopbackServer) -> None:
    """has_more with the same cursor again: the first page's items, then an error naming it."""
    handler = looping_server({None: ["ftjob-2", "ftjob-1"], "ftjob-1": ["ftjob-2", "ftjob-1"]})
    got: list[Any] = []
    async with await serve(loopback, JOBS_PATH, handler) as client:
        with pytest.raises(APIResponseValidationError, match="'ftjob-1'") as caught:
            await drain(client.fine_tuning.jobs.list(limit=2), got)

    assert ["ftjob-2", "ftjob-1"] == [j.id for j in got]
    assert [None, "ftjob-1"] == afters(loopback)
    assert 200 == caught.value.status_code
    assert "already sent" in str(caught.value)


@pytest.mark.asyncio
async def test_a_b_a_cycle_of_pages_ends_with_an_error(loopback: LoopbackServer) -> None:
    """A cycle A, B, A through ``pages()``: two pages, then an error naming A; three requests."""
    handler = looping_server(
        {None: ["ftjob-9", "ftjob-A"], "ftjob-A": ["ftjob-8", "ftjob-B"], "ftjob-B": ["ftjob-A"]}
    )
    pages: list[Page[Any]] = []
    async with await serve(loopback, JOBS_PATH, handler) as client:
        with pytest.raises(APIResponseValidationError, match="'ftjob-A'"):
            await drain(client.fine_tuning.jobs.list(limit=2).pages(), pages)

    assert [["ftjob-9", "ftjob-A"], ["ftjob-8", "ftjob-B"]] == [
        [j.id for j in page.data] for page in pages
    ]
    assert [None, "ftjob-A", "ftjob-B"] == afters(loopback)


@pytest.mark.asyncio
async def test_page_pointing_back_at_the_starting_cursor(loopback: LoopbackServer) -> None:
    """A walk started ``after=X`` whose page points at X again stops after that one request."""
    handler = looping_server({"ftjob-5": ["ftjob-4", "ftjob-5"]})
    got: list[Any] = []
    async with await serve(loopback, JOBS_PATH, handler) as client:
        with pytest.raises(APIResponseValidationError, match="'ftjob-5'"):
            await drain(client.fine_tuning.jobs.list(limit=2, after="ftjob-5"), got)

    assert [] == got
    assert ["ftjob-5"] == afters(loopback)


@pytest.mark.asyncio
async def test_repeated_last_id_ends_the_walk(loopback: LoopbackServer) -> None:
    """The cursor a page names in ``last_id`` is checked the same way as the last item's id."""
    handler = looping_server({None: ["ftjob-3"], "ftjob-3": ["ftjob-3"]}, last_id=True)
    got: list[Any] = []
    async with await serve(loopback, JOBS_PATH, handler) as client:
        with pytest.raises(APIResponseValidationError, match="'ftjob-3'"):
            await drain(client.fine_tuning.jobs.list(limit=1), got)

    assert ["ftjob-3"] == [j.id for j in got]
    assert [None, "ftjob-3"] == afters(loopback)


@pytest.mark.asyncio
async def test_moving_cursors_still_walk_to_the_end(loopback: LoopbackServer) -> None:
    """Distinct cursors are followed as before: the check never stops a list that moves on."""
    served = [f"ftjob-{i}" for i in range(30, 0, -1)]

    async def handler(request: web.Request) -> web.Response:
        after = request.query.get("after")
        start = 0 if after is None else served.index(after) + 1
        ids = served[start : start + 3]
        return web.json_response(
            {"object": "list", "data": [job(i) for i in ids], "has_more": start + 3 < len(served)}
        )

    got: list[Any] = []
    async with await serve(loopback, JOBS_PATH, handler) as client:
        await drain(client.fine_tuning.jobs.list(limit=3), got)

    assert served == [j.id for j in got]
    assert 10 == len(loopback.requests)
