"""``POST /files`` takes ``expires_after`` in both multipart encodings, checked the same way.

The SDK sends ``expires_after[anchor]`` and ``expires_after[seconds]`` fields; OpenAPI's default
encoding of an object in multipart/form-data is one ``expires_after`` part holding JSON (what
schemathesis and generated clients send).
"""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import orjson
import pytest

from finetune_async.emulator import Emulator

AUTH = {"Authorization": "Bearer test"}
ERROR_KEYS = {"message", "type", "param", "code"}


async def upload(emu: Emulator, **fields: tuple[str, str]) -> tuple[int, Any]:
    """Upload a small batch file with extra fields (name: (value, content type))."""
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    for name, (value, content_type) in fields.items():
        form.add_field(name, value, content_type=content_type)
    form.add_field("file", io.BytesIO(b"{}\n"), filename="data.jsonl")
    async with (
        aiohttp.ClientSession(headers=AUTH) as http,
        http.post(emu.url + "/files", data=form) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


def as_json(value: object) -> tuple[str, str]:
    """``value`` as one JSON part."""
    return orjson.dumps(value).decode(), "application/json"


def plain(value: str) -> tuple[str, str]:
    """``value`` as one text field."""
    return value, "text/plain"


@pytest.mark.asyncio
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_a_json_expires_after_part_sets_expires_at(content_type: str) -> None:
    """``{"anchor": "created_at", "seconds": 7200}`` as one part: expires two hours on."""
    policy = orjson.dumps({"anchor": "created_at", "seconds": 7200}).decode()
    async with Emulator(speed=0) as emu:
        status, body = await upload(emu, expires_after=(policy, content_type))
    assert 200 == status, body
    assert body["created_at"] + 7200 == body["expires_at"]


@pytest.mark.asyncio
async def test_the_bracketed_fields_still_set_expires_at() -> None:
    """The SDK's ``expires_after[...]`` fields give the same answer as the JSON part."""
    async with Emulator(speed=0) as emu:
        status, body = await upload(
            emu,
            **{
                "expires_after[anchor]": plain("created_at"),
                "expires_after[seconds]": plain("7200"),
            },
        )
    assert 200 == status, body
    assert body["created_at"] + 7200 == body["expires_at"]


BAD_JSON_PARTS: dict[str, tuple[str, str]] = {
    "seconds under an hour": as_json({"anchor": "created_at", "seconds": 3599}),
    "seconds over 30 days": as_json({"anchor": "created_at", "seconds": 2_592_001}),
    "seconds as a string": as_json({"anchor": "created_at", "seconds": "7200"}),
    "another anchor": as_json({"anchor": "last_active_at", "seconds": 7200}),
    "an unknown key": as_json({"anchor": "created_at", "seconds": 7200, "x": 1}),
    "a list": as_json([3600]),
    "not JSON": ("{anchor: created_at}", "application/json"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(BAD_JSON_PARTS))
async def test_a_bad_json_expires_after_part_is_400_naming_expires_after(case: str) -> None:
    """The JSON part is checked as the SDK checks its argument; nothing is stored."""
    async with Emulator(speed=0) as emu:
        status, body = await upload(emu, expires_after=BAD_JSON_PARTS[case])
        stored = dict(emu.state.files.files)
    assert 400 == status, body
    assert ERROR_KEYS == set(body["error"])
    assert "expires_after" == body["error"]["param"]
    assert {} == stored


@pytest.mark.asyncio
async def test_both_encodings_at_once_are_400() -> None:
    """A JSON part and bracketed fields together are ambiguous: 400, not one silently kept."""
    async with Emulator(speed=0) as emu:
        status, body = await upload(
            emu,
            expires_after=as_json({"anchor": "created_at", "seconds": 7200}),
            **{"expires_after[seconds]": plain("3600")},
        )
    assert 400 == status
    assert "expires_after" == body["error"]["param"]


@pytest.mark.asyncio
async def test_a_null_json_part_means_no_expiry() -> None:
    """``null`` is the JSON spelling of leaving the policy out: no ``expires_at``."""
    async with Emulator(speed=0) as emu:
        status, body = await upload(emu, expires_after=as_json(None))
    assert 200 == status, body
    assert "expires_at" not in body
