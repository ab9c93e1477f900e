"""Uploads, downloads and retried calls against servers that cut, stall or lie.

The audit's transfer probes: a file that shrinks while it is uploaded, a caller's file object
retried after a 429, a download cut half-way with no length, a download slower than the total
timeout, ``x-should-retry: true`` on a create, and a DELETE retried after a cut.
"""

from __future__ import annotations

import asyncio
import io
import os
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import pytest
from aiohttp import web

from finetune_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    FinetuneError,
    InternalServerError,
    NotFoundError,
    Timeout,
)
from finetune_async.emulator import Emulator
from finetune_async.types import FileDeleted, ModelDeleted
from tests.conftest import NO_BACKOFF, LoopbackServer
from tests.hostile import Answer, RawRequest, RawServer, fixed, json_answer

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from pathlib import Path

T = TypeVar("T")

FILE = {
    "object": "file",
    "id": "file-abc",
    "bytes": 10_000,
    "created_at": 1721764800,
    "filename": "train.jsonl",
    "purpose": "fine-tune",
    "status": "processed",
}
JOB = {
    "object": "fine_tuning.job",
    "id": "ftjob-1",
    "model": "gpt-4o-mini",
    "created_at": 1721764800,
    "status": "queued",
    "training_file": "file-abc",
}


async def bounded(call: Awaitable[T], seconds: float = 20) -> T:
    """Await a call, failing the test instead of hanging."""
    return await asyncio.wait_for(call, seconds)


def client_for(url: str, **options: Any) -> AsyncClient:
    return AsyncClient(api_key="sk-test", base_url=url, backoff=NO_BACKOFF, **options)


# --- uploads ------------------------------------------------------------------------------------


class ShrinkingFile(io.BytesIO):
    """A file whose end moves in while it is read: it says 10,000 bytes and gives 1,000."""

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, 1000 - self.tell())
        wanted = left if size is None or size < 0 else min(size, left)
        return super().read(wanted)


@pytest.mark.asyncio
async def test_an_upload_whose_file_shrinks_fails_at_once_and_says_so() -> None:
    """The short read raises a clear error at once, not a timeout with an unknown outcome."""
    # A total timeout far longer than the test: only the short-read check can end it.
    async with (
        RawServer(fixed(json_answer(orjson.dumps(FILE)))) as server,
        client_for(server.url, timeout=300) as client,
    ):
        shrinking = ShrinkingFile(b"x" * 10_000)
        with pytest.raises(FinetuneError) as caught:
            await bounded(
                client.files.create(file=("train.jsonl", shrinking), purpose="fine-tune"),
                seconds=10,
            )
    exc = caught.value
    assert not isinstance(exc, APIConnectionError)  # not retried, and its outcome is known
    assert "train.jsonl: the file shrank while it was being uploaded" in str(exc)
    assert "1,000 of 10,000 bytes" in str(exc)
    assert "nothing was created" in str(exc)
    # The server never got a whole request.
    assert all(not request.complete for request in server.requests)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["disk file", "BytesIO"])
async def test_a_retried_upload_resends_a_callers_file_from_its_start_and_leaves_it_open(
    kind: str, tmp_path: Path
) -> None:
    """After a 429 the same file object is sent again from where it was, and never closed."""
    too_many = json_answer(
        b'{"error": {"message": "slow down"}}',
        status="429 Too Many Requests",
        extra="Retry-After: 0.01\r\n",
    )
    content = b"HEAD" + b"payload-line\n" * 50
    source = tmp_path / "train.jsonl"
    source.write_bytes(content)
    with source.open("rb") if kind == "disk file" else io.BytesIO(content) as handle:
        handle.seek(4)
        async with (
            RawServer(
                fixed(too_many, close=False), fixed(json_answer(orjson.dumps(FILE)))
            ) as server,
            client_for(server.url) as client,
        ):
            created = await bounded(
                client.files.create(file=("train.jsonl", handle), purpose="fine-tune")
            )
        assert handle.closed is False
        handle.seek(0)
        assert content == handle.read()  # the caller's file is still usable
    assert "file-abc" == created.id
    assert 2 == len(server.requests)
    for request in server.requests:
        # Sent from the caller's position, whole, both times.
        assert b"\r\n\r\n" + b"payload-line\n" * 50 + b"\r\n--" in request.body
        assert b"HEAD" not in request.body


