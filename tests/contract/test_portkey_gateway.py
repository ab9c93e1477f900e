"""``AsyncClient.for_portkey`` through the real Portkey gateway (npm, pinned) to the emulator.

The gateway runs once per session; each test starts its own emulator (clock stopped, moved by
hand) as the gateway's upstream, through ``x-portkey-custom-host``. The tests check what the SDK
gets back and what the emulator receives: the provider key, no ``x-portkey-*`` header, and the
``Idempotency-Key`` only when ``x-portkey-forward-headers`` lists it.

Gateway 1.15.2 answers list, cancel, pause and resume with a 500 although it made the upstream call
(Portkey-AI/gateway#1389, docs/compat.md). The job tests go through the workaround config (a no-op
after-request guardrail); the last tests go without it, to show the SDK never repeats such a call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson
import pytest
import pytest_asyncio

from finetune_async import AsyncClient, InternalServerError
from finetune_async.emulator import Emulator, Timing
from finetune_async.types import (
    Batch,
    BatchStatus,
    FileDeleted,
    FileObject,
    FilePurpose,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobStatus,
)
from tests.conftest import NO_BACKOFF
from tests.contract.operations import RecordingTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from finetune_async.emulator import RequestRecord
    from tests.contract.conftest import NodeServer

PROVIDER_KEY: Final = "sk-provider-contract"
BASE_MODEL: Final = "gpt-4o-mini-2024-07-18"
TIMING: Final = Timing()
EXAMPLES: Final = 10
#: With batch size 1 and 3 epochs, a 10-example job takes 30 steps and checkpoints every 10.
RUNNING_PAST_FIRST_EPOCH: Final = TIMING.validate + TIMING.queue + 15 * TIMING.step
SUPERVISED: Final = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 1}},
}
#: docs/compat.md's workaround for #1389: with an after-request hook, the gateway answers 200.
NOOP_AFTER_REQUEST: Final = [{"type": "guardrail", "id": "noop", "checks": []}]


def training_file() -> bytes:
    """A valid supervised chat file of ``EXAMPLES`` examples."""
    return b"".join(
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {i}"},
                    {"role": "assistant", "content": f"answer {i}"},
                ]
            }
        )
        + b"\n"
        for i in range(EXAMPLES)
    )


def batch_input() -> bytes:
    """A two-request chat-completions batch input file."""
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"request-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            }
        )
        + b"\n"
        for i in range(2)
    )


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emulator]:
    """The gateway's upstream: an emulator whose clock moves only by ``advance``."""
    async with Emulator(speed=0, seed=9) as emulator:
        yield emulator


def via_gateway(
    gateway: NodeServer, emu: Emulator, wire: RecordingTransport, **options: Any
) -> AsyncClient:
    """A client through the gateway to ``emu``, with the provider key sent as ``Authorization``."""
    return AsyncClient.for_portkey(
        provider="openai",
        custom_host=emu.url,
        provider_api_key=PROVIDER_KEY,
        base_url=f"{gateway.origin}/v1",
        transport=wire,
        backoff=NO_BACKOFF,
        **options,
    )


def via_gateway_config(gateway: NodeServer, emu: Emulator, wire: RecordingTransport) -> AsyncClient:
    """A client through the gateway with docs/compat.md's workaround config for #1389."""
    config = {
        "provider": "openai",
        "api_key": PROVIDER_KEY,
        "custom_host": emu.url,
        "after_request_hooks": NOOP_AFTER_REQUEST,
    }
    return AsyncClient.for_portkey(
        config=config, base_url=f"{gateway.origin}/v1", transport=wire, backoff=NO_BACKOFF
    )


def upstream(emu: Emulator) -> list[RequestRecord]:
    """What the emulator received, in arrival order."""
    return sorted(emu.stats.requests, key=lambda record: record.started)


def lower_headers(record: RequestRecord) -> dict[str, str]:
    """A received request's headers by lower-case name."""
    return {name.lower(): value for name, value in record.headers.items()}


def assert_clean_upstream(records: list[RequestRecord]) -> None:
    """Every request reached the emulator with the provider key and no gateway header."""
    assert records
    for record in records:
        headers = lower_headers(record)
        assert record.sent_header("Authorization", f"Bearer {PROVIDER_KEY}"), record.route
        assert [] == [name for name in headers if name.startswith("x-portkey")], record.route


