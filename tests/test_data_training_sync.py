"""The blocking ``Client.files.create(validate=...)``, against an emulator on its own thread.

Sync tests live in their own module (docs/architecture.md rule 9).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from finetune_async import Client, TrainingFileError
from finetune_async.data import validate_training_file
from finetune_async.emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Iterator

CORPUS = Path(__file__).parent / "payloads" / "training"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator on its own thread, clock stopped."""
    with Emulator(speed=0) as running:
        yield running


@pytest.fixture
def client(emu: Emulator) -> Iterator[Client]:
    """A blocking client on ``emu``."""
    with Client(base_url=emu.url, api_key="test") as sync_client:
        yield sync_client


def uploads(emu: Emulator) -> list[str]:
    """The upload requests the emulator has seen."""
    return [r.route for r in emu.stats.requests if r.route == "POST /files"]


def test_create_refuses_a_bad_file(client: Client, emu: Emulator) -> None:
    """A bad file raises TrainingFileError with the local report, and nothing is sent."""
    path = CORPUS / "bad_dpo_missing_input.jsonl"
    with pytest.raises(TrainingFileError) as caught:
        client.files.create(file=path, purpose="fine-tune", validate="dpo")
    assert validate_training_file(path, "dpo") == caught.value.report
    assert f'{path}:3: missing "input"' == str(caught.value).splitlines()[1]
    assert [] == uploads(emu)


def test_create_uploads_a_good_file(client: Client, emu: Emulator) -> None:
    """A good file is checked, then uploaded whole."""
    path = CORPUS / "good_reinforcement.jsonl"
    uploaded = client.files.create(file=path, purpose="fine-tune", validate="reinforcement")
    assert path.read_bytes() == client.files.content(uploaded.id)
    assert ["POST /files"] == uploads(emu)
