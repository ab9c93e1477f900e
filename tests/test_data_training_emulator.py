"""The emulator's ``validating_files`` and ``files.create(validate=...)`` use the local check.

A corpus file gets the same verdict, with the same message and line, from
``finetune_async.data.validate_training_file`` on disk and from a job on the emulator; a bad file
given to ``files.create(validate=...)`` raises ``TrainingFileError`` and the emulator's request
log shows no upload. The emulator's clock is stopped (``speed=0``) and moved by hand.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import InvalidParameterError, TrainingFileError
from finetune_async.data import validate_training_file
from finetune_async.emulator import Timing

if TYPE_CHECKING:
    from finetune_async.emulator.pytest_plugin import EmulatorFixture
    from finetune_async.resources.files import Validate
    from finetune_async.types import FineTuningJob

CORPUS = Path(__file__).parent / "payloads" / "training"
EXPECTED: dict[str, dict[str, Any]] = orjson.loads((CORPUS / "expected.json").read_bytes())
MODEL = "gpt-4o-mini-2024-07-18"
VALIDATE = Timing().validate
PREFIX = "The job failed due to an invalid training file. "


def has_errors(entry: dict[str, Any]) -> bool:
    """Whether a corpus entry expects an error."""
    return any(p["severity"] == "error" for p in entry["problems"])


BAD_FILES = sorted(name for name, entry in EXPECTED.items() if has_errors(entry))
GOOD_FILES = sorted(name for name, entry in EXPECTED.items() if not has_errors(entry))


def method_body(method: str) -> dict[str, Any] | None:
    """The ``method`` of a job create for ``method`` (None: supervised by default)."""
    if method == "supervised":
        return None
    if method == "dpo":
        return {"type": "dpo", "dpo": {}}
    grader = {"type": "string_check", "name": "g", "input": "{{sample.output_text}}",
              "reference": "{{item.reference_answer}}", "operation": "eq"}  # fmt: skip
    return {"type": "reinforcement", "reinforcement": {"grader": grader}}


async def validated_job(emulator: EmulatorFixture, path: Path, method: str) -> FineTuningJob:
    """Upload ``path`` unchecked, start a job on it and return it once validation is over."""
    client = emulator.client
    uploaded = await client.files.create(file=path, purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model=MODEL, training_file=uploaded.id, method=method_body(method)
    )
    emulator.advance(VALIDATE)
    return await client.fine_tuning.jobs.retrieve(job.id)


def uploads(emulator: EmulatorFixture) -> list[str]:
    """The upload requests the emulator has seen."""
    return [r.route for r in emulator.emulator.stats.requests if r.route == "POST /files"]


# --- the emulator's validating_files --------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_FILES)
@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_bad_file_fails_the_job_with_the_local_message(
    emulator: EmulatorFixture, name: str
) -> None:
    """The job fails with the local report's first error, its line included."""
    entry = EXPECTED[name]
    job = await validated_job(emulator, CORPUS / name, entry["method"])
    (problem,) = entry["problems"]
    where = "" if problem["line"] is None else f"line {problem['line']}: "
    assert "failed" == job.status
    assert job.error is not None
    assert ("invalid_training_file", "training_file") == (job.error.code, job.error.param)
    assert PREFIX + where + problem["message"] == job.error.message
    local = validate_training_file(CORPUS / name, entry["method"]).errors[0]
    assert problem["message"] == local.message


