"""The blocking twins of the polling calls, against the emulator running on its own thread.

``Client`` runs the async calls on its portal's loop; the emulator runs on another thread with
its clock stopped (``speed=0``), moved with ``advance`` from the test's thread or from a small
ticking thread. Early exits (``close()``, ``break``) are checked by the server's request count:
once the watch has stopped, no further request arrives.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import pytest

from finetune_async import Client, JobUpdate, WaitTimeoutError
from finetune_async.emulator import Emulator
from finetune_async.types import FineTuningJob

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from finetune_async.types import FineTuningJobEvent

T = TypeVar("T")

MODEL = "gpt-4o-mini-2024-07-18"
#: A 6-step job: 12 examples, batch 4, 2 epochs.
SMALL_METHOD: dict[str, Any] = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}},
}
FOREVER = 100_000.0
#: Bound of every blocking wait of this module, in seconds.
BOUND = 10.0
#: Outer bound of a blocking call whose own ``timeout`` is ``BOUND``.
OUTER = BOUND + 5
GRACE = 0.1
QUIET = 0.3


def chat_jsonl(n: int = 12) -> bytes:
    """A valid supervised training file of ``n`` examples."""
    rows = [
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": str(2 * i)},
                ]
            }
        )
        for i in range(n)
    ]
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


def new_job(client: Client) -> FineTuningJob:
    """Upload a training file and start a job on it."""
    uploaded = client.files.create(file=("train.jsonl", chat_jsonl()), purpose="fine-tune")
    return client.fine_tuning.jobs.create(
        model=MODEL, training_file=uploaded.id, method=SMALL_METHOD
    )


@contextlib.contextmanager
def ticking(emu: Emulator, seconds: float = 5.0) -> Iterator[None]:
    """Move the emulated clock by ``seconds`` every 10 ms from a thread, while the block runs."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.01):
            emu.advance(seconds)

    thread = threading.Thread(target=tick, name="ticking", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(BOUND)


def bounded(work: Callable[[], T]) -> T:
    """Run ``work`` on a thread and return its result; fail if it takes over ``OUTER`` s."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed back to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="bounded", daemon=True)
    thread.start()
    thread.join(OUTER)
    if thread.is_alive():
        pytest.fail(f"not done within {OUTER} s")
    if failure:
        raise failure[0]
    return result[0]


def assert_quiet(emu: Emulator) -> None:
    """Let requests already on the way land, then check that none arrive for ``QUIET`` s."""
    time.sleep(GRACE)
    seen = emu.stats.total
    time.sleep(QUIET)
    assert seen == emu.stats.total


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator on its own thread whose clock moves only by ``advance``."""
    with Emulator(speed=0, seed=21) as running:
        yield running


@pytest.fixture
def client(emu: Emulator) -> Iterator[Client]:
    """A blocking client of ``emu``."""
    with Client(base_url=emu.url, api_key="test") as blocking:
        yield blocking


def test_wait_returns_the_succeeded_job(emu: Emulator, client: Client) -> None:
    """``jobs.wait`` blocks until the job has succeeded and returns it."""
    job = new_job(client)
    with ticking(emu):
        done = bounded(
            lambda: client.fine_tuning.jobs.wait(job.id, poll_interval=0.02, timeout=BOUND)
        )
    assert (job.id, "succeeded") == (done.id, done.status)


def test_wait_timeout_raises_with_the_job_as_last_seen(emu: Emulator, client: Client) -> None:
    """On a job that cannot finish, ``wait`` raises ``WaitTimeoutError`` with ``last`` set."""
    job = new_job(client)
    with pytest.raises(WaitTimeoutError) as raised:
        bounded(lambda: client.fine_tuning.jobs.wait(job.id, poll_interval=0.05, timeout=0.5))
    last = raised.value.last
    assert isinstance(last, FineTuningJob)
    assert (job.id, "validating_files") == (last.id, last.status)


def test_watch_is_a_plain_iterator_and_add_watches_more(emu: Emulator, client: Client) -> None:
    """``for update in watch`` gives each change; a job added meanwhile is watched to its end."""
    first, second = new_job(client), new_job(client)
    watch = client.fine_tuning.jobs.watch([first.id], poll_interval=0.02, timeout=BOUND)
    assert watch is iter(watch)

    def follow() -> list[JobUpdate]:
        updates = []
        for update in watch:
            updates.append(update)
            assert update.job is not None
            if update.job.id == first.id and update.previous_status is None:
                watch.add(second.id)
            elif update.job.id == second.id and update.previous_status is None:
                emu.advance(FOREVER)
        return updates

    updates = bounded(follow)
    assert [None] * len(updates) == [u.error for u in updates]
    for job in (first, second):
        assert [(None, "validating_files"), ("validating_files", "succeeded")] == [
            (u.previous_status, u.job.status)
            for u in updates
            if u.job is not None and u.job.id == job.id
        ]


def test_watch_close_stops_polling(emu: Emulator, client: Client) -> None:
    """After ``close()`` the server sees no further poll, and the iterator is exhausted."""
    ids = [new_job(client).id for _ in range(4)]
    watch = client.fine_tuning.jobs.watch(ids, poll_interval=0.02, max_concurrency=2, timeout=BOUND)
    firsts = bounded(lambda: [next(watch) for _ in ids])
    assert set(ids) == {u.job.id for u in firsts if u.job is not None}
    watch.close()
    assert_quiet(emu)
    with pytest.raises(StopIteration):
        next(watch)
    watch.close()  # closing again is harmless


def test_break_out_of_watch_stops_polling(emu: Emulator, client: Client) -> None:
    """After ``break`` out of ``for update in watch``, the server sees no further poll."""
    ids = [new_job(client).id for _ in range(4)]

    def follow() -> int:
        for seen, _ in enumerate(
            client.fine_tuning.jobs.watch(
                ids, poll_interval=0.02, max_concurrency=2, timeout=BOUND
            ),
            start=1,
        ):
            if seen == 3:
                return seen
        return 0

    assert 3 == bounded(follow)
    assert_quiet(emu)


def test_stream_events_yields_each_event_once_oldest_first(emu: Emulator, client: Client) -> None:
    """The blocking stream yields the job's events oldest first, each once, then ends."""
    job = new_job(client)
    with ticking(emu, seconds=2.0):
        got: list[FineTuningJobEvent] = bounded(
            lambda: list(client.fine_tuning.jobs.stream_events(job.id, poll_interval=0.02))
        )
    listed = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert [e.id for e in reversed(listed)] == [e.id for e in got]
    assert "The job has successfully completed" == got[-1].message


def test_stream_events_stops_polling_when_left_early(emu: Emulator, client: Client) -> None:
    """Leaving the blocking stream early stops its polls."""
    job = new_job(client)

    def first_message() -> str | None:
        for event in client.fine_tuning.jobs.stream_events(job.id, poll_interval=0.02):
            return event.message
        return None

    assert "Created fine-tuning job" == bounded(first_message)
    assert_quiet(emu)


def new_batch(client: Client, data: bytes) -> str:
    """Upload a batch input file, create a batch on it and return its id."""
    uploaded = client.files.create(file=("batch.jsonl", data), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions").id


def test_batches_wait_returns_the_completed_batch(emu: Emulator, client: Client) -> None:
    """``batches.wait`` blocks until the batch is completed and returns it."""
    batch_id = new_batch(client, batch_jsonl())
    with ticking(emu, seconds=1.0):
        done = bounded(lambda: client.batches.wait(batch_id, poll_interval=0.02, timeout=BOUND))
    assert (batch_id, "completed") == (done.id, done.status)


def test_batches_wait_returns_the_failed_batch(emu: Emulator, client: Client) -> None:
    """A batch that fails validation is returned by ``batches.wait``."""
    batch_id = new_batch(client, batch_jsonl(url="/v1/embeddings"))
    with ticking(emu, seconds=1.0):
        done = bounded(lambda: client.batches.wait(batch_id, poll_interval=0.02, timeout=BOUND))
    assert (batch_id, "failed") == (done.id, done.status)


def test_batches_wait_returns_the_cancelled_batch(emu: Emulator, client: Client) -> None:
    """A batch cancelled before the wait is followed through cancelling to cancelled."""
    batch_id = new_batch(client, batch_jsonl())
    assert "cancelling" == client.batches.cancel(batch_id).status
    with ticking(emu, seconds=1.0):
        done = bounded(lambda: client.batches.wait(batch_id, poll_interval=0.02, timeout=BOUND))
    assert (batch_id, "cancelled") == (done.id, done.status)


def test_files_wait_for_processing_returns_the_processed_file(
    emu: Emulator, client: Client
) -> None:
    """``files.wait_for_processing`` returns the uploaded file once processed."""
    uploaded = client.files.create(file=("train.jsonl", chat_jsonl()), purpose="fine-tune")
    done = bounded(
        lambda: client.files.wait_for_processing(uploaded.id, poll_interval=0.02, timeout=BOUND)
    )
    assert (uploaded.id, "processed") == (done.id, done.status)