@pytest.mark.asyncio
async def test_an_upload_from_a_path_closes_the_file_it_opened(tmp_path: Path) -> None:
    """A path is opened by the SDK, so the SDK closes it (no ResourceWarning under -W error)."""
    source = tmp_path / "train.jsonl"
    source.write_bytes(b'{"a": 1}\n' * 100)
    async with (
        RawServer(fixed(json_answer(orjson.dumps(FILE)))) as server,
        client_for(server.url) as client,
    ):
        await bounded(client.files.create(file=source, purpose="fine-tune"))
    assert b'{"a": 1}\n' * 100 in server.requests[0].body


# --- downloads ----------------------------------------------------------------------------------

DATA = bytes(range(256)) * 4096  # 1 MiB


def cut_without_length() -> bytes:
    """A close-delimited answer that stops half-way: it looks complete to the client."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
    return head + DATA[: len(DATA) // 2]


def content_and_description(content: bytes) -> Answer:
    """Answer ``/content`` with ``content`` (then close: no length), anything else the file."""
    described = orjson.dumps({**FILE, "bytes": len(DATA)})

    async def answer(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(content if request.path.endswith("/content") else json_answer(described))
        await writer.drain()
        if request.path.endswith("/content"):
            writer.close()

    return answer


@pytest.mark.asyncio
async def test_a_download_cut_half_way_without_a_length_is_caught_by_the_files_size(
    tmp_path: Path,
) -> None:
    """files.download compares what came with the file's bytes, and leaves no .part file."""
    target = tmp_path / "out.bin"
    answer = content_and_description(cut_without_length())
    async with RawServer(answer) as server, client_for(server.url) as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(client.files.download("file-abc", target))
    assert "ended after 524,288 bytes but the file has 1,048,576" in str(caught.value)
    assert [] == list(tmp_path.iterdir())  # neither the target nor a .part file


@pytest.mark.asyncio
async def test_a_download_without_a_length_that_is_whole_passes(tmp_path: Path) -> None:
    """The same check accepts a close-delimited answer that did carry every byte."""
    target = tmp_path / "out.bin"
    answer = content_and_description(b"HTTP/1.1 200 OK\r\n\r\n" + DATA)
    async with RawServer(answer) as server, client_for(server.url) as client:
        await bounded(client.files.download("file-abc", target))
    assert DATA == target.read_bytes()


@pytest.mark.asyncio
async def test_a_resumed_answer_shorter_than_its_range_is_retried(tmp_path: Path) -> None:
    """A 206 that ends before its Content-Range end is a cut: the next attempt resumes."""
    half = len(DATA) // 2
    answers = [
        # A whole-file promise cut half-way (aiohttp sees the short Content-Length).
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(DATA)}\r\n\r\n".encode() + DATA[:half],
        # A close-delimited 206 for the rest that also stops short.
        f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {half}-{len(DATA) - 1}/"
        f"{len(DATA)}\r\n\r\n".encode()
        + DATA[half : half + 1000],
        # Then the rest, properly.
        f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {half + 1000}-{len(DATA) - 1}/"
        f"{len(DATA)}\r\nContent-Length: {len(DATA) - half - 1000}\r\n\r\n".encode()
        + DATA[half + 1000 :],
    ]
    target = tmp_path / "out.bin"
    async with (
        RawServer(*(fixed(a) for a in answers)) as server,
        client_for(server.url, max_retries=3) as client,
    ):
        await bounded(client.files.download("file-abc", target))
    assert DATA == target.read_bytes()
    ranges = [r.headers.get("range") for r in server.requests]
    assert [None, f"bytes={half}-", f"bytes={half + 1000}-"] == ranges


@pytest.mark.asyncio
async def test_a_download_still_moving_outlives_the_total_timeout(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A download is bounded between reads, not as a whole: a slow, steady one completes."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = 10 * 1000
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"z" * 1000)
            await asyncio.sleep(0.1)
        return response

    loopback.route("GET", "/files/file-abc/content", trickle)
    await loopback.start()
    target = tmp_path / "slow.bin"
    async with client_for(loopback.url, timeout=Timeout(total=0.4, read=5.0)) as client:
        await bounded(client.files.download("file-abc", target))
    assert b"z" * 10_000 == target.read_bytes()