@pytest.mark.parametrize("name", GOOD_FILES)
@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_good_file_passes_validation(emulator: EmulatorFixture, name: str) -> None:
    """A file without errors (warnings allowed) moves the job on to ``queued``."""
    job = await validated_job(emulator, CORPUS / name, EXPECTED[name]["method"])
    assert ("queued", None) == (job.status, job.error)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_the_job_counts_the_other_problems(emulator: EmulatorFixture, tmp_path: Path) -> None:
    """Several errors: the first is quoted and the rest counted, as the local report has them."""
    path = tmp_path / "train.jsonl"
    good = (CORPUS / "good_supervised.jsonl").read_bytes()
    path.write_bytes(b"[]\n" + good + b"{\n" + b'{"messages": []}\n')
    job = await validated_job(emulator, path, "supervised")
    assert job.error is not None
    expected = PREFIX + "line 1: expected a JSON object, got an array (and 2 more problems)"
    assert expected == job.error.message


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_the_job_runs_on_the_examples_the_check_counted(
    emulator: EmulatorFixture, tmp_path: Path
) -> None:
    """Steps come from the summary's example count: 25 examples, batch 5, 1 epoch = 5 steps."""
    path = tmp_path / "train.jsonl"
    line = (CORPUS / "good_supervised.jsonl").read_bytes().splitlines()[0]
    path.write_bytes((line + b"\n") * 25)
    client = emulator.client
    uploaded = await client.files.create(file=path, purpose="fine-tune")
    method = {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 5}},
    }
    job = await client.fine_tuning.jobs.create(
        model=MODEL, training_file=uploaded.id, method=method
    )
    emulator.advance(100_000)
    done = await client.fine_tuning.jobs.retrieve(job.id)
    checkpoints = [c async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    assert ("succeeded", 5) == (done.status, max(c.step_number or 0 for c in checkpoints))
    assert validate_training_file(path).summary.estimated_tokens == done.trained_tokens


# --- files.create(validate=...) -------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_refuses_a_bad_file(emulator: EmulatorFixture) -> None:
    """``validate=True``: TrainingFileError listing ``PATH:LINE: message``; nothing sent."""
    path = CORPUS / "bad_empty_content.jsonl"
    with pytest.raises(TrainingFileError) as caught:
        await emulator.client.files.create(file=path, purpose="fine-tune", validate=True)
    error = caught.value
    expected = (
        f"{path} is not a valid supervised training file (1 error); nothing was uploaded:\n"
        f"{path}:10: messages[2]: empty content"
    )
    assert expected == str(error)
    assert ("file", validate_training_file(path)) == (error.param, error.report)
    assert isinstance(error, ValueError)
    assert [] == uploads(emulator)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_lists_the_first_five_errors(
    emulator: EmulatorFixture, tmp_path: Path
) -> None:
    """Past five errors the message says how many more; ``report`` has them all."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"1\n" * 8)
    with pytest.raises(TrainingFileError) as caught:
        await emulator.client.files.create(file=path, purpose="fine-tune", validate="dpo")
    lines = str(caught.value).splitlines()
    assert f"{path} is not a valid dpo training file (9 errors); nothing was uploaded:" == lines[0]
    assert [f"{path}:{n}: expected a JSON object, got a number" for n in range(1, 6)] == lines[1:6]
    assert ["... and 4 more"] == lines[6:]
    assert 9 == len(caught.value.report.errors)
    assert [] == uploads(emulator)


@pytest.mark.parametrize(
    ("method", "name"),
    [
        (True, "good_supervised.jsonl"),
        ("dpo", "good_dpo.jsonl"),
        ("reinforcement", "good_reinforcement.jsonl"),
    ],
)
@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_uploads_a_good_file(
    emulator: EmulatorFixture, method: Validate, name: str
) -> None:
    """A file good for the method asked is uploaded whole."""
    path = CORPUS / name
    client = emulator.client
    uploaded = await client.files.create(file=path, purpose="fine-tune", validate=method)
    assert path.read_bytes() == await client.files.content(uploaded.id)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_checks_for_the_method_asked(emulator: EmulatorFixture) -> None:
    """A good DPO file is a bad supervised one: ``validate=True`` refuses it."""
    with pytest.raises(TrainingFileError) as caught:
        await emulator.client.files.create(
            file=CORPUS / "good_dpo.jsonl", purpose="fine-tune", validate=True
        )
    assert "supervised" == caught.value.report.method
    assert [] == uploads(emulator)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_checks_bytes(emulator: EmulatorFixture) -> None:
    """Bytes are checked from memory, under the upload's name."""
    data = (CORPUS / "bad_weight_value.jsonl").read_bytes()
    with pytest.raises(TrainingFileError) as caught:
        await emulator.client.files.create(
            file=("mine.jsonl", data), purpose="fine-tune", validate=True
        )
    assert ['mine.jsonl:4: messages[2]: "weight" must be 0 or 1, got 0.5'] == (
        caught.value.report.rendered()
    )
    assert [] == uploads(emulator)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_checks_a_file_object_and_sends_it_whole(emulator: EmulatorFixture) -> None:
    """A file object is read for the check, then sent from where it was."""
    data = (CORPUS / "good_supervised.jsonl").read_bytes()
    handle = io.BytesIO(b"ignored prefix" + data)
    handle.seek(len(b"ignored prefix"))
    client = emulator.client
    uploaded = await client.files.create(file=handle, purpose="fine-tune", validate=True)
    assert data == await client.files.content(uploaded.id)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_rewinds_a_refused_file_object(emulator: EmulatorFixture) -> None:
    """A refused file object is left where it was."""
    handle = io.BytesIO((CORPUS / "bad_too_few.jsonl").read_bytes())
    with pytest.raises(TrainingFileError) as caught:
        await emulator.client.files.create(file=handle, purpose="fine-tune", validate=True)
    assert (0, "upload") == (handle.tell(), caught.value.report.path)
    assert [] == uploads(emulator)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_refuses_to_check_a_pipe(emulator: EmulatorFixture) -> None:
    """A file object that cannot seek cannot be both checked and sent: bad input, nothing read."""
    read_end, write_end = os.pipe()
    os.write(write_end, (CORPUS / "good_supervised.jsonl").read_bytes())
    os.close(write_end)
    with open(read_end, "rb") as pipe:  # noqa: PTH123 - a descriptor, not a path
        with pytest.raises(InvalidParameterError) as caught:
            await emulator.client.files.create(file=pipe, purpose="fine-tune", validate=True)
        assert b"{" == pipe.read(1)
    assert "validate" == caught.value.param
    assert not isinstance(caught.value, TrainingFileError)
    assert [] == uploads(emulator)


@pytest.mark.parametrize(
    ("purpose", "validate", "message"),
    [
        (
            "batch",
            True,
            "validate: only a fine-tune upload is training data, and purpose is 'batch'",
        ),
        (
            "fine-tune",
            "sft",
            (
                "validate: must be True, False or one of 'supervised', 'dpo', 'reinforcement',"
                " got 'sft'"
            ),
        ),
        (
            "fine-tune",
            None,
            (
                "validate: must be True, False or one of 'supervised', 'dpo', 'reinforcement',"
                " got None"
            ),
        ),
    ],
)
@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_bad_validate_argument(
    emulator: EmulatorFixture, purpose: str, validate: Any, message: str
) -> None:
    """A ``validate`` that cannot apply is bad input, raised before anything is read or sent."""
    with pytest.raises(InvalidParameterError) as caught:
        await emulator.client.files.create(
            file=CORPUS / "good_supervised.jsonl", purpose=purpose, validate=validate
        )
    assert (message, "validate") == (str(caught.value), caught.value.param)
    assert [] == uploads(emulator)


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0)
async def test_create_without_validate_sends_a_bad_file(emulator: EmulatorFixture) -> None:
    """The check is opt-in: without it a bad file is uploaded, as before."""
    await emulator.client.files.create(file=CORPUS / "bad_empty.jsonl", purpose="fine-tune")
    assert ["POST /files"] == uploads(emulator)
