"""Expiration policies: files.create(expires_after=...), batches.create(output_expires_after)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from finetune_async import AsyncClient, InvalidParameterError

from .conftest import BASE_URL

if TYPE_CHECKING:
    from finetune_async.emulator.pytest_plugin import EmulatorFixture

    from .conftest import MockAPI

DAY = 86_400
BATCH_LINE = (
    b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",'
    b' "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}\n'
)

BAD_POLICIES: list[tuple[Any, str]] = [
    ({"anchor": "updated_at", "seconds": DAY}, "anchor must be 'created_at'"),
    ({"anchor": "created_at", "seconds": 3599}, "from 3600 to 2592000, got 3599"),
    ({"anchor": "created_at", "seconds": 2_592_001}, "from 3600 to 2592000, got 2592001"),
    ({"anchor": "created_at", "seconds": "86400"}, "must be an integer"),
    ({"anchor": "created_at", "seconds": True}, "must be an integer"),
    ({"anchor": "created_at"}, "must be an integer from 3600 to 2592000, got None"),
    ({"anchor": "created_at", "seconds": DAY, "days": 1}, "unknown keys ['days']"),
    (DAY, "must be a dict"),
]


@pytest.mark.asyncio
async def test_upload_with_expiry_gets_expires_at(emulator: EmulatorFixture) -> None:
    """The file's ``expires_at`` is its ``created_at`` plus the seconds asked for."""
    client = emulator.client
    uploaded = await client.files.create(
        file=("in.jsonl", BATCH_LINE),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": DAY},
    )
    retrieved = await client.files.retrieve(uploaded.id)
    assert uploaded.created_at is not None
    assert uploaded.created_at + DAY == uploaded.expires_at == retrieved.expires_at


@pytest.mark.asyncio
async def test_upload_without_expiry_has_none(emulator: EmulatorFixture) -> None:
    """No policy, no ``expires_at``: the server's default applies."""
    uploaded = await emulator.client.files.create(file=("in.jsonl", BATCH_LINE), purpose="batch")
    assert None is uploaded.expires_at


@pytest.mark.asyncio
async def test_batch_with_output_expiry_is_sent_in_the_body(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """``output_expires_after`` goes in the JSON body exactly as the spec shapes it."""
    policy = {"anchor": "created_at", "seconds": 7 * DAY}
    mock_api.post(f"{BASE_URL}/batches", payload={"id": "batch_1", "status": "validating"})
    batch = await client.batches.create(
        input_file_id="file-abc123",
        endpoint="/v1/chat/completions",
        output_expires_after=policy,
    )
    ((_, _, sent),) = mock_api.calls("POST")
    assert policy == json.loads(sent["data"])["output_expires_after"]
    assert "batch_1" == batch.id


@pytest.mark.asyncio
async def test_emulator_accepts_a_batch_with_output_expiry(
    emulator: EmulatorFixture,
) -> None:
    """The emulator takes the policy and creates the batch."""
    client = emulator.client
    uploaded = await client.files.create(file=("in.jsonl", BATCH_LINE), purpose="batch")
    batch = await client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        output_expires_after={"anchor": "created_at", "seconds": DAY},
    )
    assert "validating" == batch.status


@pytest.mark.asyncio
@pytest.mark.parametrize(("policy", "message"), BAD_POLICIES)
async def test_bad_file_expiry_is_refused_before_sending(
    emulator: EmulatorFixture, policy: Any, message: str
) -> None:
    """A bad ``expires_after`` raises InvalidParameterError naming it; nothing is sent."""
    with pytest.raises(InvalidParameterError, match="expires_after") as caught:
        await emulator.client.files.create(
            file=("in.jsonl", BATCH_LINE), purpose="batch", expires_after=policy
        )
    assert message in str(caught.value)
    assert "expires_after" == caught.value.param
    assert [] == emulator.emulator.stats.requests


@pytest.mark.asyncio
@pytest.mark.parametrize(("policy", "message"), BAD_POLICIES)
async def test_bad_batch_output_expiry_is_refused_before_sending(
    emulator: EmulatorFixture, policy: Any, message: str
) -> None:
    """A bad ``output_expires_after`` raises InvalidParameterError naming it; nothing is sent."""
    with pytest.raises(InvalidParameterError, match="output_expires_after") as caught:
        await emulator.client.batches.create(
            input_file_id="file-abc123",
            endpoint="/v1/chat/completions",
            output_expires_after=policy,
        )
    assert message in str(caught.value)
    assert [] == emulator.emulator.stats.requests


@pytest.mark.asyncio
async def test_emulator_refuses_a_bad_policy_from_any_client(emulator: EmulatorFixture) -> None:
    """The emulator checks the policy too: a raw upload with seconds=60 gets a 400."""
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("expires_after[anchor]", "created_at")
    form.add_field("expires_after[seconds]", "60")
    form.add_field("file", BATCH_LINE, filename="in.jsonl")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emulator.url}/files", data=form, headers={"Authorization": "Bearer test"}
        ) as response,
    ):
        body = await response.json()
    assert 400 == response.status
    assert "from 3600 to 2592000, got 60" in body["error"]["message"]
