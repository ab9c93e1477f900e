"""Structuring recorded batch, file and model payloads (tests/payloads/batch_*, file_*, model_*)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune_async._converter import converter
from finetune_async.types import (
    Batch,
    BatchEndpoint,
    BatchError,
    BatchErrors,
    BatchInputTokensDetails,
    BatchOutputTokensDetails,
    BatchRequestCounts,
    BatchStatus,
    BatchUsage,
    FileDeleted,
    FileObject,
    FilePurpose,
    FileStatus,
    Model,
    ModelDeleted,
    Page,
)

PAYLOADS = Path(__file__).parent / "payloads"
PREFIXES = ("batch_", "file_", "model_")

BATCH_ID = "batch_6721f9a1c4b08190a1f3e2d4c5b6a7e8"
INPUT_FILE = "file-9GaTqHcLr2pXvS8wNmJk4e"
OUTPUT_FILE = "file-cvaTdGqR7kPz2Lm9XsWb3N"
ERROR_FILE = "file-HOWS94eJx1Vt6Ya0QpRz8K"
MODEL = "gpt-4o-mini-2024-07-18"
FT_MODEL = "ft:gpt-4o-mini-2024-07-18:org:suffix:abc123"
CREATED = 1730279841
EXPIRES = 1730366241
IN_PROGRESS = 1730279852
FINALIZING = 1730301452
METADATA = {"customer_id": "user_123456789", "batch_description": "Nightly eval job"}
TIMESTAMPS = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def load(name: str) -> Any:
    """Return the recorded payload ``name`` as parsed JSON."""
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def typed(value: object) -> tuple[object, type]:
    """Pair a value with its exact type, so a plain string cannot pass for an enum member."""
    return value, type(value)


def batch(**changes: Any) -> Batch:
    """The common fields of the recorded batches, with ``changes``."""
    fields: dict[str, Any] = {
        "id": BATCH_ID,
        "object": "batch",
        "endpoint": BatchEndpoint.CHAT_COMPLETIONS,
        "model": MODEL,
        "errors": None,
        "input_file_id": INPUT_FILE,
        "completion_window": "24h",
        "status": BatchStatus.VALIDATING,
        "output_file_id": None,
        "error_file_id": None,
        "created_at": CREATED,
        "expires_at": EXPIRES,
        "request_counts": BatchRequestCounts(total=0, completed=0, failed=0),
        "metadata": METADATA,
    }
    fields.update(changes)
    return Batch(**fields)


# --- batches --------------------------------------------------------------------------------------

BATCH_CASES: list[tuple[str, Batch]] = [
    ("batch_validating.json", batch(model=None, request_counts=None)),
    (
        "batch_failed_errors.json",
        batch(
            id="batch_67220a3e5a0481909e3c6b2a1d4f5e6a",
            status=BatchStatus.FAILED,
            model=None,
            errors=BatchErrors(
                object="list",
                data=[
                    BatchError(
                        code="invalid_json_line",
                        message="This line is not parseable as valid JSON.",
                        param=None,
                        line=1,
                    ),
                    BatchError(
                        code="mismatched_endpoint",
                        message="The endpoint specified in the line does not match the batch "
                        "endpoint.",
                        param="url",
                        line=7,
                    ),
                    BatchError(code="empty_file", message="The batch input file is empty."),
                ],
            ),
            failed_at=1730279846,
            metadata=None,
        ),
    ),
    (
        "batch_in_progress_partial.json",
        batch(
            status=BatchStatus.IN_PROGRESS,
            in_progress_at=IN_PROGRESS,
            request_counts=BatchRequestCounts(total=1000, completed=412, failed=3),
        ),
    ),
    (
        "batch_finalizing.json",
        batch(
            status=BatchStatus.FINALIZING,
            in_progress_at=IN_PROGRESS,
            finalizing_at=FINALIZING,
            request_counts=BatchRequestCounts(total=1000, completed=996, failed=4),
        ),
    ),
    (
        "batch_completed_usage.json",
        batch(
            status=BatchStatus.COMPLETED,
            output_file_id=OUTPUT_FILE,
            error_file_id=ERROR_FILE,
            in_progress_at=IN_PROGRESS,
            finalizing_at=FINALIZING,
            completed_at=1730301482,
            request_counts=BatchRequestCounts(total=1000, completed=996, failed=4),
            usage=BatchUsage(
                input_tokens=152000,
                input_tokens_details=BatchInputTokensDetails(cached_tokens=51200),
                output_tokens=48100,
                output_tokens_details=BatchOutputTokensDetails(reasoning_tokens=0),
                total_tokens=200100,
            ),
        ),
    ),
    (
        "batch_expired.json",
        batch(
            status=BatchStatus.EXPIRED,
            in_progress_at=IN_PROGRESS,
            expired_at=EXPIRES,
            output_file_id="file-Qw3rTy7uIo9pAs1dFg5hJk",
            error_file_id="file-Zx8cVb2nMl4kJh6gFd0sAq",
            request_counts=BatchRequestCounts(total=50000, completed=31877, failed=18123),
        ),
    ),
    (
        "batch_cancelling.json",
        batch(
            status=BatchStatus.CANCELLING,
            in_progress_at=IN_PROGRESS,
            cancelling_at=1730283000,
            request_counts=BatchRequestCounts(total=1000, completed=120, failed=0),
        ),
    ),
    (
        "batch_cancelled.json",
        batch(
            status=BatchStatus.CANCELLED,
            in_progress_at=IN_PROGRESS,
            cancelling_at=1730283000,
            cancelled_at=1730283313,
            output_file_id=OUTPUT_FILE,
            request_counts=BatchRequestCounts(total=1000, completed=120, failed=0),
        ),
    ),
    (
        "batch_unknown_status.json",
        batch(
            id="batch_a1b2c3d4-5e6f-4a8b-9c0d-e1f2a3b4c5d6",
            status="pending",
            endpoint=BatchEndpoint.RESPONSES,
        ),
    ),
    (
        "batch_unknown_endpoint.json",
        batch(status=BatchStatus.IN_PROGRESS, endpoint="/v1/audio/speech"),
    ),
    ("batch_minimal.json", Batch(id="batch_min", status=BatchStatus.COMPLETED)),
    (
        "batch_null_timestamps.json",
        batch(
            status=BatchStatus.IN_PROGRESS,
            created_at=None,
            expires_at=None,
            model=None,
            metadata=None,
            request_counts=BatchRequestCounts(total=3, completed=0, failed=0),
        ),
    ),
    (
        "batch_extra_keys.json",
        batch(
            status=BatchStatus.COMPLETED,
            in_progress_at=IN_PROGRESS,
            finalizing_at=FINALIZING,
            completed_at=1730301482,
            output_file_id=OUTPUT_FILE,
            request_counts=BatchRequestCounts(total=2, completed=2, failed=0),
            errors=BatchErrors(object="list", data=[]),
            usage=BatchUsage(input_tokens=10, output_tokens=4, total_tokens=14),
        ),
    ),
]

FILE_CASES: list[tuple[str, FileObject]] = [
    (
        "file_fine_tune.json",
        FileObject(
            object="file",
            id="file-BK7bzQj3FfZFXr7DbL6xJwfo",
            purpose=FilePurpose.FINE_TUNE,
            filename="mydata.jsonl",
            bytes=140,
            created_at=1613779657,
            expires_at=None,
            status=FileStatus.PROCESSED,
            status_details=None,
        ),
    ),
    (
        "file_fine_tune_results.json",
        FileObject(
            object="file",
            id="file-E8mRkQpZ2vN4sX1cT7yWb9",
            purpose=FilePurpose.FINE_TUNE_RESULTS,
            filename="step_metrics.csv",
            bytes=22741,
            created_at=1721765142,
            status=FileStatus.PROCESSED,
        ),
    ),
    (
        "file_batch_uploaded.json",
        FileObject(
            object="file",
            id=INPUT_FILE,
            purpose=FilePurpose.BATCH,
            filename="batchinput.jsonl",
            bytes=1048576,
            created_at=1730279800,
            expires_at=1732871800,
            status=FileStatus.UPLOADED,
        ),
    ),
    (
        "file_batch_output.json",
        FileObject(
            object="file",
            id=OUTPUT_FILE,
            purpose=FilePurpose.BATCH_OUTPUT,
            filename=f"{BATCH_ID}_output.jsonl",
            bytes=2048093,
            created_at=1730301470,
            expires_at=1732893470,
            status=FileStatus.PROCESSED,
        ),
    ),
    (
        "file_assistants_output.json",
        FileObject(
            object="file",
            id="file-Wq2eR4tY6uI8oP0aS1dF3g",
            purpose=FilePurpose.ASSISTANTS_OUTPUT,
            filename="chart.png",
            bytes=39822,
            created_at=1699061776,
            status=FileStatus.PROCESSED,
        ),
    ),
    (
        "file_unknown_purpose.json",
        FileObject(
            object="file",
            id="file-a1b2c3d4e5f6",
            purpose="fine-tune-synthetic",
            filename="synthetic.jsonl",
            bytes=512,
            created_at=1730000000,
            status="pending",
        ),
    ),
    (
        "file_status_error.json",
        FileObject(
            object="file",
            id="file-Er7rOrStAtUs5x9",
            purpose=FilePurpose.FINE_TUNE,
            filename="broken.jsonl",
            bytes=99,
            created_at=1730000001,
            status=FileStatus.ERROR,
            status_details="Invalid file format for Fine-Tuning API. Must be .jsonl",
        ),
    ),
    ("file_minimal.json", FileObject(id="file-min")),
]

OTHER_CASES: list[tuple[str, Any, object]] = [
    (
        "batch_list_page.json",
        Page[Batch],
        Page(
            object="list",
            data=[
                batch(id="batch_1", status=BatchStatus.COMPLETED),
                batch(id="batch_2", status="pending"),
            ],
            first_id="batch_1",
            last_id="batch_2",
            has_more=True,
        ),
    ),
    (
        "file_list_page.json",
        Page[FileObject],
        Page(
            object="list",
            data=[
                FileObject(
                    object="file",
                    id="file-1",
                    purpose=FilePurpose.VISION,
                    filename="cat.png",
                    bytes=3000,
                    created_at=1730000010,
                    status=FileStatus.PROCESSED,
                ),
                FileObject(
                    object="file",
                    id="file-2",
                    purpose=FilePurpose.USER_DATA,
                    filename="notes.pdf",
                    bytes=12000,
                    created_at=1730000005,
                    status=FileStatus.PROCESSED,
                ),
            ],
            first_id="file-1",
            last_id="file-2",
            has_more=False,
        ),
    ),
    (
        "file_list_no_has_more.json",
        Page[FileObject],
        Page(
            object="list",
            data=[
                FileObject(
                    object="file",
                    id="file-3",
                    purpose=FilePurpose.EVALS,
                    filename="eval.jsonl",
                    bytes=10,
                    created_at=1730000000,
                    status=FileStatus.PROCESSED,
                )
            ],
            has_more=None,
        ),
    ),
    (
        "file_deleted.json",
        FileDeleted,
        FileDeleted(id="file-BK7bzQj3FfZFXr7DbL6xJwfo", object="file", deleted=True),
    ),
    (
        "model_base.json",
        Model,
        Model(id=MODEL, object="model", created=1721172717, owned_by="system"),
    ),
    (
        "model_fine_tuned.json",
        Model,
        Model(id=FT_MODEL, object="model", created=1721765142, owned_by="user-abc123"),
    ),
    (
        "model_shutdown_date.json",
        Model,
        Model(
            id="gpt-3.5-turbo-0613",
            object="model",
            created=1686587434,
            owned_by="openai",
            shutdown_date="2024-09-13",
        ),
    ),
    ("model_deleted.json", ModelDeleted, ModelDeleted(id=FT_MODEL, object="model", deleted=True)),
]


def test_every_batch_file_and_model_payload_is_covered() -> None:
    """Each batch_*, file_* and model_* payload on disk has an expected record here."""
    on_disk = sorted(p.name for p in PAYLOADS.glob("*.json") if p.name.startswith(PREFIXES))
    covered = [name for name, _ in BATCH_CASES + FILE_CASES] + [name for name, _, _ in OTHER_CASES]
    assert sorted(covered) == on_disk


@pytest.mark.parametrize(("name", "expected"), BATCH_CASES, ids=[n for n, _ in BATCH_CASES])
def test_batch_payload_structures(name: str, expected: Batch) -> None:
    """Each recorded batch gives exactly the expected Batch."""
    assert expected == converter.structure(load(name), Batch)


@pytest.mark.parametrize(("name", "expected"), FILE_CASES, ids=[n for n, _ in FILE_CASES])
def test_file_payload_structures(name: str, expected: FileObject) -> None:
    """Each recorded file gives exactly the expected FileObject."""
    assert expected == converter.structure(load(name), FileObject)


@pytest.mark.parametrize(
    ("name", "into", "expected"), OTHER_CASES, ids=[n for n, _, _ in OTHER_CASES]
)
def test_list_model_and_delete_payloads_structure(name: str, into: Any, expected: object) -> None:
    """Pages, models and delete answers give exactly the expected records."""
    assert expected == converter.structure(load(name), into)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("batch_validating.json", BatchStatus.VALIDATING),
        ("batch_failed_errors.json", BatchStatus.FAILED),
        ("batch_in_progress_partial.json", BatchStatus.IN_PROGRESS),
        ("batch_finalizing.json", BatchStatus.FINALIZING),
        ("batch_completed_usage.json", BatchStatus.COMPLETED),
        ("batch_expired.json", BatchStatus.EXPIRED),
        ("batch_cancelling.json", BatchStatus.CANCELLING),
        ("batch_cancelled.json", BatchStatus.CANCELLED),
    ],
)
def test_every_documented_batch_status_is_the_enum_member(name: str, status: BatchStatus) -> None:
    """Each documented status becomes the BatchStatus member itself, not an equal string."""
    assert typed(status) == typed(converter.structure(load(name), Batch).status)


def test_every_batch_status_has_a_payload() -> None:
    """The recorded payloads cover every member of BatchStatus."""
    seen = {converter.structure(load(name), Batch).status for name, _ in BATCH_CASES}
    assert set(BatchStatus) <= seen


def test_unknown_batch_status_stays_a_plain_string() -> None:
    """An undocumented status ("pending") is kept as the str it was, not an error or a member."""
    result = converter.structure(load("batch_unknown_status.json"), Batch)
    assert typed("pending") == typed(result.status)


def test_unknown_batch_endpoint_stays_a_plain_string() -> None:
    """An endpoint outside the spec's list is kept as a str."""
    result = converter.structure(load("batch_unknown_endpoint.json"), Batch)
    assert typed("/v1/audio/speech") == typed(result.endpoint)