@pytest.mark.asyncio
async def test_a_stalled_download_fails_on_the_read_timeout(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A download that stops sending fails after `read`, and leaves no file behind."""

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 5000
        await response.prepare(request)
        await response.write(b"z" * 100)
        await asyncio.sleep(30)
        return response

    loopback.route("GET", "/files/file-abc/content", stall)
    await loopback.start()
    target = tmp_path / "stalled.bin"
    async with client_for(
        loopback.url, timeout=Timeout(total=None, read=0.3), max_retries=1
    ) as client:
        with pytest.raises(APITimeoutError):
            await bounded(client.files.download("file-abc", target), seconds=10)
    assert 2 == len(loopback.requests)
    assert [] == list(tmp_path.iterdir())


# --- retries and outcomes -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_x_should_retry_true_on_a_5xx_create_does_not_resend_it() -> None:
    """A create answered 500 + `x-should-retry: true` is sent once; its outcome is unknown."""
    failed = json_answer(
        b'{"error": {"message": "boom"}}',
        status="500 Internal Server Error",
        extra="x-should-retry: true\r\n",
    )
    async with RawServer(fixed(failed, close=False)) as server, client_for(server.url) as client:
        with pytest.raises(InternalServerError) as caught:
            await bounded(client.fine_tuning.jobs.create(model="m", training_file="file-abc"))
    assert 1 == len(server.requests)
    assert caught.value.outcome_unknown is True
    assert "outcome is unknown" in str(caught.value)


@pytest.mark.asyncio
async def test_x_should_retry_true_on_a_refused_create_resends_it_with_the_same_key() -> None:
    """A 409 + `x-should-retry: true` proves nothing was made: resent with the same key."""
    refused = json_answer(
        b'{"error": {"message": "busy"}}', status="409 Conflict", extra="x-should-retry: true\r\n"
    )
    async with (
        RawServer(fixed(refused, close=False), fixed(json_answer(orjson.dumps(JOB)))) as server,
        client_for(server.url) as client,
    ):
        job = await bounded(client.fine_tuning.jobs.create(model="m", training_file="file-abc"))
    assert "ftjob-1" == job.id
    keys = [r.headers["idempotency-key"] for r in server.requests]
    assert 2 == len(keys)
    assert keys[0] == keys[1]


async def cut_after_reading(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    """Read the request, then drop the connection without answering (the delete happened)."""
    writer.close()


@pytest.mark.asyncio
async def test_a_delete_retried_after_a_cut_that_gets_404_reports_the_delete() -> None:
    """The first DELETE did the work; the retry's 404 means done, not NotFoundError."""
    gone = json_answer(b'{"error": {"message": "No such File"}}', status="404 Not Found")
    async with (
        RawServer(cut_after_reading, fixed(gone), cut_after_reading, fixed(gone)) as server,
        client_for(server.url) as client,
    ):
        deleted = await bounded(client.files.delete("file-abc"))
        model = await bounded(client.models.delete("ft:gpt-4o-mini:org::x"))
    assert FileDeleted(id="file-abc", deleted=True) == deleted
    assert ModelDeleted(id="ft:gpt-4o-mini:org::x", deleted=True) == model
    assert ["DELETE"] * 4 == [r.method for r in server.requests]


@pytest.mark.asyncio
async def test_a_delete_answered_404_at_once_is_still_not_found() -> None:
    """Without an earlier attempt that may have landed, a 404 is a real NotFoundError."""
    gone = json_answer(b'{"error": {"message": "No such File"}}', status="404 Not Found")
    async with RawServer(fixed(gone, close=False)) as server, client_for(server.url) as client:
        with pytest.raises(NotFoundError):
            await bounded(client.files.delete("file-abc"))
    assert 1 == len(server.requests)


@pytest.mark.asyncio
async def test_a_delete_that_got_a_refusal_first_keeps_its_404() -> None:
    """A 429 proves the first attempt did nothing, so a later 404 is a real NotFound."""
    busy = json_answer(b"{}", status="429 Too Many Requests", extra="Retry-After: 0.01\r\n")
    gone = json_answer(b'{"error": {"message": "No such File"}}', status="404 Not Found")
    async with (
        RawServer(fixed(busy, close=False), fixed(gone, close=False)) as server,
        client_for(server.url) as client,
    ):
        with pytest.raises(NotFoundError):
            await bounded(client.files.delete("file-abc"))
    assert 2 == len(server.requests)


@pytest.mark.asyncio
async def test_an_upload_from_a_pipe_is_sent_once_whole() -> None:
    """A real pipe (no position, no size) is streamed chunked, and arrives whole."""
    data = b'{"piped": true}\n' * 200
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    with open(read_end, "rb") as pipe:  # noqa: PTH123 - a descriptor, not a path
        async with (
            Emulator(speed=0) as emu,
            AsyncClient(api_key="test", base_url=emu.url, backoff=NO_BACKOFF) as client,
        ):
            created = await bounded(
                client.files.create(file=("piped.jsonl", pipe), purpose="batch")
            )
            stored = await bounded(client.files.content(created.id))
            uploads = [r for r in emu.stats.requests if r.route == "POST /files"]
        assert pipe.closed is False
    assert data == stored
    assert 1 == len(uploads)
