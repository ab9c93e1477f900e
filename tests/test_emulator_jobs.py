"""The emulator's fine-tuning jobs, checkpoints, permissions and models, driven through the SDK.

Most tests run the emulator at ``speed=0`` and move its clock with ``advance``, so every phase
boundary is exact: validating_files 30 s, queued 60 s, 2 s per step, 20 s to finish (``Timing``).
Files are uploaded and read with raw aiohttp (the SDK has no files or models API yet).
"""

from __future__ import annotations

import asyncio
import math
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import attrs
import orjson
import pytest
import pytest_asyncio

from finetune_async import AsyncClient
from finetune_async.emulator import Emulator, Timing
from finetune_async.errors import (
    AuthenticationError,
    BadRequestError,
    InvalidParameterError,
    NotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from finetune_async._pagination import AsyncPager
    from finetune_async.types import FineTuningJob, FineTuningJobEvent, Page

T = TypeVar("T")

MODEL = "gpt-4o-mini-2024-07-18"
ORG = "org-emulator"
TIMING = Timing()
#: From creation to "running": validating_files then queued.
TO_RUNNING = TIMING.validate + TIMING.queue
#: A job of 12 examples, batch 4, 2 epochs: 3 steps per epoch, 6 steps.
SMALL_HYPER: dict[str, Any] = {"n_epochs": 2, "batch_size": 4}
SMALL_STEPS = 6
SMALL_STEPS_PER_EPOCH = 3
#: Enough virtual seconds to end any job of these tests.
FOREVER = 100_000.0


# --- helpers ---------------------------------------------------------------------------------


def chat_example(i: int, *, assistant: bool = True) -> dict[str, Any]:
    """One supervised chat example."""
    messages: list[dict[str, str]] = [
        {"role": "system", "content": "You answer with a number."},
        {"role": "user", "content": f"What is {i} plus {i}?"},
    ]
    if assistant:
        messages.append({"role": "assistant", "content": str(2 * i)})
    return {"messages": messages}


def dpo_example(i: int) -> dict[str, Any]:
    """One DPO example."""
    return {
        "input": {"messages": [{"role": "user", "content": f"Greet person {i}."}]},
        "preferred_output": [{"role": "assistant", "content": f"Hello, person {i}!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
    }


def jsonl(rows: Iterable[object]) -> bytes:
    """Rows as JSON lines (bytes rows are written as they are)."""
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)


def chat_file(n: int = 12) -> bytes:
    """A valid supervised training file of ``n`` examples."""
    return jsonl(chat_example(i) for i in range(n))


def auth(key: str = "test") -> dict[str, str]:
    """The Authorization header."""
    return {"Authorization": f"Bearer {key}"}


async def upload(
    emu: Emulator, data: bytes, *, purpose: str = "fine-tune", filename: str = "train.jsonl"
) -> str:
    """Upload a file with a raw multipart POST and return its id."""
    form = aiohttp.FormData()
    form.add_field("purpose", purpose)
    form.add_field("file", data, filename=filename, content_type="application/jsonl")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emu.url}/files", data=form, headers=auth()) as response,
    ):
        body = await response.json()
        assert 200 == response.status, body
        file_id = body["id"]
        assert isinstance(file_id, str)
        return file_id


async def raw(
    emu: Emulator,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Send one raw request to ``emu.url + path``; return the status and the decoded JSON."""
    sent = auth() if headers is None else headers
    if body is not None:
        sent = {**sent, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, emu.url + path, data=body, headers=sent) as response,
    ):
        data = await response.read()
        return response.status, orjson.loads(data) if data else None


async def file_content(emu: Emulator, file_id: str) -> bytes:
    """The bytes of a stored file, by a raw GET."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{emu.url}/files/{file_id}/content", headers=auth()) as response,
    ):
        assert 200 == response.status
        return await response.read()


async def all_events(client: AsyncClient, job_id: str) -> list[FineTuningJobEvent]:
    """Every event of a job, in the server's order (newest first)."""
    return [e async for e in client.fine_tuning.jobs.list_events(job_id, limit=100)]


async def first_page(pager: AsyncPager[T]) -> Page[T]:
    """The first page of a list, its generator closed at once."""
    async with aclosing(pager.pages()) as pages:
        return await anext(pages)


def metric_steps(events: Iterable[FineTuningJobEvent]) -> list[int]:
    """The ``data.step`` of the metrics events, in the order given."""
    return [int(e.data["step"]) for e in events if e.type == "metrics"]