@pytest.mark.parametrize(("name", "_expected"), BATCH_CASES, ids=[n for n, _ in BATCH_CASES])
def test_batch_timestamps_are_kept_as_sent(name: str, _expected: Batch) -> None:
    """Every timestamp is the integer sent, or None when null or absent."""
    payload = load(name)
    result = converter.structure(payload, Batch)
    expected = {key: payload.get(key) for key in TIMESTAMPS}
    actual = {key: getattr(result, key) for key in TIMESTAMPS}
    assert expected == actual
    assert all(type(value) in {int, type(None)} for value in actual.values())


def test_completed_batch_keeps_usage_and_files() -> None:
    """A completed batch keeps its output and error files, counts and token usage."""
    result = converter.structure(load("batch_completed_usage.json"), Batch)
    assert (OUTPUT_FILE, ERROR_FILE) == (result.output_file_id, result.error_file_id)
    assert BatchRequestCounts(total=1000, completed=996, failed=4) == result.request_counts
    assert result.usage is not None
    assert result.usage.input_tokens_details is not None
    assert 51200 == result.usage.input_tokens_details.cached_tokens
    assert 200100 == result.usage.total_tokens


def test_failed_batch_keeps_each_error_line() -> None:
    """A batch that failed validation keeps the line of each error."""
    result = converter.structure(load("batch_failed_errors.json"), Batch)
    assert result.errors is not None
    assert [1, 7, None] == [error.line for error in result.errors.data]
    assert ["invalid_json_line", "mismatched_endpoint", "empty_file"] == [
        error.code for error in result.errors.data
    ]


