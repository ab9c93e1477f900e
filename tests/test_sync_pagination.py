"""The blocking ``Pager``: one portal crossing per page, and the same loop guard as async lists.

Sync tests live in a module of their own (docs/architecture.md rule 9); every server runs on a
thread and loop of its own, never on the caller's (rule 5).
"""

from __future__ import annotations

import asyncio
import threading
import types
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from finetune_async import APIResponseValidationError, Client
from finetune_async.emulator import Emulator
from tests.conftest import LoopbackServer
from tests.test_pagination_loops import GIVE_UP, JOBS_PATH, looping_server

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

#: Bound of every wait in this module, in seconds.
BOUND = 30.0


@contextmanager
def threaded_server(path: str, handler: Any) -> Iterator[LoopbackServer]:
    """A loopback server serving ``GET path`` from a loop on a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="loopback-server", daemon=True)
    thread.start()
    server = LoopbackServer()
    server.route("GET", path, handler)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(BOUND)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(BOUND)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(BOUND)
        loop.close()


def afters(server: LoopbackServer) -> list[str | None]:
    """The ``after`` cursor of each request the server saw."""
    return [request.query.get("after") for request in server.requests]


@contextmanager
def counted_crossings(client: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record each call the client's namespaces make through its portal (the function's name)."""
    runner = client._runner
    real_call = runner.call
    crossings: list[str] = []

    def call(func: Callable[[], Awaitable[Any]]) -> Any:
        crossings.append(getattr(func, "__name__", repr(func)))
        return real_call(func)

    monkeypatch.setattr(runner, "call", call)
    yield crossings


# --- a looping server ends the blocking walk too --------------------------------------------------


def test_sync_list_with_a_repeated_cursor_raises() -> None:
    """A blocking list whose server repeats its cursor yields the first page, then raises."""
    handler = looping_server({None: ["ftjob-2", "ftjob-1"], "ftjob-1": ["ftjob-2", "ftjob-1"]})
    got: list[str] = []
    with (
        threaded_server(JOBS_PATH, handler) as server,
        Client(api_key="k", base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(APIResponseValidationError, match="'ftjob-1'"):
            got.extend(j.id for j in client.fine_tuning.jobs.list(limit=2))
        assert ["ftjob-2", "ftjob-1"] == got
        assert [None, "ftjob-1"] == afters(server)
        assert GIVE_UP > len(server.requests)


def test_sync_pages_with_a_cycle_raise() -> None:
    """``pages()`` of a blocking list caught in a cycle A, B, A raises after two pages."""
    handler = looping_server(
        {None: ["ftjob-9", "ftjob-A"], "ftjob-A": ["ftjob-8", "ftjob-B"], "ftjob-B": ["ftjob-A"]}
    )
    pages: list[list[str]] = []
    with (
        threaded_server(JOBS_PATH, handler) as server,
        Client(api_key="k", base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(APIResponseValidationError, match="'ftjob-A'"):
            pages.extend(
                [j.id for j in page.data] for page in client.fine_tuning.jobs.list().pages()
            )
        assert [["ftjob-9", "ftjob-A"], ["ftjob-8", "ftjob-B"]] == pages
        assert [None, "ftjob-A", "ftjob-B"] == afters(server)


# --- one portal crossing per page -----------------------------------------------------------------


@pytest.fixture
def twelve_files() -> Iterator[tuple[Emulator, Client, set[str]]]:
    """An emulator holding 12 batch files, a client on it, and the files' ids."""
    with (
        Emulator(speed=0, seed=5) as emu,
        Client(api_key="test", base_url=emu.url, max_retries=0) as client,
    ):
        ids = {client.files.create(file=b"{}\n", purpose="batch").id for _ in range(12)}
        emu.reset_stats()
        yield emu, client, ids


def test_sync_walk_crosses_the_portal_once_per_page(
    twelve_files: tuple[Emulator, Client, set[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 files at limit=5: 3 pages; 5 crossings (3 pages, the end, the close), not one a file."""
    emu, client, ids = twelve_files
    with counted_crossings(client, monkeypatch) as crossings:
        walked = [f.id for f in client.files.list(purpose="batch", limit=5)]
    assert ids == set(walked)
    assert 12 == len(walked)
    assert 3 == emu.stats.total
    assert ["__anext__"] * 4 + ["aclose"] == crossings


def test_sync_walk_break_closes_the_pages_on_the_portal(
    twelve_files: tuple[Emulator, Client, set[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A break after the first file: one page fetched, then the page generator closed at once."""
    emu, client, _ = twelve_files
    with counted_crossings(client, monkeypatch) as crossings:
        for _file in client.files.list(purpose="batch", limit=5):
            break
    assert ["__anext__", "aclose"] == crossings
    assert 1 == emu.stats.total
    # Items of a page already across are local: the rest of the first page costs no crossing.
    with counted_crossings(client, monkeypatch) as crossings:
        files = iter(client.files.list(purpose="batch", limit=5))
        assert isinstance(files, types.GeneratorType)
        first_five = [next(files).id for _ in range(5)]
        files.close()
    assert 5 == len(set(first_five))
    assert ["__anext__", "aclose"] == crossings
    assert 2 == emu.stats.total