async def create_small(client: AsyncClient, file_id: str, **extra: Any) -> FineTuningJob:
    """Create a 6-step supervised job on a 12-example file."""
    return await client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": SMALL_HYPER}},
        **extra,
    )


# --- fixtures --------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator whose clock moves only by ``advance``."""
    async with Emulator(speed=0, seed=1234) as running:
        yield running


@pytest_asyncio.fixture
async def ft(emu: Emulator) -> AsyncIterator[AsyncClient]:
    """An SDK client on the emulator."""
    async with AsyncClient(base_url=emu.url, api_key="test") as client:
        yield client


@pytest_asyncio.fixture
async def train_id(emu: Emulator) -> str:
    """A valid 12-example training file, uploaded."""
    return await upload(emu, chat_file(12))


# --- the success life cycle --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_success_life_cycle_phase_by_phase(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """A job walks validating_files, queued, running and succeeded at the Timing boundaries."""
    jobs = ft.fine_tuning.jobs
    job = await jobs.create(model=MODEL, training_file=train_id, suffix="demo")
    assert "validating_files" == job.status
    assert job.hyperparameters is not None
    assert "auto" == job.hyperparameters.n_epochs
    assert job.fine_tuned_model is None
    assert job.finished_at is None
    assert job.created_at is not None
    created = job.created_at

    emu.advance(TIMING.validate - 0.5)
    assert "validating_files" == (await jobs.retrieve(job.id)).status
    emu.advance(0.5)
    job = await jobs.retrieve(job.id)
    assert "queued" == job.status

    # Validated: "auto" became numbers, on the job and in its method.
    hyper = job.hyperparameters
    assert hyper is not None
    assert isinstance(hyper.n_epochs, int)
    assert isinstance(hyper.batch_size, int)
    assert isinstance(hyper.learning_rate_multiplier, int | float)
    assert not isinstance(hyper.n_epochs, bool)
    assert job.method is not None
    assert job.method.supervised is not None
    assert job.method.supervised.hyperparameters is not None
    assert hyper.n_epochs == job.method.supervised.hyperparameters.n_epochs
    assert hyper.batch_size == job.method.supervised.hyperparameters.batch_size
    epochs, batch = hyper.n_epochs, hyper.batch_size
    per_epoch = math.ceil(12 / batch)
    steps = epochs * per_epoch

    emu.advance(TIMING.queue - 0.5)
    assert "queued" == (await jobs.retrieve(job.id)).status
    emu.advance(0.5)
    job = await jobs.retrieve(job.id)
    assert "running" == job.status
    finish = created + int(TO_RUNNING + steps * TIMING.step + TIMING.finalize)
    assert finish == job.estimated_finish
    assert [] == metric_steps(await all_events(ft, job.id))

    emu.advance(5 * TIMING.step)
    assert [5, 4, 3, 2, 1] == metric_steps(await all_events(ft, job.id))

    emu.advance((steps - 5) * TIMING.step + TIMING.finalize - 0.5)
    job = await jobs.retrieve(job.id)
    assert "running" == job.status
    assert job.fine_tuned_model is None
    emu.advance(0.5)
    job = await jobs.retrieve(job.id)
    assert "succeeded" == job.status

    assert f"ft:{MODEL}:{ORG}:demo:{job.id.removeprefix('ftjob-')[:8]}" == job.fine_tuned_model
    assert finish == job.finished_at
    assert job.trained_tokens is not None
    assert job.trained_tokens > 0
    assert job.error is None

    # Events: newest first, one metrics event per step, each step once, with its metrics.
    events = await all_events(ft, job.id)
    stamps = [e.created_at or 0 for e in events]
    assert sorted(stamps, reverse=True) == stamps
    assert len({e.id for e in events}) == len(events)
    assert list(range(steps, 0, -1)) == metric_steps(events)
    for event in events:
        if event.type == "metrics":
            assert isinstance(event.data["train_loss"], float)
            assert 0.0 <= event.data["train_mean_token_accuracy"] <= 1.0

    # Checkpoints: one per epoch end, newest first, named after the model and the step.
    checkpoints = [c async for c in jobs.checkpoints.list(job.id)]
    expected_steps = [per_epoch * e for e in range(epochs, 0, -1)]
    assert expected_steps == [c.step_number for c in checkpoints]
    for checkpoint in checkpoints:
        assert job.id == checkpoint.fine_tuning_job_id
        expected_name = f"{job.fine_tuned_model}:ckpt-step-{checkpoint.step_number}"
        assert expected_name == checkpoint.fine_tuned_model_checkpoint
        assert checkpoint.metrics is not None
        assert checkpoint.step_number == checkpoint.metrics.step
        assert checkpoint.metrics.train_loss is not None
        assert checkpoint.metrics.train_mean_token_accuracy is not None

    # The result file: CSV, a header, one row per step.
    assert job.result_files is not None
    assert 1 == len(job.result_files)
    lines = (await file_content(emu, job.result_files[0])).decode().splitlines()
    header = lines[0].split(",")
    assert "step" == header[0]
    assert "train_loss" in header
    assert [str(s) for s in range(1, steps + 1)] == [row.split(",")[0] for row in lines[1:]]
    assert all(len(header) == len(row.split(",")) for row in lines[1:])


