"""A job's result file (step-metrics CSV) read into typed rows, locally and with `jobs.metrics`.

The pure parser is fed the column sets seen in the wild; `jobs.metrics` is run against the
emulator (a job run to success on a stopped clock moved by hand) and against mocked answers for
the shapes the emulator never sends.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import (
    APIResponseValidationError,
    AsyncClient,
    FinetuneError,
    InvalidParameterError,
)
from finetune_async.data import StepMetrics, parse_step_metrics
from tests.conftest import BASE_URL

if TYPE_CHECKING:
    from finetune_async.emulator.pytest_plugin import EmulatorFixture
    from tests.conftest import MockAPI

MODEL = "gpt-4o-mini-2024-07-18"
#: Enough virtual seconds to end any job of these tests.
FOREVER = 100_000.0
JOB_ID = "ftjob-abc123"

#: The emulator's and older OpenAI jobs' columns.
OLD_CSV = """step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy
1,2.1033,0.191,2.2716,0.1853
2,1.5,0.4,,
"""
#: Newer OpenAI jobs' columns: validation cells empty at steps without validation.
NEW_CSV = (
    "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy,"
    "full_valid_loss,full_valid_mean_token_accuracy\n"
    "1,1.9,0.55,,,,\n"
    "2,1.2,0.7,1.3,0.68,,\n"
    "3,0.8,0.81,0.9,0.79,0.95,0.77\n"
)


def training_jsonl(examples: int) -> bytes:
    """A valid supervised training file."""
    lines = [
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {i}?"},
                    {"role": "assistant", "content": f"answer {i}."},
                ]
            }
        )
        for i in range(examples)
    ]
    return b"\n".join(lines) + b"\n"


# --- the parser -------------------------------------------------------------------------------


def test_old_columns_parse_with_missing_ones_none() -> None:
    """The emulator's columns fill their fields; empty cells and absent columns are None."""
    expected = [
        StepMetrics(
            step=1,
            train_loss=2.1033,
            train_accuracy=0.191,
            valid_loss=2.2716,
            valid_mean_token_accuracy=0.1853,
        ),
        StepMetrics(step=2, train_loss=1.5, train_accuracy=0.4),
    ]

    assert expected == parse_step_metrics(OLD_CSV)


def test_new_columns_parse_with_empty_cells_none() -> None:
    """Newer files' `train_mean_token_accuracy` and `full_valid_*` columns, blanks as None."""
    expected = [
        StepMetrics(step=1, train_loss=1.9, train_mean_token_accuracy=0.55),
        StepMetrics(
            step=2,
            train_loss=1.2,
            train_mean_token_accuracy=0.7,
            valid_loss=1.3,
            valid_mean_token_accuracy=0.68,
        ),
        StepMetrics(
            step=3,
            train_loss=0.8,
            train_mean_token_accuracy=0.81,
            valid_loss=0.9,
            valid_mean_token_accuracy=0.79,
            full_valid_loss=0.95,
            full_valid_mean_token_accuracy=0.77,
        ),
    ]

    assert expected == parse_step_metrics(NEW_CSV.encode())


def test_only_step_is_required() -> None:
    """A file with a step column alone gives rows of steps and nothing else."""
    assert [StepMetrics(step=1), StepMetrics(step=2)] == parse_step_metrics("step\n1\n2\n")


def test_unknown_columns_are_kept_as_text_in_extra() -> None:
    """A column the record does not know is kept by name, as text; its empty cells are left out."""
    content = "step,train_loss,elapsed_tokens,phase\n1,0.5,1024,warmup\n2,0.4,,\n"

    rows = parse_step_metrics(content)

    assert [{"elapsed_tokens": "1024", "phase": "warmup"}, {}] == [row.extra for row in rows]
    assert [0.5, 0.4] == [row.train_loss for row in rows]


def test_base64_content_parses_like_plain() -> None:
    """OpenAI serves result files base64-encoded: decoded first, so the rows are the same."""
    encoded = base64.encodebytes(NEW_CSV.encode())

    assert parse_step_metrics(NEW_CSV) == parse_step_metrics(encoded)


def test_bom_crlf_blank_lines_and_spaced_header() -> None:
    """A byte order mark, CRLF line ends, blank lines and spaces around names are tolerated."""
    content = "\ufeffstep , Train_Loss\r\n\r\n1, 0.5\r\n2,0.25\r\n\r\n".encode()

    expected = [StepMetrics(step=1, train_loss=0.5), StepMetrics(step=2, train_loss=0.25)]
    assert expected == parse_step_metrics(content)


def test_a_short_row_leaves_its_last_columns_none() -> None:
    """A row with fewer cells than the header has None for the missing ones."""
    assert [StepMetrics(step=4, train_loss=0.3)] == parse_step_metrics(
        "step,train_loss,valid_loss\n4,0.3\n"
    )


def test_whole_float_step_is_an_int() -> None:
    """A step written `3.0` is step 3."""
    assert [3] == [row.step for row in parse_step_metrics("step,train_loss\n3.0,0.1\n")]


BAD_FILES = {
    "no step column": ("train_loss,valid_loss\n0.5,0.6\n", "must name a 'step' column"),
    "empty": ("", "got nothing"),
    "a JSON file": ('{"step": 1}\n', "must name a 'step' column"),
    "text in a metric": ("step,train_loss\n1,0.5\n2,high\n", "line 3: train_loss must be a number"),
    "fractional step": ("step,train_loss\n1.5,0.5\n", "line 2: step must be a whole number"),
    "empty step": ("step,train_loss\n,0.5\n", "line 2: step is empty"),
}


