"""The blocking ``Client`` against the emulator on its own thread (docs/architecture.md rule 5).

Sync tests live in this module of their own (rule 9: pytest-asyncio strict mode). The emulator's
clock is stopped (``speed=0``) and moved with ``advance``. Threads are compared before and after
a client's life to show that ``close()`` leaves none behind; subprocesses show that a client left
open does not hang interpreter exit and that Ctrl-C interrupts a blocking call.
"""

from __future__ import annotations

import asyncio
import math
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import (
    APIStatusError,
    BadRequestError,
    Client,
    FinetuneError,
    InvalidParameterError,
    NotFoundError,
)
from finetune_async.emulator import Emulator, Faults

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from finetune_async.emulator import RequestRecord
    from finetune_async.types import FineTuningJob

MODEL = "gpt-4o-mini-2024-07-18"
#: A 6-step job: 12 examples, batch 4, 2 epochs.
SMALL_METHOD: dict[str, Any] = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}},
}
#: Enough virtual seconds to end any job of these tests.
FOREVER = 100_000.0
EVENTS_ROUTE = "GET /fine_tuning/jobs/{fine_tuning_job_id}/events"
PORTAL_THREAD_PREFIXES = ("asyncio-portal", "AnyIO")
#: Bound of every thread join and subprocess in this module, in seconds.
BOUND = 30.0


# --- helpers --------------------------------------------------------------------------------------


def chat_jsonl(n: int) -> bytes:
    """A valid supervised training file of ``n`` examples."""
    rows = (
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": str(2 * i)},
            ]
        }
        for i in range(n)
    )
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def batch_jsonl(n: int) -> bytes:
    """A valid batch input file of ``n`` chat requests."""
    rows = (
        {
            "custom_id": f"request-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Hi {i}"}]},
        }
        for i in range(n)
    )
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def portal_threads() -> list[str]:
    """The names of the live threads that look like a blocking portal's."""
    return [t.name for t in threading.enumerate() if t.name.startswith(PORTAL_THREAD_PREFIXES)]


def new_threads(before: set[threading.Thread]) -> list[str]:
    """The names of the live threads that were not in ``before``."""
    return sorted(t.name for t in set(threading.enumerate()) - before)


def lowered(record: RequestRecord) -> dict[str, str]:
    """A recorded request's headers with lower-case names."""
    return {name.lower(): value for name, value in record.headers.items()}


def events_requests(emu: Emulator) -> int:
    """How many event-list requests the emulator saw since its stats were reset."""
    return sum(1 for r in emu.stats.requests if r.route == EVENTS_ROUTE)


def create_finished_job(
    client: Client, emu: Emulator, train_id: str, **extra: Any
) -> FineTuningJob:
    """Create a job, move the clock past its end, and return it finished."""
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=train_id, **extra)
    emu.advance(FOREVER)
    return client.fine_tuning.jobs.retrieve(job.id)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """An emulator on its own thread whose clock moves only by ``advance``."""
    with Emulator(speed=0, seed=1) as running:
        yield running


@pytest.fixture
def client(emu: Emulator) -> Iterator[Client]:
    """A blocking client on the emulator, closed after the test."""
    with Client(base_url=emu.url, api_key="test") as sync_client:
        yield sync_client