@pytest.mark.asyncio
async def test_finished_job_stays_put(emu: Emulator, ft: AsyncClient, train_id: str) -> None:
    """Once succeeded, more clock adds no events, checkpoints or steps."""
    job = await create_small(ft, train_id)
    emu.advance(FOREVER)
    events = await all_events(ft, job.id)
    first = await ft.fine_tuning.jobs.retrieve(job.id)
    emu.advance(FOREVER)
    assert first == await ft.fine_tuning.jobs.retrieve(job.id)
    assert [e.id for e in events] == [e.id for e in await all_events(ft, job.id)]
    assert list(range(SMALL_STEPS, 0, -1)) == metric_steps(events)


@pytest.mark.asyncio
async def test_valid_dpo_job_succeeds(emu: Emulator, ft: AsyncClient) -> None:
    """A DPO job on a well-formed DPO file trains to success with its beta kept."""
    file_id = await upload(emu, jsonl(dpo_example(i) for i in range(12)))
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, **SMALL_HYPER}}}
    job = await ft.fine_tuning.jobs.create(model=MODEL, training_file=file_id, method=method)
    emu.advance(FOREVER)
    job = await ft.fine_tuning.jobs.retrieve(job.id)
    assert "succeeded" == job.status
    assert job.method is not None
    assert "dpo" == job.method.type
    assert job.method.dpo is not None
    assert job.method.dpo.hyperparameters is not None
    assert 0.2 == job.method.dpo.hyperparameters.beta
    assert list(range(SMALL_STEPS, 0, -1)) == metric_steps(await all_events(ft, job.id))


@pytest.mark.asyncio
async def test_dpo_auto_hyperparameters_resolved(emu: Emulator, ft: AsyncClient) -> None:
    """A DPO job's "auto" hyperparameters, beta included, are numbers once validated."""
    file_id = await upload(emu, jsonl(dpo_example(i) for i in range(12)))
    auto = {"beta": "auto", "batch_size": "auto", "n_epochs": "auto"}
    method = {"type": "dpo", "dpo": {"hyperparameters": auto}}
    job = await ft.fine_tuning.jobs.create(model=MODEL, training_file=file_id, method=method)
    emu.advance(TIMING.validate)
    job = await ft.fine_tuning.jobs.retrieve(job.id)
    assert "queued" == job.status
    assert job.method is not None
    assert job.method.dpo is not None
    hyper = job.method.dpo.hyperparameters
    assert hyper is not None
    resolved = attrs.asdict(hyper)
    assert {} == {k: v for k, v in resolved.items() if not isinstance(v, int | float)}


@pytest.mark.asyncio
async def test_job_reaches_succeeded_at_speed_200() -> None:
    """At speed=200 a job on a 12-example file succeeds well within 30 s of real time."""
    async with (
        Emulator(speed=200, seed=5) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as client,
    ):
        file_id = await upload(emu, chat_file(12))
        job = await client.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
        seen: list[str] = [str(job.status)]

        async def until_finished() -> FineTuningJob:
            while True:
                current = await client.fine_tuning.jobs.retrieve(job.id)
                if seen[-1] != current.status:
                    seen.append(str(current.status))
                if current.status in {"succeeded", "failed", "cancelled"}:
                    return current
                await asyncio.sleep(0.1)

        done = await asyncio.wait_for(until_finished(), 30)
        assert "succeeded" == done.status
        order = ["validating_files", "queued", "running", "succeeded"]
        assert sorted(seen, key=order.index) == seen
        assert done.fine_tuned_model is not None