def sent_idempotency_keys(wire: RecordingTransport) -> list[str]:
    """The ``Idempotency-Key`` of every POST the SDK sent, in order."""
    return [
        request.headers["Idempotency-Key"]
        for request, _ in wire.exchanges
        if request.method == "POST"
    ]


def received_idempotency_keys(emu: Emulator) -> list[str | None]:
    """The ``Idempotency-Key`` of every POST the emulator received (None: none came)."""
    return [
        lower_headers(record).get("idempotency-key")
        for record in upstream(emu)
        if record.method == "POST"
    ]


@pytest.mark.asyncio
async def test_files_through_the_gateway(gateway: NodeServer, emu: Emulator) -> None:
    """Upload, retrieve, list and delete come back typed; upstream sees only the provider key."""
    wire = RecordingTransport()
    data = training_file()
    async with via_gateway(gateway, emu, wire) as client:
        uploaded = await client.files.create(file=("train.jsonl", data), purpose="fine-tune")
        retrieved = await client.files.retrieve(uploaded.id)
        listed = [f async for f in client.files.list(purpose="fine-tune")]
        deleted = await client.files.delete(uploaded.id)
    assert isinstance(uploaded, FileObject)
    assert ("train.jsonl", len(data), FilePurpose.FINE_TUNE) == (
        uploaded.filename,
        uploaded.bytes,
        uploaded.purpose,
    )
    assert uploaded.id == retrieved.id
    assert [uploaded.id] == [f.id for f in listed]
    assert FileDeleted(id=uploaded.id, deleted=True, object="file") == deleted
    received = upstream(emu)
    assert [
        "POST /files",
        "GET /files/{file_id}",
        "GET /files",
        "DELETE /files/{file_id}",
    ] == [record.route for record in received]
    assert_clean_upstream(received)
    assert sent_idempotency_keys(wire) == received_idempotency_keys(emu)


@pytest.mark.asyncio
async def test_a_job_life_through_the_gateway(gateway: NodeServer, emu: Emulator) -> None:
    """Create, retrieve, list, events, checkpoints, pause, resume and cancel, typed, via config."""
    wire = RecordingTransport()
    async with via_gateway_config(gateway, emu, wire) as client:
        uploaded = await client.files.create(
            file=("train.jsonl", training_file()), purpose="fine-tune"
        )
        created = await client.fine_tuning.jobs.create(
            model=BASE_MODEL, training_file=uploaded.id, method=SUPERVISED, suffix="gateway"
        )
        emu.advance(RUNNING_PAST_FIRST_EPOCH)
        running = await client.fine_tuning.jobs.retrieve(created.id)
        listed = [job async for job in client.fine_tuning.jobs.list(limit=5)]
        events = [e async for e in client.fine_tuning.jobs.list_events(created.id, limit=100)]
        checkpoints = [c async for c in client.fine_tuning.jobs.checkpoints.list(created.id)]
        paused = await client.fine_tuning.jobs.pause(created.id)
        resumed = await client.fine_tuning.jobs.resume(created.id)
        cancelled = await client.fine_tuning.jobs.cancel(created.id)
    assert isinstance(created, FineTuningJob)
    assert (FineTuningJobStatus.VALIDATING_FILES, uploaded.id) == (
        created.status,
        created.training_file,
    )
    assert FineTuningJobStatus.RUNNING == running.status
    assert [created.id] == [job.id for job in listed]
    assert all(isinstance(event, FineTuningJobEvent) for event in events)
    assert "Fine-tuning job started" in [event.message for event in events]
    assert checkpoints
    assert all(isinstance(checkpoint, FineTuningJobCheckpoint) for checkpoint in checkpoints)
    assert {created.id} == {checkpoint.fine_tuning_job_id for checkpoint in checkpoints}
    assert [
        FineTuningJobStatus.PAUSED,
        FineTuningJobStatus.RUNNING,
        FineTuningJobStatus.CANCELLED,
    ] == [paused.status, resumed.status, cancelled.status]
    received = upstream(emu)
    assert_clean_upstream(received)
    assert sent_idempotency_keys(wire) == received_idempotency_keys(emu)
    # Cancel, pause and resume go out bodiless; the gateway sends `{}` upstream, which the
    # emulator accepts (docs/compat.md).
    actions = [r for r in received if r.route.endswith(("/pause", "/resume", "/cancel"))]
    assert [200, 200, 200] == [record.outcome for record in actions]


