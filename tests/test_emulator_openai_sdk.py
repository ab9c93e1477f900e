"""The official ``openai`` SDK works on the emulator: empty pages, uploads, jobs and errors.

Users point their existing openai code at the emulator, so its answers must parse there too
(``openai`` is in the tests group; the module is skipped where it is not installed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async.emulator import Emulator

openai = pytest.importorskip("openai")

if TYPE_CHECKING:
    from collections.abc import Iterator

    from openai import OpenAI

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator on its own thread (the official client is blocking)."""
    with Emulator(speed=0) as running:
        yield running


@pytest.fixture
def client(emu: Emulator) -> Iterator[OpenAI]:
    """The official client on the emulator, without retries."""
    with openai.OpenAI(base_url=emu.url, api_key="test", max_retries=0, timeout=10) as official:
        yield official


def training_file() -> bytes:
    """A valid ten-example supervised file."""
    rows: list[dict[str, Any]] = [
        {"messages": [{"role": "user", "content": f"{i}?"}, {"role": "assistant", "content": "ok"}]}
        for i in range(10)
    ]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def test_an_empty_file_list_parses_with_null_cursor_ids(client: OpenAI) -> None:
    """The empty page (``first_id``/``last_id`` null, as the spec requires them) parses."""
    page = client.files.list()
    assert ([], False) == (page.data, page.has_more)
    raw = client.files.with_raw_response.list().http_response.json()
    assert (None, None) == (raw["first_id"], raw["last_id"])


def test_upload_list_and_a_job_through_the_official_client(client: OpenAI) -> None:
    """An upload, a listing, a job and its listing by metadata come back typed."""
    uploaded = client.files.create(file=("t.jsonl", training_file()), purpose="fine-tune")
    listed = [f.id for f in client.files.list()]
    job = client.fine_tuning.jobs.create(
        model=MODEL, training_file=uploaded.id, metadata={"team": "a"}
    )
    tagged = [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "a"})]
    untagged = [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "b"})]
    events = list(client.fine_tuning.jobs.list_events(job.id))
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [uploaded.id] == listed
    assert ([job.id], []) == (tagged, untagged)
    assert "validating_files" == job.status
    assert events
    assert [] == checkpoints


def test_a_client_error_is_the_official_clients_error(client: OpenAI) -> None:
    """A 404 in the API's error shape becomes ``openai.NotFoundError`` with its code."""
    with pytest.raises(openai.NotFoundError) as caught:
        client.files.retrieve("file-nope")
    assert "file_not_found" == caught.value.code