# --- bad training files --------------------------------------------------------------------------


DPO_METHOD: dict[str, Any] = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}
_NO_PREFERRED = {k: v for k, v in dpo_example(3).items() if k != "preferred_output"}


@pytest.mark.parametrize(
    ("data", "method", "named"),
    [
        pytest.param(
            jsonl([*map(chat_example, range(2)), b'{"messages": [', *map(chat_example, range(9))]),
            None,
            "line 3",
            id="invalid-json-line",
        ),
        pytest.param(
            jsonl(
                [*map(chat_example, range(4)), chat_example(4, assistant=False)]
                + [chat_example(i) for i in range(5, 12)]
            ),
            None,
            "line 5",
            id="no-assistant-message",
        ),
        pytest.param(chat_file(5), None, "5 examples", id="fewer-than-10-examples"),
        pytest.param(
            jsonl([*map(dpo_example, range(3)), _NO_PREFERRED, *map(dpo_example, range(8))]),
            DPO_METHOD,
            "line 4",
            id="dpo-missing-preferred-output",
        ),
    ],
)
@pytest.mark.asyncio
async def test_bad_training_file_fails_the_job(
    emu: Emulator, ft: AsyncClient, data: bytes, method: dict[str, Any] | None, named: str
) -> None:
    """A malformed training file fails the job at the end of validating_files, naming where."""
    file_id = await upload(emu, data)
    job = await ft.fine_tuning.jobs.create(model=MODEL, training_file=file_id, method=method)
    emu.advance(TIMING.validate - 0.5)
    assert "validating_files" == (await ft.fine_tuning.jobs.retrieve(job.id)).status
    emu.advance(0.5)
    job = await ft.fine_tuning.jobs.retrieve(job.id)
    assert "failed" == job.status
    assert job.error is not None
    assert "invalid_training_file" == job.error.code
    assert "training_file" == job.error.param
    assert job.error.message is not None
    assert named in job.error.message
    assert job.finished_at is not None
    assert job.fine_tuned_model is None

    emu.advance(FOREVER)
    later = await ft.fine_tuning.jobs.retrieve(job.id)
    assert "failed" == later.status
    events = await all_events(ft, job.id)
    assert [] == metric_steps(events)
    assert "error" == events[0].level


# --- create errors -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_with_unknown_training_file(ft: AsyncClient) -> None:
    """An unknown training file is a 400 naming training_file."""
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.create(model=MODEL, training_file="file-doesnotexist")
    assert 400 == caught.value.status_code
    assert "training_file" == caught.value.param


@pytest.mark.asyncio
async def test_create_with_batch_purpose_file(emu: Emulator, ft: AsyncClient) -> None:
    """A file uploaded with purpose batch cannot be a training file."""
    batch_file = await upload(emu, chat_file(12), purpose="batch")
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.create(model=MODEL, training_file=batch_file)
    assert "training_file" == caught.value.param


@pytest.mark.asyncio
async def test_create_with_unknown_validation_file(ft: AsyncClient, train_id: str) -> None:
    """An unknown validation file is a 400 naming validation_file."""
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.create(
            model=MODEL, training_file=train_id, validation_file="file-nope"
        )
    assert "validation_file" == caught.value.param


@pytest.mark.asyncio
async def test_create_with_unknown_model(ft: AsyncClient, train_id: str) -> None:
    """An unknown base model is a 400 naming model, and no job is created."""
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.create(model="gpt-does-not-exist", training_file=train_id)
    assert "model" == caught.value.param
    assert [] == [j async for j in ft.fine_tuning.jobs.list()]