@pytest.mark.asyncio
async def test_batches_through_the_gateway(gateway: NodeServer, emu: Emulator) -> None:
    """Create, retrieve, list and cancel a batch, typed; upstream sees only the provider key."""
    wire = RecordingTransport()
    async with via_gateway_config(gateway, emu, wire) as client:
        uploaded = await client.files.create(file=("input.jsonl", batch_input()), purpose="batch")
        created = await client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            metadata={"suite": "contract"},
        )
        retrieved = await client.batches.retrieve(created.id)
        listed = [batch async for batch in client.batches.list(limit=5)]
        cancelled = await client.batches.cancel(created.id)
    assert isinstance(created, Batch)
    assert (BatchStatus.VALIDATING, uploaded.id, {"suite": "contract"}) == (
        created.status,
        created.input_file_id,
        created.metadata,
    )
    assert created.id == retrieved.id
    assert [created.id] == [batch.id for batch in listed]
    assert BatchStatus.CANCELLING == cancelled.status
    assert_clean_upstream(upstream(emu))
    assert sent_idempotency_keys(wire) == received_idempotency_keys(emu)


@pytest.mark.asyncio
async def test_the_idempotency_key_goes_upstream_only_when_listed_for_forwarding(
    gateway: NodeServer, emu: Emulator
) -> None:
    """``for_portkey`` lists it in ``x-portkey-forward-headers``; unlisted, the gateway drops it."""
    wire = RecordingTransport()
    async with via_gateway(gateway, emu, wire) as client:
        await client.files.create(file=("a.jsonl", training_file()), purpose="fine-tune")
        unlisted = client.with_options(default_headers={"x-portkey-forward-headers": "x-unrelated"})
        await unlisted.files.create(file=("b.jsonl", training_file()), purpose="fine-tune")
    sent = sent_idempotency_keys(wire)
    assert 2 == len(set(sent))
    assert [sent[0], None] == received_idempotency_keys(emu)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("action", "after"),
    [
        ("cancel", FineTuningJobStatus.CANCELLED),
        ("pause", FineTuningJobStatus.PAUSED),
        ("resume", FineTuningJobStatus.RUNNING),
    ],
)
async def test_a_500_after_the_upstream_call_is_not_repeated_and_says_the_outcome_is_unknown(
    gateway: NodeServer, emu: Emulator, action: str, after: FineTuningJobStatus
) -> None:
    """Gateway #1389: the job changed, the SDK got a 500, and it did not send the call again."""
    async with AsyncClient(api_key="sk-direct", base_url=emu.url) as direct:
        uploaded = await direct.files.create(file=training_file(), purpose="fine-tune")
        job = await direct.fine_tuning.jobs.create(
            model=BASE_MODEL, training_file=uploaded.id, method=SUPERVISED
        )
        emu.advance(RUNNING_PAST_FIRST_EPOCH)
        if action == "resume":
            await direct.fine_tuning.jobs.pause(job.id)
        emu.reset_stats()
        wire = RecordingTransport()
        async with via_gateway(gateway, emu, wire, max_retries=2) as client:
            with pytest.raises(InternalServerError) as caught:
                await getattr(client.fine_tuning.jobs, action)(job.id)
        now = await direct.fine_tuning.jobs.retrieve(job.id)
    error = caught.value
    assert 500 == error.status_code
    assert "true" == error.headers.get("x-portkey-gateway-exception")
    assert error.outcome_unknown
    assert "outcome is unknown" in str(error)
    assert 1 == len(wire.exchanges)
    assert [(f"POST /fine_tuning/jobs/{{fine_tuning_job_id}}/{action}", 200)] == [
        (record.route, record.outcome) for record in upstream(emu) if record.method == "POST"
    ]
    assert after == now.status  # the call took effect: repeating it would act twice


@pytest.mark.asyncio
async def test_a_500_on_a_list_is_retried_because_a_get_is_safe(
    gateway: NodeServer, emu: Emulator
) -> None:
    """The same gateway bug on a GET: retried up to ``max_retries``, then raised, never unknown."""
    wire = RecordingTransport()
    async with via_gateway(gateway, emu, wire, max_retries=2) as client:
        with pytest.raises(InternalServerError) as caught:
            await anext(aiter(client.fine_tuning.jobs.list()))
    assert 500 == caught.value.status_code
    assert not caught.value.outcome_unknown
    assert 3 == len(wire.exchanges)
    assert ["GET /fine_tuning/jobs"] * 3 == [record.route for record in upstream(emu)]