@pytest.mark.parametrize(("content", "phrase"), BAD_FILES.values(), ids=BAD_FILES)
def test_bad_file_raises_naming_the_problem(content: str, phrase: str) -> None:
    """A file that is not a step-metrics CSV raises a clear error naming the line and column."""
    with pytest.raises(InvalidParameterError) as caught:
        parse_step_metrics(content)

    assert phrase in str(caught.value)
    assert "content" == caught.value.param


# --- jobs.metrics against the emulator ----------------------------------------------------------


async def finished_job(emulator: EmulatorFixture, examples: int = 10) -> str:
    """Run a one-epoch job to success on the stopped clock and return its id."""
    client = emulator.client
    uploaded = await client.files.create(file=training_jsonl(examples), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=uploaded.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
    )
    emulator.advance(FOREVER)
    assert "succeeded" == (await client.fine_tuning.jobs.retrieve(job.id)).status
    return job.id


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=5)
async def test_metrics_of_an_emulated_job_are_its_result_file(emulator: EmulatorFixture) -> None:
    """`jobs.metrics` gives one row per step of the result file, with the emulator's columns."""
    client = emulator.client
    job_id = await finished_job(emulator, examples=10)
    job = await client.fine_tuning.jobs.retrieve(job_id)
    assert job.result_files is not None
    content = await client.files.content(job.result_files[0])

    rows = await client.fine_tuning.jobs.metrics(job_id)

    assert parse_step_metrics(content) == rows
    assert list(range(1, 11)) == [row.step for row in rows]
    for row in rows:
        assert None not in (row.train_loss, row.train_accuracy, row.valid_loss)
        assert (None, None, {}) == (row.full_valid_loss, row.train_mean_token_accuracy, row.extra)
    assert rows[-1].train_loss is not None
    assert rows[0].train_loss is not None
    assert rows[-1].train_loss < rows[0].train_loss


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=6)
async def test_metrics_rows_match_the_jobs_metrics_events(emulator: EmulatorFixture) -> None:
    """Each row's training loss is the one the job's `metrics` event reported for that step."""
    client = emulator.client
    job_id = await finished_job(emulator)

    rows = await client.fine_tuning.jobs.metrics(job_id)
    reported = {
        event.data["step"]: event.data["train_loss"]
        async for event in client.fine_tuning.jobs.list_events(job_id, limit=100)
        if event.type == "metrics" and isinstance(event.data, dict)
    }

    assert reported == {row.step: row.train_loss for row in rows}


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=7)
async def test_metrics_of_an_unfinished_job_name_its_status(emulator: EmulatorFixture) -> None:
    """A job without a result file yet raises a clear error that gives its status."""
    client = emulator.client
    uploaded = await client.files.create(file=training_jsonl(10), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)

    with pytest.raises(FinetuneError) as caught:
        await client.fine_tuning.jobs.metrics(job.id)

    assert f"job {job.id} has no result file: it is validating_files" in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_metrics_of_an_empty_id_send_nothing(emulator: EmulatorFixture) -> None:
    """An empty job id raises before any request reaches the server."""
    before = len(emulator.emulator.stats.requests)

    with pytest.raises(InvalidParameterError) as caught:
        await emulator.client.fine_tuning.jobs.metrics("")

    assert "job_id" == caught.value.param
    assert before == len(emulator.emulator.stats.requests)


# --- jobs.metrics against answers the emulator never gives --------------------------------------


def job_json(result_files: list[str]) -> dict[str, Any]:
    """A succeeded job with these result files."""
    return {
        "id": JOB_ID,
        "object": "fine_tuning.job",
        "status": "succeeded",
        "result_files": result_files,
    }


@pytest.mark.asyncio
async def test_metrics_pick_the_csv_among_several_result_files(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """With several result files, the one named `.csv` is read."""
    mock_api.get(f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}", payload=job_json(["file-a", "file-b"]))
    mock_api.get(f"{BASE_URL}/files/file-a", payload={"id": "file-a", "filename": "log.jsonl"})
    mock_api.get(
        f"{BASE_URL}/files/file-b", payload={"id": "file-b", "filename": "step_metrics.csv"}
    )
    mock_api.get(f"{BASE_URL}/files/file-b/content", body=OLD_CSV.encode())

    rows = await client.fine_tuning.jobs.metrics(JOB_ID)

    assert parse_step_metrics(OLD_CSV) == rows
    assert 0 == len([c for c in mock_api.calls() if c[1].endswith("/file-a/content")])


@pytest.mark.asyncio
async def test_metrics_of_a_file_that_is_no_csv_raise_a_validation_error(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A result file the parser cannot read is a bad answer: `APIResponseValidationError`."""
    mock_api.get(f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}", payload=job_json(["file-a"]))
    mock_api.get(f"{BASE_URL}/files/file-a/content", body=b"<html>not here</html>")

    with pytest.raises(APIResponseValidationError) as caught:
        await client.fine_tuning.jobs.metrics(JOB_ID)

    assert "the result file file-a of job ftjob-abc123 is not a step-metrics CSV" in str(
        caught.value
    )
    assert "<html>not here</html>" == caught.value.body