@pytest.mark.asyncio
async def test_sdk_catches_bad_hyperparameters_before_sending(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """The SDK refuses n_epochs 0 itself: nothing reaches the emulator."""
    emu.reset_stats()
    with pytest.raises(InvalidParameterError):
        await ft.fine_tuning.jobs.create(
            model=MODEL, training_file=train_id, hyperparameters={"n_epochs": 0}
        )
    assert 0 == emu.stats.total


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        pytest.param({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs", id="epochs"),
        pytest.param(
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
            id="method-epochs",
        ),
        pytest.param({"method": {"type": "magic"}}, "method.type", id="method-type"),
        pytest.param({"suffix": "s" * 65}, "suffix", id="suffix-65"),
        pytest.param({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", id="meta-17"),
    ],
)
@pytest.mark.asyncio
async def test_server_side_create_checks(
    emu: Emulator, ft: AsyncClient, train_id: str, extra: dict[str, Any], param: str
) -> None:
    """The emulator checks a raw create body itself: 400, OpenAI error shape, the param named."""
    body = orjson.dumps({"model": MODEL, "training_file": train_id, **extra})
    status, answer = await raw(emu, "POST", "/fine_tuning/jobs", body=body)
    assert 400 == status
    assert {"message", "type", "param", "code"} == set(answer["error"])
    assert "invalid_request_error" == answer["error"]["type"]
    assert param == answer["error"]["param"]
    assert answer["error"]["message"]
    assert [] == [j async for j in ft.fine_tuning.jobs.list()]


# --- pause, resume, cancel -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_pause_stops_the_clock_and_resume_continues(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """Paused, a job takes no step however long; resumed, it goes on from the same step."""
    jobs = ft.fine_tuning.jobs
    job = await create_small(ft, train_id)
    emu.advance(TO_RUNNING + 2 * TIMING.step + 1)
    running = await jobs.retrieve(job.id)
    assert "running" == running.status
    assert running.estimated_finish is not None

    paused = await jobs.pause(job.id)
    assert "paused" == paused.status
    before = await all_events(ft, job.id)
    assert [2, 1] == metric_steps(before)
    checkpoints_before = [c.id async for c in jobs.checkpoints.list(job.id)]

    emu.advance(10_000)
    assert "paused" == (await jobs.retrieve(job.id)).status
    assert [e.id for e in before] == [e.id for e in await all_events(ft, job.id)]
    assert checkpoints_before == [c.id async for c in jobs.checkpoints.list(job.id)]

    resumed = await jobs.resume(job.id)
    assert "running" == resumed.status
    assert running.estimated_finish + 10_000 == resumed.estimated_finish
    emu.advance(1)
    assert [3, 2, 1] == metric_steps(await all_events(ft, job.id))

    emu.advance(FOREVER)
    done = await jobs.retrieve(job.id)
    assert "succeeded" == done.status
    assert resumed.estimated_finish == done.finished_at
    assert list(range(SMALL_STEPS, 0, -1)) == metric_steps(await all_events(ft, job.id))
    checkpoints = [c async for c in jobs.checkpoints.list(job.id)]
    assert [6, 3] == [c.step_number for c in checkpoints]
    assert done.result_files is not None
    rows = (await file_content(emu, done.result_files[0])).decode().splitlines()[1:]
    assert [str(s) for s in range(1, SMALL_STEPS + 1)] == [r.split(",")[0] for r in rows]


#: Status to cancel from -> virtual seconds to advance first (then pause, for "paused").
CANCEL_FROM: dict[str, float] = {
    "validating_files": 0.0,
    "queued": TIMING.validate,
    "running": TO_RUNNING + 3,
    "paused": TO_RUNNING + 3,
}


@pytest.mark.parametrize("status_before", list(CANCEL_FROM))
@pytest.mark.asyncio
async def test_cancel_from_each_unfinished_status(
    emu: Emulator, ft: AsyncClient, train_id: str, status_before: str
) -> None:
    """Cancel works from validating_files, queued, running and paused, and the job stays ended."""
    jobs = ft.fine_tuning.jobs
    job = await create_small(ft, train_id)
    emu.advance(CANCEL_FROM[status_before])
    if status_before == "paused":
        await jobs.pause(job.id)
    assert status_before == (await jobs.retrieve(job.id)).status
    steps_before = metric_steps(await all_events(ft, job.id))

    cancelled = await jobs.cancel(job.id)
    assert "cancelled" == cancelled.status
    assert cancelled.finished_at is not None

    emu.advance(FOREVER)
    later = await jobs.retrieve(job.id)
    assert "cancelled" == later.status
    assert later.fine_tuned_model is None
    assert [] == later.result_files
    assert steps_before == metric_steps(await all_events(ft, job.id))


@pytest.mark.asyncio
async def test_cancel_of_a_finished_job_is_refused(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """Cancelling a succeeded (or already cancelled) job is a 400 saying why."""
    done = await create_small(ft, train_id)
    emu.advance(FOREVER)
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.cancel(done.id)
    assert "succeeded" in caught.value.message
    assert "cancel" in caught.value.message
    assert "succeeded" == (await ft.fine_tuning.jobs.retrieve(done.id)).status

    other = await create_small(ft, train_id)
    await ft.fine_tuning.jobs.cancel(other.id)
    with pytest.raises(BadRequestError) as again:
        await ft.fine_tuning.jobs.cancel(other.id)
    assert "cancelled" in again.value.message


@pytest.mark.asyncio
async def test_pause_of_a_queued_job_is_refused(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """Only a running job can be paused: queued (or validating_files) is a 400 saying so."""
    job = await create_small(ft, train_id)
    with pytest.raises(BadRequestError) as validating:
        await ft.fine_tuning.jobs.pause(job.id)
    assert "validating_files" in validating.value.message
    emu.advance(TIMING.validate)
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.pause(job.id)
    assert 400 == caught.value.status_code
    assert "queued" in caught.value.message
    assert "running" in caught.value.message
    assert "queued" == (await ft.fine_tuning.jobs.retrieve(job.id)).status


@pytest.mark.asyncio
async def test_pause_of_a_finished_job_is_refused(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """Pausing a succeeded job is a 400 naming its status."""
    job = await create_small(ft, train_id)
    emu.advance(FOREVER)
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.pause(job.id)
    assert "succeeded" in caught.value.message


@pytest.mark.asyncio
async def test_resume_of_a_running_job_is_refused(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """Only a paused job can be resumed: running is a 400 saying so."""
    job = await create_small(ft, train_id)
    emu.advance(TO_RUNNING + 1)
    with pytest.raises(BadRequestError) as caught:
        await ft.fine_tuning.jobs.resume(job.id)
    assert 400 == caught.value.status_code
    assert "running" in caught.value.message
    assert "paused" in caught.value.message
    assert "running" == (await ft.fine_tuning.jobs.retrieve(job.id)).status


@pytest.mark.parametrize("body", [b"", b"{}"], ids=["empty-body", "empty-object"])
@pytest.mark.asyncio
async def test_transitions_accept_empty_and_brace_bodies(
    emu: Emulator, ft: AsyncClient, train_id: str, body: bytes
) -> None:
    """Raw pause, resume and cancel work with no body and with a ``{}`` body."""
    job = await create_small(ft, train_id)
    emu.advance(TO_RUNNING + 1)
    path = f"/fine_tuning/jobs/{job.id}"
    for action, expected in (("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        status, answer = await raw(emu, "POST", f"{path}/{action}", body=body)
        assert (200, expected) == (status, answer["status"])
    assert "cancelled" == (await ft.fine_tuning.jobs.retrieve(job.id)).status


# --- lists ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_events_pagination(emu: Emulator, ft: AsyncClient, train_id: str) -> None:
    """Events page by ``limit`` and ``after``: newest first, no duplicates, none missing."""
    jobs = ft.fine_tuning.jobs
    job = await create_small(ft, train_id)
    emu.advance(FOREVER)
    everything = await all_events(ft, job.id)
    assert len(everything) > 8

    pages = [p async for p in jobs.list_events(job.id, limit=3).pages()]
    assert all(len(p.data) <= 3 for p in pages)
    assert [True] * (len(pages) - 1) + [False] == [p.has_more for p in pages]
    paged = [e for p in pages for e in p.data]
    assert [e.id for e in everything] == [e.id for e in paged]
    assert len(paged) == len({e.id for e in paged})

    cursor = everything[4].id
    first = await first_page(jobs.list_events(job.id, after=cursor, limit=2))
    assert [e.id for e in everything[5:7]] == [e.id for e in first.data]
    rest = [e.id async for e in jobs.list_events(job.id, after=cursor, limit=2)]
    assert [e.id for e in everything[5:]] == rest


@pytest.mark.asyncio
async def test_events_default_page_is_newest(emu: Emulator, ft: AsyncClient, train_id: str) -> None:
    """The first page of events holds the newest: the success event leads."""
    job = await create_small(ft, train_id)
    emu.advance(FOREVER)
    first = await first_page(ft.fine_tuning.jobs.list_events(job.id, limit=1))
    everything = await all_events(ft, job.id)
    assert [everything[0].id] == [e.id for e in first.data]
    assert max(e.created_at or 0 for e in everything) == first.data[0].created_at


@pytest.mark.asyncio
async def test_jobs_list_newest_first_with_metadata_filter(ft: AsyncClient, train_id: str) -> None:
    """Jobs list newest first, page by limit, and filter on ``metadata[k]=v``."""
    jobs = ft.fine_tuning.jobs
    created = []
    for i in range(5):
        team = "red" if i % 2 == 0 else "blue"
        job = await create_small(ft, train_id, metadata={"team": team, "n": str(i)})
        created.append(job.id)

    pages = [p async for p in jobs.list(limit=2).pages()]
    assert [2, 2, 1] == [len(p.data) for p in pages]
    assert created[::-1] == [j.id for p in pages for j in p.data]

    red = [j async for j in jobs.list(metadata={"team": "red"}, limit=2)]
    assert [created[4], created[2], created[0]] == [j.id for j in red]
    assert all(j.metadata is not None and "red" == j.metadata["team"] for j in red)
    both = [j.id async for j in jobs.list(metadata={"team": "blue", "n": "3"})]
    assert [created[3]] == both
    assert [] == [j.id async for j in jobs.list(metadata={"team": "green"})]
    after = [j.id async for j in jobs.list(after=created[3])]
    assert created[2::-1] == after


# --- errors: not found, unknown URL, auth ---------------------------------------------------------


@pytest.mark.asyncio
async def test_retrieve_unknown_job(ft: AsyncClient) -> None:
    """An unknown job id is a NotFoundError."""
    with pytest.raises(NotFoundError) as caught:
        await ft.fine_tuning.jobs.retrieve("ftjob-doesnotexist")
    assert 404 == caught.value.status_code
    with pytest.raises(NotFoundError):
        await ft.fine_tuning.jobs.cancel("ftjob-doesnotexist")
    with pytest.raises(NotFoundError):
        [e async for e in ft.fine_tuning.jobs.list_events("ftjob-doesnotexist")]


@pytest.mark.asyncio
async def test_unknown_url_is_404_with_error_shape(emu: Emulator) -> None:
    """An unknown URL is a 404 in OpenAI's error shape."""
    status, answer = await raw(emu, "GET", "/no/such/thing")
    assert 404 == status
    assert {"message", "type", "param", "code"} == set(answer["error"])
    assert "invalid_request_error" == answer["error"]["type"]
    assert answer["error"]["message"]


@pytest.mark.asyncio
async def test_missing_authorization_is_401(emu: Emulator) -> None:
    """A request without Authorization is a 401 in OpenAI's error shape."""
    status, answer = await raw(emu, "GET", "/fine_tuning/jobs", headers={})
    assert 401 == status
    assert {"message", "type", "param", "code"} == set(answer["error"])


@pytest.mark.asyncio
async def test_configured_api_key_refuses_others() -> None:
    """``Emulator(api_key=...)`` answers 401 to any other key and serves the right one."""
    async with Emulator(speed=0, api_key="secret") as emu:
        async with AsyncClient(base_url=emu.url, api_key="test") as wrong:
            with pytest.raises(AuthenticationError) as caught:
                await wrong.fine_tuning.jobs.retrieve("ftjob-x")
            assert 401 == caught.value.status_code
        async with AsyncClient(base_url=emu.url, api_key="secret") as right:
            assert [] == [j async for j in right.fine_tuning.jobs.list()]


# --- models --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fine_tuned_model_retrieve_and_delete(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """A job's model is served with owned_by until deleted; then it is a 404."""
    job = await create_small(ft, train_id, suffix="m")
    emu.advance(FOREVER)
    name = (await ft.fine_tuning.jobs.retrieve(job.id)).fine_tuned_model
    assert name is not None

    status, model = await raw(emu, "GET", f"/models/{name}")
    assert 200 == status
    assert (name, "model", ORG) == (model["id"], model["object"], model["owned_by"])

    status, deleted = await raw(emu, "DELETE", f"/models/{name}")
    assert 200 == status
    assert (name, True) == (deleted["id"], deleted["deleted"])

    status, answer = await raw(emu, "GET", f"/models/{name}")
    assert 404 == status
    assert "model" == answer["error"]["param"]
    status, _ = await raw(emu, "DELETE", f"/models/{name}")
    assert 404 == status


@pytest.mark.asyncio
async def test_model_of_unfinished_job_is_absent(
    emu: Emulator, ft: AsyncClient, train_id: str
) -> None:
    """The model appears only when the job succeeds (the GET itself brings the job up to date)."""
    job = await create_small(ft, train_id, suffix="late")
    emu.advance(TO_RUNNING)
    expected = f"ft:{MODEL}:{ORG}:late:{job.id.removeprefix('ftjob-')[:8]}"
    status, _ = await raw(emu, "GET", f"/models/{expected}")
    assert 404 == status
    emu.advance(FOREVER)
    status, model = await raw(emu, "GET", f"/models/{expected}")
    assert (200, expected) == (status, model["id"])


@pytest.mark.asyncio
async def test_deleting_a_base_model_is_refused(emu: Emulator) -> None:
    """DELETE of a base model is refused and the model stays."""
    status, answer = await raw(emu, "DELETE", f"/models/{MODEL}")
    assert 403 == status
    assert "model" == answer["error"]["param"]
    status, model = await raw(emu, "GET", f"/models/{MODEL}")
    assert (200, "system") == (status, model["owned_by"])


# --- checkpoint permissions ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_checkpoint_permissions(emu: Emulator, ft: AsyncClient, train_id: str) -> None:
    """Permissions on a checkpoint: create a page, list filtered and ordered, delete."""
    job = await create_small(ft, train_id)
    emu.advance(FOREVER)
    checkpoints = [c async for c in ft.fine_tuning.jobs.checkpoints.list(job.id)]
    name = checkpoints[-1].fine_tuned_model_checkpoint
    assert name is not None
    assert name.endswith(f":ckpt-step-{SMALL_STEPS_PER_EPOCH}")
    perms = ft.fine_tuning.checkpoints.permissions

    page = await perms.create(name, project_ids=["proj_a", "proj_b"])
    assert ["proj_a", "proj_b"] == [p.project_id for p in page.data]
    assert all("checkpoint.permission" == p.object for p in page.data)
    assert len({p.id for p in page.data}) == 2
    await perms.create(name, project_ids=["proj_c"])

    assert ["proj_c", "proj_b", "proj_a"] == [p.project_id async for p in perms.list(name)]
    ascending = [p.project_id async for p in perms.list(name, order="ascending", limit=2)]
    assert ["proj_a", "proj_b", "proj_c"] == ascending
    only_b = [p async for p in perms.list(name, project_id="proj_b")]
    assert [page.data[1].id] == [p.id for p in only_b]

    deleted = await perms.delete(page.data[1].id, fine_tuned_model_checkpoint=name)
    assert (page.data[1].id, True) == (deleted.id, deleted.deleted)
    assert ["proj_c", "proj_a"] == [p.project_id async for p in perms.list(name)]
    with pytest.raises(NotFoundError):
        await perms.delete(page.data[1].id, fine_tuned_model_checkpoint=name)


@pytest.mark.asyncio
async def test_permission_for_unknown_checkpoint_is_404(ft: AsyncClient) -> None:
    """Granting access to a checkpoint that does not exist is a NotFoundError."""
    with pytest.raises(NotFoundError):
        await ft.fine_tuning.checkpoints.permissions.create(
            f"ft:{MODEL}:{ORG}::nothing1:ckpt-step-3", project_ids=["proj_a"]
        )


# --- determinism and shutdown --------------------------------------------------------------------


async def _ids_with_seed(seed: int) -> tuple[str, str, str | None]:
    async with (
        Emulator(speed=0, seed=seed) as emu,
        AsyncClient(base_url=emu.url, api_key="test") as client,
    ):
        file_id = await upload(emu, chat_file(12))
        job = await create_small(client, file_id)
        emu.advance(FOREVER)
        done = await client.fine_tuning.jobs.retrieve(job.id)
        return file_id, job.id, done.fine_tuned_model


@pytest.mark.asyncio
async def test_same_seed_same_ids() -> None:
    """Two emulators with the same seed give the same file, job and model ids; another differs."""
    first = await _ids_with_seed(99)
    assert first == await _ids_with_seed(99)
    assert first[1] != (await _ids_with_seed(100))[1]


@pytest.mark.asyncio
async def test_async_with_leaves_no_task_and_closes_the_port() -> None:
    """After ``async with Emulator()`` no task of it is left and its port refuses connections."""
    before = asyncio.all_tasks()
    async with Emulator(speed=0) as emu:
        port = emu.port
        async with AsyncClient(base_url=emu.url, api_key="test") as client:
            assert [] == [j async for j in client.fine_tuning.jobs.list()]
        await upload(emu, chat_file(12))
    assert set() == asyncio.all_tasks() - before
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