def test_partial_request_counts_default_to_zero() -> None:
    """request_counts with only ``total`` gives zero completed and failed."""
    result = converter.structure(load("batch_null_timestamps.json"), Batch)
    assert BatchRequestCounts(total=3, completed=0, failed=0) == result.request_counts


def test_float_timestamps_are_kept_as_integers() -> None:
    """A provider's float timestamps become the integers they denote."""
    payload = {**load("batch_completed_usage.json"), "created_at": 1730279841.0}
    result = converter.structure(payload, Batch)
    assert typed(CREATED) == typed(result.created_at)


@pytest.mark.parametrize(
    "purpose",
    [
        FilePurpose.ASSISTANTS,
        FilePurpose.ASSISTANTS_OUTPUT,
        FilePurpose.BATCH,
        FilePurpose.BATCH_OUTPUT,
        FilePurpose.FINE_TUNE,
        FilePurpose.FINE_TUNE_RESULTS,
        FilePurpose.VISION,
        FilePurpose.USER_DATA,
        FilePurpose.EVALS,
    ],
)
def test_every_file_purpose_is_the_enum_member(purpose: FilePurpose) -> None:
    """Each documented purpose (uploaded or generated) becomes the FilePurpose member."""
    payload = {**load("file_fine_tune.json"), "purpose": purpose.value}
    assert typed(purpose) == typed(converter.structure(payload, FileObject).purpose)


