"""The blocking ``Client``'s life: closed during calls, or dropped unclosed to the collector.

Sync tests live in a module of their own (docs/architecture.md rule 9); the emulator runs on its own
thread (rule 5). Threads are compared before and after, with bounded waits: a thread that does
not end fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from finetune_async import Client, FinetuneError
from finetune_async.emulator import Emulator
from tests.test_sync_pagination import threaded_server

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MODEL = "gpt-4o-mini-2024-07-18"
#: Bound of every wait in this module, in seconds.
BOUND = 30.0


def new_threads(before: set[threading.Thread]) -> list[str]:
    """The names of the live threads that were not in ``before``."""
    return sorted(t.name for t in set(threading.enumerate()) - before)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``BOUND`` seconds."""
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {BOUND} s for {what}")
        time.sleep(0.01)


def resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The messages of the ResourceWarnings among ``caught``."""
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """An emulator on its own thread."""
    with Emulator(speed=0, seed=3) as running:
        yield running


# --- close() while calls are in flight ------------------------------------------------------------


def test_close_during_calls_raises_finetune_error() -> None:
    """Calls in flight when ``close()`` runs each raise FinetuneError saying the client closed."""
    released = threading.Event()

    async def held(request: web.Request) -> web.Response:
        # Answered only when the test is over: the calls are surely in flight at close().
        while not released.is_set():
            await asyncio.sleep(0.01)
        return web.json_response({"id": MODEL, "object": "model", "created": 0, "owned_by": "x"})

    outcomes: list[object] = []
    lock = threading.Lock()
    with threaded_server(f"/models/{MODEL}", held) as server:
        client = Client(base_url=server.url, api_key="test", max_retries=0)

        def call() -> None:
            try:
                result: object = client.models.retrieve(MODEL)
            except BaseException as exc:  # the test looks at whatever came out
                result = exc
            with lock:
                outcomes.append(result)

        callers = [threading.Thread(target=call, name=f"caller-{i}") for i in range(3)]
        try:
            for caller in callers:
                caller.start()
            wait_until(lambda: len(server.requests) >= 3, "3 requests in flight")
            client.close()
            for caller in callers:
                caller.join(BOUND)
        finally:
            released.set()
        assert [] == [c.name for c in callers if c.is_alive()]
    assert 3 == len(outcomes)
    for outcome in outcomes:
        assert type(outcome) is FinetuneError, repr(outcome)
        assert "closed during the call" in str(outcome)
    with pytest.raises(FinetuneError, match="closed"):
        client.models.retrieve(MODEL)


# --- a client dropped unclosed --------------------------------------------------------------------


def test_dropped_clients_warn_and_their_threads_end(emu: Emulator) -> None:
    """5 used clients dropped unclosed: 5 ResourceWarnings, and their 5 threads end."""
    before = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clients = [Client(base_url=emu.url, api_key="test") for _ in range(5)]
        for client in clients:
            assert MODEL == client.models.retrieve(MODEL).id
        assert 5 == len(new_threads(before))
        del clients, client
        gc.collect()
    messages = resource_warnings(caught)
    assert 5 == len(messages), messages
    assert all("unclosed Client" in m and emu.url in m for m in messages)
    wait_until(lambda: not new_threads(before), "the dropped clients' threads to end")


def test_a_client_without_a_name_finishes_its_calls(emu: Emulator) -> None:
    """``Client(...).models.retrieve(...)`` and a list walked from ``Client(...)`` complete."""
    before = set(threading.enumerate())
    with Client(base_url=emu.url, api_key="test") as setup:
        for _ in range(3):
            setup.files.create(file=b"{}\n", purpose="batch")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert MODEL == Client(base_url=emu.url, api_key="test").models.retrieve(MODEL).id
        # The wrapper is gone at once; the list holds the portal until it is walked and dropped.
        files = Client(base_url=emu.url, api_key="test").files.list(purpose="batch", limit=1)
        assert len([f.id for f in files]) >= 3
        del files
        gc.collect()
    assert 2 == len(resource_warnings(caught))
    wait_until(lambda: not new_threads(before), "the threads to end")


def test_a_derived_client_keeps_its_parents_portal(emu: Emulator) -> None:
    """A ``with_options`` client outliving its parent's wrapper works, and ends the portal last."""
    before = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        child = Client(base_url=emu.url, api_key="test").with_options(max_retries=0)
        gc.collect()
        assert MODEL == child.models.retrieve(MODEL).id
        assert MODEL == child.models.retrieve(MODEL).id
        assert [] == resource_warnings(caught)
        assert 1 == len(new_threads(before))
        del child
        gc.collect()
    assert 1 == len(resource_warnings(caught))
    wait_until(lambda: not new_threads(before), "the shared portal's thread to end")


def test_dropping_a_derived_client_leaves_the_parent_running(emu: Emulator) -> None:
    """Only the owner of the portal ends it: a derived client dropped unclosed changes nothing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Client(base_url=emu.url, api_key="test") as parent:
            child = parent.with_options(max_retries=0)
            assert MODEL == child.models.retrieve(MODEL).id
            del child
            gc.collect()
            assert MODEL == parent.models.retrieve(MODEL).id
    assert [] == resource_warnings(caught)


def test_closed_and_unused_clients_are_collected_silently(emu: Emulator) -> None:
    """No warning for a client never used, nor for one closed before it was dropped."""
    before = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unused = Client(base_url=emu.url, api_key="test")
        closed = Client(base_url=emu.url, api_key="test")
        closed.models.retrieve(MODEL)
        closed.close()
        del unused, closed
        gc.collect()
    assert [] == resource_warnings(caught)
    assert [] == new_threads(before)


def test_open_client_at_exit_is_closed_without_a_warning(emu: Emulator) -> None:
    """A client still referenced at exit is closed by the exit hook; -W error shows no warning."""
    script = f"""
        from finetune_async import Client

        client = Client(base_url={emu.url!r}, api_key="test")
        derived = client.with_options(max_retries=0)
        print(derived.models.retrieve("{MODEL}").id)
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert MODEL == done.stdout.strip()
    # A warning raised as an error in a finalizer is printed as "Exception ignored in ...".
    for sign in ("Warning", "Exception ignored", "Traceback", "unclosed"):
        assert sign not in done.stderr, done.stderr


def test_dropped_client_thread_ends_when_warnings_are_errors(emu: Emulator) -> None:
    """Under ``-W error`` the warning raises in the finalizer; the thread still ends."""
    script = f"""
        import threading, time
        from finetune_async import Client

        client = Client(base_url={emu.url!r}, api_key="test")
        client.models.retrieve("{MODEL}")
        del client
        deadline = time.monotonic() + {BOUND}
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        print(threading.active_count())
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=2 * BOUND,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert "1" == done.stdout.strip(), done.stderr
    assert "ResourceWarning: unclosed Client" in done.stderr
