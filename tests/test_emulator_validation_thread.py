"""The emulator validates training files on a worker thread, never on its event loop.

The validation is held open by a stand-in that waits for the test's signal, so no timing is
measured: if validation ran on the loop, the other request could not be answered until it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import APIConnectionError, AsyncClient
from finetune_async.data import validate_training_file
from finetune_async.emulator import Emulator, Timing
from finetune_async.emulator import _jobs as emulator_jobs

if TYPE_CHECKING:
    from pathlib import Path

    from finetune_async.data import TrainingFileReport

MODEL = "gpt-4o-mini-2024-07-18"
BOUND = 10.0
TIMING = Timing()


def training_file(examples: int = 10) -> bytes:
    """A valid supervised training file."""
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
        for i in range(examples)
    )


class HeldValidation:
    """A stand-in for ``validate_training_file`` that waits for ``release`` before validating."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[str] = []
        #: Whether ``release`` was set before the wait ran out, as seen by the validation.
        self.released: bool | None = None
        #: What the real validation found once released (False: the file was gone).
        self.found_the_file: bool | None = None

    def __call__(self, path: Path, method: str = "supervised") -> TrainingFileReport:
        self.calls.append(threading.current_thread().name)
        self.started.set()
        self.released = self.release.wait(BOUND)
        self.found_the_file = path.exists()
        return validate_training_file(path, method)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldValidation:
    """The emulator's validation, held until the test releases it."""
    stand_in = HeldValidation()
    monkeypatch.setattr(emulator_jobs, "validate_training_file", stand_in)
    return stand_in


async def due_job(emu: Emulator, api: AsyncClient) -> tuple[str, str]:
    """A job whose training file is due for validation on the emulator's clock, and the file."""
    uploaded = await api.files.create(file=("train.jsonl", training_file()), purpose="fine-tune")
    job = await api.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
    emu.advance(TIMING.validate)
    return job.id, uploaded.id


@pytest.mark.asyncio
async def test_a_request_is_answered_while_a_training_file_validates(held: HeldValidation) -> None:
    """While one job's file validates, another request gets its answer; then the job moves on."""
    async with (
        Emulator(speed=0) as emu,
        AsyncClient(base_url=emu.url, api_key="test", max_retries=0) as api,
    ):
        job_id, file_id = await due_job(emu, api)
        looking = asyncio.create_task(api.fine_tuning.jobs.retrieve(job_id))
        assert await asyncio.to_thread(held.started.wait, BOUND)
        # The validation has started and is waiting: these answers cannot come from a blocked
        # loop. (Listing files or models would wait for it: they bring every job up to date.)
        batches = [b async for b in api.batches.list()]
        training = await api.files.retrieve(file_id)
        answered_during_validation = not held.release.is_set() and held.released is None
        held.release.set()
        job = await asyncio.wait_for(looking, BOUND)
    assert answered_during_validation
    assert held.released is True
    assert ([], file_id) == (batches, training.id)
    assert "queued" == job.status
    assert [] == [name for name in held.calls if name == threading.main_thread().name]


@pytest.mark.asyncio
async def test_requests_that_look_at_once_share_one_validation(held: HeldValidation) -> None:
    """Three reads of a due job (retrieve, events, list) run its validation once."""
    async with (
        Emulator(speed=0) as emu,
        AsyncClient(base_url=emu.url, api_key="test", max_retries=0) as api,
    ):
        job_id, _ = await due_job(emu, api)

        async def listed() -> list[Any]:
            return [job async for job in api.fine_tuning.jobs.list()]

        first = asyncio.create_task(api.fine_tuning.jobs.retrieve(job_id))
        listing = asyncio.create_task(listed())
        assert await asyncio.to_thread(held.started.wait, BOUND)
        late = asyncio.create_task(api.fine_tuning.jobs.retrieve(job_id))
        # Let the third request reach the emulator before the validation ends.
        async with asyncio.timeout(BOUND):
            while emu.stats.in_flight < 3:
                await asyncio.sleep(0.01)
        held.release.set()
        async with asyncio.timeout(BOUND):
            retrieved, jobs, again = await first, await listing, await late
        events = [e.message async for e in api.fine_tuning.jobs.list_events(job_id)]
    assert 1 == len(held.calls)
    assert ["queued", "queued", "queued"] == [retrieved.status, jobs[0].status, again.status]
    assert 1 == events.count("Files validated, moving job to queued state")


@pytest.mark.asyncio
async def test_a_file_deleted_before_validation_still_fails_the_job() -> None:
    """The verdict worked out on the thread is the same: a missing file fails the job."""
    async with (
        Emulator(speed=0) as emu,
        AsyncClient(base_url=emu.url, api_key="test", max_retries=0) as api,
    ):
        job_id, _ = await due_job(emu, api)
        job = await api.fine_tuning.jobs.retrieve(job_id)
        assert "queued" == job.status
        uploaded = await api.files.create(file=("t.jsonl", training_file()), purpose="fine-tune")
        doomed = await api.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
        await api.files.delete(uploaded.id)
        emu.advance(TIMING.validate)
        failed = await api.fine_tuning.jobs.retrieve(doomed.id)
    assert "failed" == failed.status
    assert failed.error is not None
    assert "invalid_training_file" == failed.error.code


@pytest.mark.asyncio
async def test_stop_waits_for_a_running_validation_before_removing_its_file(
    held: HeldValidation,
) -> None:
    """``stop()`` lets a validation end (it outlives its request) before removing the files."""
    emu = Emulator(speed=0)
    await emu.start()
    try:
        async with AsyncClient(base_url=emu.url, api_key="test", max_retries=0) as api:
            job_id, _ = await due_job(emu, api)
            looking = asyncio.create_task(api.fine_tuning.jobs.retrieve(job_id))
            assert await asyncio.to_thread(held.started.wait, BOUND)
            stopping = asyncio.create_task(emu.stop())
            # Give stop() time to get as far as it goes while the validation is held (aiohttp's
            # shutdown takes up to its one-second timeout): it must not finish, nor remove files.
            done, _ = await asyncio.wait({stopping}, timeout=2.0)
            stopped_while_held = bool(done)
            held.release.set()
            await asyncio.wait_for(stopping, BOUND)
            # The request in flight may be answered before the server drops its connection,
            # or cut: either is fine, as long as it ends (the point is what stop() waited for).
            with contextlib.suppress(APIConnectionError):
                await asyncio.wait_for(looking, BOUND)
    finally:
        await emu.stop()
    assert not stopped_while_held
    assert held.found_the_file is True