@pytest.mark.parametrize("status", [FileStatus.UPLOADED, FileStatus.PROCESSED, FileStatus.ERROR])
def test_every_file_status_is_the_enum_member(status: FileStatus) -> None:
    """uploaded, processed and error become FileStatus members."""
    payload = {**load("file_fine_tune.json"), "status": status.value}
    assert typed(status) == typed(converter.structure(payload, FileObject).status)


def test_unknown_file_purpose_and_status_stay_plain_strings() -> None:
    """An undocumented purpose or status is kept as the str it was."""
    result = converter.structure(load("file_unknown_purpose.json"), FileObject)
    assert (typed("fine-tune-synthetic"), typed("pending")) == (
        typed(result.purpose),
        typed(result.status),
    )


def test_file_expires_at_null_and_absent_are_none() -> None:
    """expires_at is None whether sent as null or left out, and kept when sent."""
    null = converter.structure(load("file_fine_tune.json"), FileObject)
    absent = converter.structure(load("file_assistants_output.json"), FileObject)
    present = converter.structure(load("file_batch_uploaded.json"), FileObject)
    assert (None, None, 1732871800) == (null.expires_at, absent.expires_at, present.expires_at)


@pytest.mark.parametrize(
    ("payload", "into"),
    [
        ({"status": "completed"}, Batch),
        ({"id": "batch_x"}, Batch),
        ({"id": "batch_x", "status": "completed", "request_counts": [1, 2, 3]}, Batch),
        ({"id": "batch_x", "status": "failed", "errors": "boom"}, Batch),
        ({"id": "batch_x", "status": "completed", "created_at": "yesterday"}, Batch),
        ({"object": "file", "bytes": 3}, FileObject),
        ({"object": "model"}, Model),
        ({"object": "model", "deleted": True}, ModelDeleted),
        ({"data": {"id": "file-1"}}, Page[FileObject]),
    ],
)
def test_wrong_shapes_raise(payload: dict[str, Any], into: Any) -> None:
    """A missing id or status, or a field of the wrong shape, raises instead of guessing."""
    with pytest.raises(Exception):  # noqa: B017 - cattrs raises several types
        converter.structure(payload, into)


@pytest.mark.parametrize(
    ("name", "into"),
    [(name, Batch) for name, _ in BATCH_CASES] + [(name, FileObject) for name, _ in FILE_CASES],
)
def test_records_survive_an_unstructure_structure_round_trip(name: str, into: Any) -> None:
    """A structured record dumped to JSON by the converter structures back to an equal one."""
    record = converter.structure(load(name), into)
    assert record == converter.loads(converter.dumps(record), into)