@pytest.fixture
def train_path(tmp_path: Path) -> Path:
    """A 12-example training file on disk."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(chat_jsonl(12))
    return path


@pytest.fixture
def train_id(client: Client, train_path: Path) -> str:
    """The id of the uploaded 12-example training file."""
    return client.files.create(file=train_path, purpose="fine-tune").id


@pytest.fixture(scope="module")
def busy_job(emu: Emulator) -> tuple[str, list[str]]:
    """A finished job with more than 50 events, and its event ids in the server's order."""
    with Client(base_url=emu.url, api_key="test") as setup:
        train = setup.files.create(file=("big.jsonl", chat_jsonl(60)), purpose="fine-tune")
        method = {
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 1}},
        }
        job = create_finished_job(setup, emu, train.id, method=method)
        assert "succeeded" == job.status
        event_ids = [e.id for e in setup.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert len(event_ids) > 50
    return job.id, event_ids


# --- the API, end to end --------------------------------------------------------------------------


def test_fine_tuning_life_cycle(
    client: Client, emu: Emulator, train_path: Path, tmp_path: Path
) -> None:
    """Upload, create, follow to success, list events and checkpoints, download the results."""
    uploaded = client.files.create(file=train_path, purpose="fine-tune")
    assert "fine-tune" == uploaded.purpose
    assert "train.jsonl" == uploaded.filename
    assert uploaded.id == client.files.retrieve(uploaded.id).id
    assert uploaded.id in [f.id for f in client.files.list(purpose="fine-tune")]

    jobs = client.fine_tuning.jobs
    job = jobs.create(model=MODEL, training_file=uploaded.id, method=SMALL_METHOD)
    assert "validating_files" == job.status
    for _ in range(20):
        emu.advance(60)
        job = jobs.retrieve(job.id)
        if job.status == "succeeded":
            break
    assert "succeeded" == job.status
    assert job.id in [j.id for j in jobs.list(limit=100)]

    events = iter(jobs.list_events(job.id, limit=4))
    assert isinstance(events, types.GeneratorType)
    assert events is iter(events)
    steps = [int(e.data["step"]) for e in events if e.type == "metrics"]
    assert [6, 5, 4, 3, 2, 1] == steps

    checkpoints = list(jobs.checkpoints.list(job.id))
    assert [6, 3] == [c.step_number for c in checkpoints]
    assert {job.id} == {c.fine_tuning_job_id for c in checkpoints}

    assert job.result_files is not None
    assert 1 == len(job.result_files)
    result_id = job.result_files[0]
    target = tmp_path / "results.csv"
    assert target == client.files.download(result_id, target)
    content = client.files.content(result_id)
    assert content == target.read_bytes()
    assert "step" == content.decode().splitlines()[0].split(",")[0]

    deleted = client.files.delete(uploaded.id)
    assert (uploaded.id, True) == (deleted.id, deleted.deleted)


def test_batches(client: Client) -> None:
    """A batch is created, retrieved, listed and cancelled through the blocking client."""
    uploaded = client.files.create(file=("input.jsonl", batch_jsonl(3)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions")
    assert uploaded.id == batch.input_file_id
    assert batch.id == client.batches.retrieve(batch.id).id
    assert batch.id in [b.id for b in client.batches.list(limit=100)]
    cancelled = client.batches.cancel(batch.id)
    assert batch.id == cancelled.id
    assert cancelled.status in {"cancelling", "cancelled"}


def test_models(client: Client, emu: Emulator, train_id: str) -> None:
    """A base model is retrieved; a fine-tuned model is retrieved, then deleted."""
    assert MODEL == client.models.retrieve(MODEL).id
    job = create_finished_job(client, emu, train_id, method=SMALL_METHOD)
    assert job.fine_tuned_model is not None
    assert job.fine_tuned_model == client.models.retrieve(job.fine_tuned_model).id
    deleted = client.models.delete(job.fine_tuned_model)
    assert (job.fine_tuned_model, True) == (deleted.id, deleted.deleted)
    with pytest.raises(NotFoundError):
        client.models.retrieve(job.fine_tuned_model)


# --- errors reach the caller unchanged ------------------------------------------------------------


def test_unknown_job_is_not_found(client: Client) -> None:
    """An unknown job raises the async client's NotFoundError, with its status code."""
    with pytest.raises(NotFoundError) as caught:
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")
    assert NotFoundError is type(caught.value)
    assert 404 == caught.value.status_code


def test_unknown_training_file_is_bad_request(client: Client) -> None:
    """An unknown training file raises BadRequestError naming the parameter."""
    with pytest.raises(BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=MODEL, training_file="file-doesnotexist")
    assert BadRequestError is type(caught.value)
    assert "training_file" == caught.value.param


def test_bad_limit_raises_at_the_call(client: Client, emu: Emulator) -> None:
    """limit=0 raises InvalidParameterError when the list is made, and nothing is sent."""
    sent = emu.stats.total
    with pytest.raises(InvalidParameterError) as caught:
        client.fine_tuning.jobs.list_events("ftjob-abc", limit=0)
    assert "limit" == caught.value.param
    with pytest.raises(InvalidParameterError):
        client.files.list(limit=0)
    assert sent == emu.stats.total


# --- lists: lazy, one page at a time, closed early ------------------------------------------------


def test_list_is_lazy(client: Client, emu: Emulator, busy_job: tuple[str, list[str]]) -> None:
    """Making a list sends nothing; the first item fetches exactly one page."""
    job_id, event_ids = busy_job
    emu.reset_stats()
    pager = client.fine_tuning.jobs.list_events(job_id, limit=5)
    assert 0 == emu.stats.total
    iterator = iter(pager)
    assert isinstance(iterator, types.GeneratorType)
    assert 0 == emu.stats.total
    assert event_ids[0] == next(iterator).id
    assert 1 == events_requests(emu)
    iterator.close()


def test_early_break_closes_the_generator(
    client: Client, emu: Emulator, busy_job: tuple[str, list[str]]
) -> None:
    """A break after the first item leaves exactly one page request, and no later one."""
    job_id, event_ids = busy_job
    emu.reset_stats()
    seen = []
    for event in client.fine_tuning.jobs.list_events(job_id, limit=5):
        seen.append(event.id)
        break
    assert [event_ids[0]] == seen
    assert 1 == events_requests(emu)
    time.sleep(0.1)
    assert 1 == events_requests(emu)
    assert 1 == emu.stats.total


def test_close_after_one_item(
    client: Client, emu: Emulator, busy_job: tuple[str, list[str]]
) -> None:
    """``.close()`` on the iterator after one item stops it with no further page request."""
    job_id, event_ids = busy_job
    emu.reset_stats()
    iterator = iter(client.fine_tuning.jobs.list_events(job_id, limit=5))
    assert isinstance(iterator, types.GeneratorType)
    assert event_ids[0] == next(iterator).id
    iterator.close()
    with pytest.raises(StopIteration):
        next(iterator)
    time.sleep(0.1)
    assert 1 == events_requests(emu)
    # The client still works after the closed list.
    assert MODEL == client.models.retrieve(MODEL).id


def test_full_iteration_walks_every_page(
    client: Client, emu: Emulator, busy_job: tuple[str, list[str]]
) -> None:
    """Walking a whole list fetches its pages one by one and yields every item once."""
    job_id, event_ids = busy_job
    emu.reset_stats()
    assert event_ids == [e.id for e in client.fine_tuning.jobs.list_events(job_id, limit=7)]
    assert math.ceil(len(event_ids) / 7) == events_requests(emu)


def test_pages(client: Client, busy_job: tuple[str, list[str]]) -> None:
    """``pages()`` yields the pages, with has_more, as a plain iterator."""
    job_id, event_ids = busy_job
    pages = client.fine_tuning.jobs.list_events(job_id, limit=20).pages()
    assert isinstance(pages, types.GeneratorType)
    collected = list(pages)
    assert math.ceil(len(event_ids) / 20) == len(collected)
    assert [True] * (len(collected) - 1) + [False] == [bool(p.has_more) for p in collected]
    assert event_ids == [e.id for page in collected for e in page.data]


def test_pages_break_early(client: Client, emu: Emulator, busy_job: tuple[str, list[str]]) -> None:
    """Leaving ``pages()`` after the first page sends no second page request."""
    job_id, _ = busy_job
    emu.reset_stats()
    for page in client.fine_tuning.jobs.list_events(job_id, limit=5).pages():
        assert page.has_more
        break
    time.sleep(0.1)
    assert 1 == events_requests(emu)


# --- life cycle: lazy portal, with, close, after close --------------------------------------------


def test_portal_starts_at_the_first_call(emu: Emulator) -> None:
    """No thread starts at construction; the first call starts one, ``close()`` ends it."""
    before = set(threading.enumerate())
    client = Client(base_url=emu.url, api_key="test")
    assert [] == new_threads(before)
    client.models.retrieve(MODEL)
    started = new_threads(before)
    assert 1 == len(started), started
    assert started[0].startswith(PORTAL_THREAD_PREFIXES)
    client.close()
    assert client.is_closed
    assert [] == new_threads(before)


def test_with_closes(emu: Emulator) -> None:
    """Leaving ``with`` closes the client and stops its thread."""
    before = set(threading.enumerate())
    with Client(base_url=emu.url, api_key="test") as client:
        assert MODEL == client.models.retrieve(MODEL).id
    assert client.is_closed
    assert [] == new_threads(before)


def test_close_twice(emu: Emulator) -> None:
    """``close()`` may be called twice, before or after the portal started."""
    unused = Client(base_url=emu.url, api_key="test")
    unused.close()
    unused.close()
    assert unused.is_closed
    used = Client(base_url=emu.url, api_key="test")
    used.models.retrieve(MODEL)
    used.close()
    used.close()
    assert used.is_closed


AFTER_CLOSE_CALLS: dict[str, Callable[[Client], object]] = {
    "retrieve": lambda c: c.models.retrieve(MODEL),
    "create": lambda c: c.files.create(file=b"{}\n", purpose="batch"),
    "list": lambda c: list(c.files.list()),
    "pages": lambda c: list(c.fine_tuning.jobs.list_events("ftjob-abc").pages()),
    "request": lambda c: c.request("GET", f"/models/{MODEL}", dict),
}


@pytest.mark.parametrize("started", [False, True], ids=["never-started", "started"])
@pytest.mark.parametrize("call", list(AFTER_CLOSE_CALLS), ids=list(AFTER_CLOSE_CALLS))
def test_call_after_close(emu: Emulator, call: str, started: bool) -> None:
    """A call after ``close()`` raises FinetuneError saying "closed", and sends nothing."""
    client = Client(base_url=emu.url, api_key="test")
    if started:
        client.models.retrieve(MODEL)
    client.close()
    before = set(threading.enumerate())
    sent = emu.stats.total
    with pytest.raises(FinetuneError, match="closed"):
        AFTER_CLOSE_CALLS[call](client)
    assert sent == emu.stats.total
    assert [] == new_threads(before)


def test_half_read_list_after_close(emu: Emulator, busy_job: tuple[str, list[str]]) -> None:
    """The next item of a list whose client was closed meanwhile raises "closed", sends nothing."""
    job_id, event_ids = busy_job
    client = Client(base_url=emu.url, api_key="test")
    events = iter(client.fine_tuning.jobs.list_events(job_id, limit=1))
    assert event_ids[0] == next(events).id
    client.close()
    sent = emu.stats.total
    with pytest.raises(FinetuneError, match="closed"):
        next(events)
    assert sent == emu.stats.total


@pytest.mark.parametrize("parent_started", [False, True], ids=["never-started", "started"])
@pytest.mark.parametrize("call", list(AFTER_CLOSE_CALLS), ids=list(AFTER_CLOSE_CALLS))
def test_call_on_closed_derived_client(emu: Emulator, call: str, parent_started: bool) -> None:
    """A ``with_options`` client closed, then called, raises "closed" and sends nothing."""
    with Client(base_url=emu.url, api_key="test") as parent:
        if parent_started:
            parent.models.retrieve(MODEL)
        child = parent.with_options(max_retries=0)
        child.close()
        assert child.is_closed
        sent = emu.stats.total
        with pytest.raises(FinetuneError, match="closed"):
            AFTER_CLOSE_CALLS[call](child)
        assert sent == emu.stats.total


def test_with_options_shares_the_portal(emu: Emulator) -> None:
    """A derived client runs on its parent's thread; closing it leaves the parent working."""
    before = set(threading.enumerate())
    with Client(base_url=emu.url, api_key="test") as parent:
        parent.models.retrieve(MODEL)
        running = set(threading.enumerate())
        child = parent.with_options(max_retries=0)
        assert 0 == child.max_retries
        assert parent.max_retries != child.max_retries
        assert MODEL == child.models.retrieve(MODEL).id
        assert [] == new_threads(running)
        child.close()
        assert child.is_closed
        assert not parent.is_closed
        assert MODEL == parent.models.retrieve(MODEL).id
    assert child.is_closed
    assert [] == new_threads(before)


# --- threads sharing one client -------------------------------------------------------------------


def test_threads_share_one_client() -> None:
    """8 threads make 1,000 calls on one Client, concurrently on its pool, and leave no thread."""
    threads_n, calls = 8, 1000
    before = set(threading.enumerate())
    with Emulator(speed=0, seed=1, faults=Faults(latency=0.01)) as emu:
        running_emulator = set(threading.enumerate())
        client = Client(base_url=emu.url, api_key="test")
        file_id = client.files.create(file=b"{}\n", purpose="batch").id
        emu.reset_stats()
        errors: list[BaseException] = []
        results: list[str] = []
        lock = threading.Lock()

        def work(count: int) -> None:
            for _ in range(count):
                try:
                    got = client.files.retrieve(file_id).id
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                else:
                    with lock:
                        results.append(got)

        workers = [
            threading.Thread(target=work, args=(calls // threads_n,), name=f"worker-{i}")
            for i in range(threads_n)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=BOUND)
        assert [] == [w.name for w in workers if w.is_alive()]
        assert [] == errors
        assert [file_id] * calls == results
        assert calls == emu.stats.total
        assert emu.stats.max_in_flight > 1
        assert [] != portal_threads()  # the portal is up while the client is open
        client.close()
        assert [] == portal_threads()
        assert [] == new_threads(running_emulator)
    assert [] == new_threads(before)


# --- providers ------------------------------------------------------------------------------------


def test_for_portkey_sends_its_headers(emu: Emulator) -> None:
    """``Client.for_portkey`` sends the x-portkey-* headers to the gateway's URL."""
    with Client.for_portkey(
        provider="openai", base_url=emu.url, provider_api_key="test", trace_id="trace-1"
    ) as client:
        emu.reset_stats()
        assert MODEL == client.models.retrieve(MODEL).id
    assert 1 == emu.stats.total
    record = emu.stats.requests[0]
    headers = lowered(record)
    assert "openai" == headers.get("x-portkey-provider")
    assert "trace-1" == headers.get("x-portkey-trace-id")
    # The emulator's log redacts credentials; it can still tell which one was sent.
    assert record.sent_header("Authorization", "Bearer test")


def test_for_azure_sends_key_and_version(emu: Emulator) -> None:
    """``Client.for_azure`` sends the api-key header and the api-version query under /openai."""
    with Client.for_azure(
        endpoint=emu.url, api_key="azure-key", api_version="2025-04-01-preview", max_retries=0
    ) as client:
        emu.reset_stats()
        with pytest.raises(APIStatusError) as caught:
            client.models.retrieve(MODEL)
    assert 1 == emu.stats.total
    record = emu.stats.requests[0]
    assert f"/v1/openai/models/{MODEL}" == record.path
    assert record.sent_header("api-key", "azure-key")
    # The emulator records no query string; the error carries the URL that was sent.
    assert caught.value.url is not None
    assert caught.value.url.endswith("?api-version=2025-04-01-preview")


# --- callers with an event loop of their own ("Jupyter") ------------------------------------------


def test_called_from_inside_a_running_loop(emu: Emulator) -> None:
    """A coroutine on a running loop may call the blocking client in the same thread."""

    async def main() -> tuple[str, set[str | None]]:
        asyncio.get_running_loop()  # the caller's thread has a running loop, as in Jupyter
        with Client(base_url=emu.url, api_key="test") as client:
            model = client.models.retrieve(MODEL).id
            purposes = {f.purpose for f in client.files.list(purpose="batch", limit=2)}
            return model, purposes

    before = set(threading.enumerate())
    with Client(base_url=emu.url, api_key="test") as setup:
        setup.files.create(file=b"{}\n", purpose="batch")
    assert (MODEL, {"batch"}) == asyncio.run(main())
    assert [] == new_threads(before)


def test_called_from_a_loop_in_another_thread(emu: Emulator) -> None:
    """A client shared with a thread running its own event loop works from both threads."""
    results: list[str] = []
    failures: list[BaseException] = []
    with Client(base_url=emu.url, api_key="test") as client:

        async def main() -> str:
            return client.models.retrieve(MODEL).id

        def run() -> None:
            try:
                results.append(asyncio.run(main()))
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=run, name="loop-thread")
        thread.start()
        thread.join(timeout=BOUND)
        assert not thread.is_alive()
        assert MODEL == client.models.retrieve(MODEL).id
    assert [] == failures
    assert [MODEL] == results


# --- interpreter exit and Ctrl-C ------------------------------------------------------------------


def run_script(script: str, timeout: float = BOUND) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter, bounded by ``timeout`` seconds."""
    return subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_open_client_does_not_hang_exit() -> None:
    """A script that never closes its Client exits at once, with code 0 and no traceback."""
    script = """
        from finetune_async import Client
        from finetune_async.emulator import Emulator

        emu = Emulator(speed=0, seed=1).__enter__()  # left running, as a careless script would
        client = Client(base_url=emu.url, api_key="test")
        print(client.models.retrieve("gpt-4o-mini-2024-07-18").id)
    """
    done = run_script(script)
    assert 0 == done.returncode, done.stderr
    assert MODEL == done.stdout.strip()
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr


def test_open_client_with_pending_list_does_not_hang_exit() -> None:
    """A script left holding a half-read list and an open client still exits with code 0."""
    script = """
        from finetune_async import Client
        from finetune_async.emulator import Emulator

        with Emulator(speed=0, seed=1) as emu:
            client = Client(base_url=emu.url, api_key="test")
            for _ in range(3):
                client.files.create(file=b"{}\\n", purpose="batch")
            files = iter(client.files.list(limit=1))
            print(next(files).purpose)
    """
    done = run_script(script)
    assert 0 == done.returncode, done.stderr
    assert "batch" == done.stdout.strip()
    assert "Traceback" not in done.stderr


def test_ctrl_c_interrupts_a_blocking_call() -> None:
    """SIGINT during a call to a very slow server cancels it and ends with KeyboardInterrupt."""
    script = """
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal

        from finetune_async import Client
        from finetune_async.emulator import Emulator, Faults

        # Left running at exit: only the interrupt may end the 30 s call.
        emu = Emulator(speed=0, seed=1, faults=Faults(latency=30)).__enter__()
        # One connection: a call left running in the background would hold it for 30 s.
        client = Client(base_url=emu.url, api_key="test", max_retries=0, max_connections=1)
        print("calling", flush=True)
        try:
            client.models.retrieve("gpt-4o-mini-2024-07-18")
            print("returned", flush=True)
        except KeyboardInterrupt:
            emu.set_faults(Faults())
            # Answered at once only if the interrupted call was cancelled and gave the pool back.
            print(client.models.retrieve("gpt-4o-mini-2024-07-18").id, flush=True)
            raise
    """
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 20)
        assert [proc.stdout] == readable
        assert "calling" == proc.stdout.readline().strip()
        time.sleep(1.0)  # the request is in flight on the portal by now
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert 0 != proc.returncode
    assert "KeyboardInterrupt" in stderr
    assert [MODEL] == stdout.split(), stderr
