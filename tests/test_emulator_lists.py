"""The emulator's lists: null cursor ids on empty pages, and ``metadata=null`` for jobs."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import orjson
import pytest

from finetune_async.emulator import Emulator

AUTH = {"Authorization": "Bearer test"}
MODEL = "gpt-4o-mini-2024-07-18"
ERROR_KEYS = {"message", "type", "param", "code"}


def training_file() -> bytes:
    """A valid ten-example supervised file."""
    rows: list[dict[str, Any]] = [
        {"messages": [{"role": "user", "content": f"{i}?"}, {"role": "assistant", "content": "ok"}]}
        for i in range(10)
    ]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


class Api:
    """Raw calls to one emulator."""

    def __init__(self, emu: Emulator, http: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.http = http

    async def get(self, path: str, query: str = "") -> tuple[int, Any]:
        """GET ``path?query`` (the query sent exactly as written)."""
        url = self.emu.url + path + (f"?{query}" if query else "")
        async with self.http.get(url) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def post(self, path: str, body: object) -> Any:
        """POST JSON that must succeed."""
        async with self.http.post(self.emu.url + path, json=body) as resp:
            answer = orjson.loads(await resp.read())
            assert 200 == resp.status, answer
            return answer

    async def training_file_id(self) -> str:
        """Upload a training file."""
        form = aiohttp.FormData()
        form.add_field("purpose", "fine-tune")
        form.add_field("file", io.BytesIO(training_file()), filename="t.jsonl")
        async with self.http.post(self.emu.url + "/files", data=form) as resp:
            return str(orjson.loads(await resp.read())["id"])


async def jobs_with_and_without_metadata(api: Api) -> dict[str, str]:
    """Three jobs: tagged, untagged, and with empty metadata; their ids by name."""
    file_id = await api.training_file_id()
    ids = {}
    for name, metadata in (("tagged", {"team": "a"}), ("untagged", None), ("empty", {})):
        body: dict[str, Any] = {"model": MODEL, "training_file": file_id}
        if metadata is not None:
            body["metadata"] = metadata
        ids[name] = (await api.post("/fine_tuning/jobs", body))["id"]
    return ids


@pytest.mark.asyncio
async def test_metadata_null_lists_only_the_jobs_without_metadata() -> None:
    """``metadata=null``: the untagged job and the one with ``{}``; the other filters unchanged."""
    async with Emulator(speed=0) as emu, aiohttp.ClientSession(headers=AUTH) as http:
        api = Api(emu, http)
        ids = await jobs_with_and_without_metadata(api)
        answers = {
            query: await api.get("/fine_tuning/jobs", query)
            for query in ("metadata=null", "metadata%5Bteam%5D=a", "")
        }
    listed = {query: [job["id"] for job in body["data"]] for query, (_, body) in answers.items()}
    assert {200} == {status for status, _ in answers.values()}
    assert [ids["empty"], ids["untagged"]] == listed["metadata=null"]
    assert [ids["tagged"]] == listed["metadata%5Bteam%5D=a"]
    assert [ids["empty"], ids["untagged"], ids["tagged"]] == listed[""]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "query", ["metadata=", "metadata=none", "metadata=null&metadata%5Bteam%5D=a"]
)
async def test_any_other_plain_metadata_value_is_400_naming_metadata(query: str) -> None:
    """Only ``null`` may stand alone; anything else is refused rather than ignored."""
    async with Emulator(speed=0) as emu, aiohttp.ClientSession(headers=AUTH) as http:
        status, body = await Api(emu, http).get("/fine_tuning/jobs", query)
    assert 400 == status
    assert ERROR_KEYS == set(body["error"])
    assert "metadata" == body["error"]["param"]


@pytest.mark.asyncio
async def test_empty_pages_send_null_cursor_ids_where_the_spec_has_them() -> None:
    """Files (required), checkpoints and permissions (nullable): null; batches leave them out."""
    async with Emulator(speed=0) as emu, aiohttp.ClientSession(headers=AUTH) as http:
        api = Api(emu, http)
        files = (await api.get("/files"))[1]
        batches = (await api.get("/batches"))[1]
        ids = await jobs_with_and_without_metadata(api)
        checkpoints = (await api.get(f"/fine_tuning/jobs/{ids['tagged']}/checkpoints"))[1]
        full = await api.get("/files")
    assert ([], None, None) == (files["data"], files["first_id"], files["last_id"])
    assert {"first_id", "last_id"}.isdisjoint(batches)
    assert ([], None, None) == (
        checkpoints["data"],
        checkpoints["first_id"],
        checkpoints["last_id"],
    )
    only = full[1]["data"][0]["id"]
    assert (only, only) == (full[1]["first_id"], full[1]["last_id"])
