"""The blocking twins of `batches.results`, `batches.results_by_id` and `jobs.metrics`.

The emulator runs on its own thread (docs/architecture.md rule 5), with a stopped clock moved by
hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pytest

from finetune_async import Client, FinetuneError
from finetune_async.data import BatchInputWriter, parse_step_metrics
from finetune_async.emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from finetune_async.types import Batch

MODEL = "gpt-4o-mini"
FOREVER = 100_000.0


@pytest.fixture
def lab() -> Iterator[tuple[Emulator, Client]]:
    """A stopped-clock emulator on its own thread and a blocking client on it."""
    with Emulator(speed=0, seed=31) as emu, Client(api_key="test", base_url=emu.url) as client:
        yield emu, client


def chat_body(text: str, *, model: str | None = MODEL) -> dict[str, object]:
    """A chat body; without a model the endpoint answers 400."""
    body: dict[str, object] = {"messages": [{"role": "user", "content": text}]}
    if model is not None:
        body["model"] = model
    return body


def start_batch(client: Client, folder: Path, ids: list[str], *, refused: str = "") -> Batch:
    """Write a batch file to disk with the writer, upload it and create the batch."""
    path = folder / "requests.jsonl"
    with BatchInputWriter(path) as writer:
        for custom_id in ids:
            model = None if custom_id == refused else MODEL
            writer.add(custom_id=custom_id, body=chat_body(custom_id, model=model))
    uploaded = client.files.create(file=path, purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint=writer.summary.endpoint)


def test_results_is_a_plain_iterator_of_typed_results(
    lab: tuple[Emulator, Client], tmp_path: Path
) -> None:
    """`for result in client.batches.results(id)` gives every request's result, typed."""
    emu, client = lab
    batch = start_batch(client, tmp_path, ["a", "b", "c"], refused="c")
    emu.advance(FOREVER)

    results = list(client.batches.results(batch.id))

    assert [("a", True), ("b", True), ("c", False)] == [(r.custom_id, r.ok) for r in results]
    assert {r.custom_id: r for r in results} == client.batches.results_by_id(batch.id)


def test_leaving_the_iterator_early_fetches_no_further_file(
    lab: tuple[Emulator, Client], tmp_path: Path
) -> None:
    """Breaking out after the first result closes the generator: the error file is not fetched."""
    emu, client = lab
    batch = start_batch(client, tmp_path, ["a", "b"], refused="b")
    emu.advance(FOREVER)
    batch = client.batches.retrieve(batch.id)
    before = len(emu.stats.requests)

    for result in client.batches.results(batch.id):
        assert "a" == result.custom_id
        break

    paths = [record.path for record in emu.stats.requests[before:]]
    assert [f"/v1/batches/{batch.id}", f"/v1/files/{batch.output_file_id}/content"] == paths


def test_results_of_an_unfinished_batch_raise(lab: tuple[Emulator, Client], tmp_path: Path) -> None:
    """The blocking iterator raises the same clear error for a batch still validating."""
    _, client = lab
    batch = start_batch(client, tmp_path, ["a"])

    with pytest.raises(FinetuneError, match=f"batch {batch.id} is validating"):
        list(client.batches.results(batch.id))


def test_metrics_twin_reads_the_result_file(lab: tuple[Emulator, Client]) -> None:
    """`client.fine_tuning.jobs.metrics(id)` gives the parsed rows of the job's result file."""
    emu, client = lab
    examples = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(12)
    ]
    data = b"".join(orjson.dumps(example) + b"\n" for example in examples)
    uploaded = client.files.create(file=data, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=uploaded.id)
    emu.advance(FOREVER)
    finished = client.fine_tuning.jobs.retrieve(job.id)
    assert finished.result_files is not None

    rows = client.fine_tuning.jobs.metrics(job.id)

    assert parse_step_metrics(client.files.content(finished.result_files[0])) == rows
    assert 12 * 3 == len(rows)  # 12 examples, batch size 1, the emulator's 3 epochs for "auto"
