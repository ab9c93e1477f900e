"""Batch input written with types, run by the emulator, read back as typed results.

The emulator's clock is stopped (``speed=0``) and moved by hand, so each batch ends exactly when
the test says. Shapes the emulator never sends (a corrupt result line) come from mocked answers.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import (
    APIResponseValidationError,
    AsyncClient,
    FinetuneError,
    InvalidParameterError,
)
from finetune_async.data import BatchRequest, BatchResult, write_batch_input
from finetune_async.emulator import Timing
from finetune_async.types import Batch, BatchError
from tests.conftest import BASE_URL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from finetune_async.emulator.pytest_plugin import EmulatorFixture
    from tests.conftest import MockAPI

CHAT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
#: Enough virtual seconds to end any batch of these tests that is not meant to expire.
FOREVER = 100_000.0
BATCH_ID = "batch_abc123"
#: Bound, in seconds, of every wait of this module (the clock is moved first: one poll suffices).
BOUND = 30.0


def chat_request(custom_id: str, text: str, *, model: str | None = MODEL) -> BatchRequest:
    """A chat completion request; ``model=None`` makes a body the endpoint refuses (a 400)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    if model is not None:
        body["model"] = model
    return BatchRequest(custom_id=custom_id, body=body)


async def run_batch(
    emulator: EmulatorFixture, requests: list[BatchRequest], *, advance: float | None = FOREVER
) -> Batch:
    """Write ``requests`` with the writer, upload them, create the batch, move the clock and wait.

    With ``advance=None`` the clock stays put and the batch is returned as created.
    """
    client = emulator.client
    stream = io.BytesIO()
    summary = write_batch_input(stream, requests)
    uploaded = await client.files.create(file=stream.getvalue(), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=summary.endpoint)
    if advance is None:
        return batch
    emulator.advance(advance)
    return await client.batches.wait(batch.id, poll_interval=0.05, timeout=BOUND)


def paths_seen(emulator: EmulatorFixture) -> list[str]:
    """The paths of every request the emulator answered, in order."""
    return [record.path for record in emulator.emulator.stats.requests]


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=21)
async def test_round_trip_gives_one_typed_result_per_request(emulator: EmulatorFixture) -> None:
    """Writer -> upload -> batch -> results: every custom_id once, answers typed, 400s kept."""
    requests = [chat_request(f"q-{i}", f"question {i}") for i in range(5)]
    requests.append(chat_request("no-model", "question 5", model=None))

    batch = await run_batch(emulator, requests)
    results = [result async for result in emulator.client.batches.results(batch.id)]

    assert "completed" == batch.status
    by_id = {result.custom_id: result for result in results}
    assert len(results) == len(by_id)
    assert {request.custom_id for request in requests} == set(by_id)
    for i in range(5):
        answer = by_id[f"q-{i}"]
        assert (True, 200) == (answer.ok, answer.status_code)
        assert isinstance(answer.body, dict)
        assert "chat.completion" == answer.body["object"]
        assert f"question {i}" in answer.body["choices"][0]["message"]["content"]
        assert answer.request_id
        assert answer.id is not None
        assert answer.id.startswith("batch_req")
    refused = by_id["no-model"]
    assert (False, 400) == (refused.ok, refused.status_code)
    assert "you must provide a model parameter" == refused.error_message
    # The output file comes first, then the error file.
    assert "no-model" == results[-1].custom_id


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=22)
async def test_embeddings_round_trip(emulator: EmulatorFixture) -> None:
    """An embeddings batch built by the writer runs, and each result carries its vectors."""
    requests = [
        BatchRequest(
            custom_id="e-1",
            body={"model": "text-embedding-3-small", "input": ["a", "b"]},
            url="/v1/embeddings",
        ),
        BatchRequest(
            custom_id="e-2",
            body={"model": "text-embedding-3-small", "input": "c"},
            url="/v1/embeddings",
        ),
    ]

    batch = await run_batch(emulator, requests)
    by_id = await emulator.client.batches.results_by_id(batch.id)

    assert "/v1/embeddings" == batch.endpoint
    assert {"e-1": 2, "e-2": 1} == {key: len(result.body["data"]) for key, result in by_id.items()}


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=23)
async def test_results_by_id_keys_every_result(emulator: EmulatorFixture) -> None:
    """`results_by_id` is the results keyed by custom_id."""
    batch = await run_batch(emulator, [chat_request("a", "x"), chat_request("b", "y")])

    listed = [result async for result in emulator.client.batches.results(batch.id)]
    keyed = await emulator.client.batches.results_by_id(batch.id)

    assert {result.custom_id: result for result in listed} == keyed


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=24)
async def test_results_of_an_unfinished_batch_name_its_status(emulator: EmulatorFixture) -> None:
    """A batch still running raises a clear error with its status; no file is fetched."""
    batch = await run_batch(emulator, [chat_request("a", "x")], advance=None)
    before = len(paths_seen(emulator))

    with pytest.raises(FinetuneError) as caught:
        _ = [result async for result in emulator.client.batches.results(batch.id)]

    assert f"batch {batch.id} is validating" in str(caught.value)
    assert "batches.wait" in str(caught.value)
    assert [f"/v1/batches/{batch.id}"] == paths_seen(emulator)[before:]


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=25)
async def test_results_of_a_failed_batch_give_its_errors(emulator: EmulatorFixture) -> None:
    """A batch that failed validation has no results: the error says why, line by line."""
    client = emulator.client
    line = {"custom_id": "dup", "method": "POST", "url": CHAT, "body": {"model": MODEL}}
    # Written by hand: the writer would refuse the repeated custom_id.
    data = orjson.dumps(line) + b"\n" + orjson.dumps(line) + b"\n"
    uploaded = await client.files.create(file=data, purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT)
    emulator.advance(FOREVER)

    with pytest.raises(FinetuneError) as caught:
        _ = [result async for result in client.batches.results(batch.id)]

    assert f"batch {batch.id} failed before running any request" in str(caught.value)
    assert "line 2: duplicate custom_id 'dup'" in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=26, timing=Timing(batch_request=30_000.0))
async def test_results_of_an_expired_batch_include_requests_that_never_ran(
    emulator: EmulatorFixture,
) -> None:
    """An expired batch: answered requests, then `response: null` lines typed with their error."""
    requests = [chat_request(f"r-{i}", f"q {i}") for i in range(4)]

    batch = await run_batch(emulator, requests, advance=2 * 24 * 3600.0)
    results = [result async for result in emulator.client.batches.results(batch.id)]

    assert "expired" == batch.status
    assert ["r-0", "r-1", "r-2", "r-3"] == [result.custom_id for result in results]
    assert [True, True, False, False] == [result.ok for result in results]
    never_ran = results[-1]
    assert (None, None, None) == (never_ran.status_code, never_ran.request_id, never_ran.body)
    assert never_ran.error is not None
    assert "batch_expired" == never_ran.error.code


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=27)
async def test_a_batch_cancelled_before_running_has_no_results(emulator: EmulatorFixture) -> None:
    """Cancelled while validating: no output or error file, so no results (and no error)."""
    batch = await run_batch(emulator, [chat_request("a", "x")], advance=None)
    await emulator.client.batches.cancel(batch.id)
    emulator.advance(FOREVER)

    results = [result async for result in emulator.client.batches.results(batch.id)]

    assert "cancelled" == (await emulator.client.batches.retrieve(batch.id)).status
    assert [] == results


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=28)
async def test_leaving_early_fetches_no_further_file(emulator: EmulatorFixture) -> None:
    """A `break` in the output file stops there: the error file is never downloaded."""
    batch = await run_batch(
        emulator, [chat_request("good", "x"), chat_request("bad", "y", model=None)]
    )
    assert batch.output_file_id is not None
    assert batch.error_file_id is not None
    before = len(paths_seen(emulator))

    async for result in emulator.client.batches.results(batch.id):
        assert "good" == result.custom_id
        break

    assert [f"/v1/batches/{batch.id}", f"/v1/files/{batch.output_file_id}/content"] == (
        paths_seen(emulator)[before:]
    )


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=29)
async def test_a_large_result_file_spills_to_disk_and_reads_the_same(
    emulator: EmulatorFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an in-memory allowance of 64 bytes, the download goes to disk; results are the same."""
    batch = await run_batch(emulator, [chat_request(f"r-{i}", "x" * 100) for i in range(20)])
    in_memory = [result async for result in emulator.client.batches.results(batch.id)]
    monkeypatch.setattr("finetune_async.resources.batches._SPOOL_IN_MEMORY", 64)

    on_disk = [result async for result in emulator.client.batches.results(batch.id)]

    assert 20 == len(on_disk)
    assert in_memory == on_disk


# --- answers the emulator never gives ------------------------------------------------------------


async def drain_into(seen: list[BatchResult], results: AsyncIterator[BatchResult]) -> None:
    """Append every result to ``seen`` as it arrives, so the ones before an error are kept."""
    async for result in results:
        seen.append(result)  # noqa: PERF401 - a comprehension would lose them on the error


def completed_batch(output: str | None, errors: str | None = None) -> dict[str, Any]:
    """A completed batch's JSON with these files."""
    return {
        "id": BATCH_ID,
        "object": "batch",
        "status": "completed",
        "endpoint": CHAT,
        "output_file_id": output,
        "error_file_id": errors,
    }


@pytest.mark.asyncio
async def test_a_corrupt_result_line_raises_a_validation_error(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A line that is no result line raises `APIResponseValidationError` naming it, after line 1."""
    good = {
        "id": "batch_req_1",
        "custom_id": "a",
        "response": {"status_code": 200, "request_id": "req_1", "body": {}},
        "error": None,
    }
    mock_api.get(f"{BASE_URL}/batches/{BATCH_ID}", payload=completed_batch("file-out"))
    mock_api.get(f"{BASE_URL}/files/file-out/content", body=orjson.dumps(good) + b"\n{truncated\n")

    with pytest.raises(APIResponseValidationError) as caught:
        _ = [result async for result in client.batches.results(BATCH_ID)]

    assert "line 2 of batch result file file-out is not a result line" in str(caught.value)
    assert "{truncated" == caught.value.body


@pytest.mark.asyncio
async def test_results_stream_the_lines_before_a_corrupt_one(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """Results are yielded as lines are read: the good line arrives before the bad one raises."""
    good = {"custom_id": "a", "response": None, "error": {"code": "x", "message": "m"}}
    mock_api.get(f"{BASE_URL}/batches/{BATCH_ID}", payload=completed_batch(None, "file-err"))
    mock_api.get(f"{BASE_URL}/files/file-err/content", body=orjson.dumps(good) + b"\n[]\n")
    seen: list[BatchResult] = []

    with pytest.raises(APIResponseValidationError):
        await drain_into(seen, client.batches.results(BATCH_ID))

    assert [BatchResult(custom_id="a", error=BatchError(code="x", message="m"))] == seen


@pytest.mark.asyncio
async def test_results_of_an_empty_id_send_nothing(mock_api: MockAPI, client: AsyncClient) -> None:
    """An empty batch id raises at the call, before any request."""
    with pytest.raises(InvalidParameterError) as caught:
        client.batches.results(" ")
    with pytest.raises(InvalidParameterError):
        await client.batches.results_by_id("")

    assert "batch_id" == caught.value.param
    assert [] == mock_api.calls()
