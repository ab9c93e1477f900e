"""Uploads and downloads over real sockets: flat memory, resumed and failed downloads, emulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self

import orjson
import pytest
from aiohttp import BodyPartReader, web

from finetune_async import APIConnectionError, AsyncClient, NotFoundError
from finetune_async.emulator import Emulator, Faults
from finetune_async.types import (
    BatchStatus,
    FileDeleted,
    FilePurpose,
    FineTuningJobStatus,
    ModelDeleted,
)
from tests.conftest import API_KEY, NO_BACKOFF, LoopbackServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path
    from types import TracebackType

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
BIG_SIZE = 50 * MIB
MAX_RSS_GROWTH = 20 * MIB
FILE_ID = "file-stream"
CONTENT_PATH = f"/files/{FILE_ID}/content"
# Not a multiple of any chunk size, so an off-by-one in resuming shows.
SMALL = random.Random(7).randbytes(1_000_003)
HALF = len(SMALL) // 2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def bounded(call: Awaitable[Any]) -> Any:
    """Await a call, failing the test instead of hanging."""
    return await asyncio.wait_for(call, 30)


# --- memory ---------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Return the resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:  # noqa: PTH123
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    msg = "no VmRSS line in /proc/self/status"
    raise AssertionError(msg)


class PeakRss:
    """Samples VmRSS every 10 ms on a thread (so a busy event loop cannot hide a peak)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())
            self.samples += 1

    def __enter__(self) -> Self:
        gc.collect()
        self.baseline = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        """Peak minus baseline, in bytes."""
        return self.peak - self.baseline


# --- files on disk --------------------------------------------------------------------------------


def write_random_file(path: Path, size: int, seed: int = 1) -> str:
    """Write ``size`` pseudo-random bytes in 1 MiB chunks; return their SHA-256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            chunk = rng.randbytes(min(MIB, left))
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """Return the SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Return the names in ``directory``, sorted."""
    return sorted(p.name for p in directory.iterdir())


# --- loopback handlers ----------------------------------------------------------------------------


def file_json(file_id: str, filename: str | None, size: int, purpose: str | None) -> dict[str, Any]:
    """Return a ``file`` object."""
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 1700000000,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }


def multipart_to_disk(target: Path, seen: list[dict[str, Any]]) -> Handler:
    """A POST /files handler that streams the file part to ``target``, chunk by chunk."""

    async def handler(request: web.Request) -> web.StreamResponse:
        reader = await request.multipart()
        purpose: str | None = None
        filename: str | None = None
        size = 0
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = await part.text()
            elif part.name == "file":
                filename = part.filename
                with target.open("wb") as out:
                    while chunk := await part.read_chunk(256 * 1024):
                        out.write(chunk)
                        size += len(chunk)
        seen.append(
            {
                "purpose": purpose,
                "filename": filename,
                "size": size,
                "content_type": request.content_type,
                "content_length": request.content_length,
            }
        )
        return web.json_response(file_json(FILE_ID, filename, size, purpose))

    return handler


def serve_file(path: Path) -> Handler:
    """A GET handler answering the file from disk (aiohttp's FileResponse honours Range)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    return handler


async def send_part_then_drop(
    request: web.Request, data: bytes, *, pause: float = 0.0, chunked: bool = False
) -> web.StreamResponse:
    """Promise all of ``data`` (Content-Length, or chunked), send half of it, then drop."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
    if chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    if pause:
        # Let the client take in the half before the drop (aiohttp's client discards
        # buffered bytes once the connection error is set).
        await asyncio.sleep(pause)
    assert request.transport is not None
    request.transport.close()
    raise ConnectionResetError("dropped by the test server")


def ranged(data: bytes, request: web.Request) -> web.StreamResponse:
    """Answer ``Range: bytes=N-`` with a 206 of the rest, or the whole with a 200."""
    header = request.headers.get("Range")
    if header is None:
        return web.Response(body=data, content_type="application/octet-stream")
    start = int(header.removeprefix("bytes=").removesuffix("-"))
    return web.Response(
        status=206,
        body=data[start:],
        content_type="application/octet-stream",
        headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
    )


def range_server(data: bytes) -> Handler:
    """A handler answering ``data``, honouring ``Range: bytes=N-``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return ranged(data, request)

    return handler


def by_attempt(*handlers: Handler) -> Handler:
    """Answer the n-th request with the n-th handler (the last one for any further request)."""
    attempts = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal attempts
        attempts += 1
        return await handlers[min(attempts, len(handlers)) - 1](request)

    return handler


@contextlib.asynccontextmanager
async def client_for(server: LoopbackServer) -> AsyncIterator[AsyncClient]:
    """Start ``server`` and give a client for it that retries without sleeping."""
    await server.start()
    async with AsyncClient(api_key=API_KEY, base_url=server.url, backoff=NO_BACKOFF) as client:
        yield client


def content_requests(server: LoopbackServer) -> list[web.Request]:
    """The requests the server saw on the content route."""
    return [r for r in server.requests if r.path == "/v1" + CONTENT_PATH]


# --- (1) 50 MB up and down with flat memory ------------------------------------------------------


@pytest.mark.asyncio
async def test_50mb_upload_and_download_keep_memory_flat(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A 50 MB file goes up and comes back byte-exact, with RSS growth far under its size."""
    source = tmp_path / "big.jsonl"
    expected_sha = write_random_file(source, BIG_SIZE)
    received = tmp_path / "received.bin"
    uploads: list[dict[str, Any]] = []
    loopback.route("POST", "/files", multipart_to_disk(received, uploads))
    loopback.route("GET", CONTENT_PATH, serve_file(received))
    warm = tmp_path / "warm.bin"
    warm.write_bytes(b"warm-up" * 1000)

    async with client_for(loopback) as client:
        # Warm up: the session, the connector and the code paths exist before measuring.
        await bounded(client.files.create(file=warm, purpose="fine-tune"))
        await bounded(client.files.download(FILE_ID, tmp_path / "warm-copy.bin"))
        assert warm.read_bytes() == (tmp_path / "warm-copy.bin").read_bytes()

        with PeakRss() as upload_rss:
            created = await bounded(client.files.create(file=source, purpose="fine-tune"))
        target = tmp_path / "downloaded.jsonl"
        with PeakRss() as download_rss:
            written = await bounded(client.files.download(FILE_ID, target))

    logger.warning(
        "50 MB transfer: upload RSS growth %.1f MiB (%d samples), download %.1f MiB (%d samples)",
        upload_rss.growth / MIB,
        upload_rss.samples,
        download_rss.growth / MIB,
        download_rss.samples,
    )
    assert {
        "purpose": "fine-tune",
        "filename": "big.jsonl",
        "size": BIG_SIZE,
        "content_type": "multipart/form-data",
    } == {k: v for k, v in uploads[-1].items() if k != "content_length"}
    assert BIG_SIZE == created.bytes
    assert expected_sha == sha256_of(received)
    assert target == written
    assert expected_sha == sha256_of(target)
    assert ["big.jsonl", "downloaded.jsonl", "received.bin", "warm-copy.bin", "warm.bin"] == (
        leftovers(tmp_path)
    )
    assert upload_rss.samples > 0
    assert upload_rss.growth < MAX_RSS_GROWTH, f"upload grew RSS by {upload_rss.growth / MIB} MiB"
    assert download_rss.growth < MAX_RSS_GROWTH, (
        f"download grew RSS by {download_rss.growth / MIB} MiB"
    )


# --- (2)-(5) downloads that drop, resume, restart or fail ----------------------------------------


@pytest.mark.asyncio
async def test_dropped_download_resumes_with_range(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """Half the file then a drop: the retry asks Range: bytes=<half>- and the result is exact."""
    loopback.route(
        "GET",
        CONTENT_PATH,
        by_attempt(
            lambda r: send_part_then_drop(r, SMALL, pause=0.3),
            range_server(SMALL),
        ),
    )
    target = tmp_path / "out.bin"

    async with client_for(loopback) as client:
        written = await bounded(client.files.download(FILE_ID, target))

    requests = content_requests(loopback)
    assert [None, f"bytes={HALF}-"] == [r.headers.get("Range") for r in requests]
    assert target == written
    assert SMALL == target.read_bytes()
    assert ["out.bin"] == leftovers(tmp_path)


@pytest.mark.asyncio
async def test_dropped_download_restarts_when_the_server_ignores_range(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """The retry is answered 200 with the whole file: it replaces, not appends to, the half."""

    async def whole(request: web.Request) -> web.StreamResponse:
        return web.Response(body=SMALL, content_type="application/octet-stream")

    loopback.route(
        "GET",
        CONTENT_PATH,
        by_attempt(lambda r: send_part_then_drop(r, SMALL, pause=0.3), whole),
    )
    target = tmp_path / "out.bin"

    async with client_for(loopback) as client:
        await bounded(client.files.download(FILE_ID, target))

    requests = content_requests(loopback)
    assert [None, f"bytes={HALF}-"] == [r.headers.get("Range") for r in requests]
    assert len(SMALL) == target.stat().st_size
    assert SMALL == target.read_bytes()
    assert ["out.bin"] == leftovers(tmp_path)


@pytest.mark.asyncio
async def test_resume_at_the_wrong_offset_starts_over(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A 206 whose Content-Range starts elsewhere than asked is not appended; the file is exact."""

    async def wrong_range(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=206,
            body=SMALL,
            content_type="application/octet-stream",
            headers={"Content-Range": f"bytes 0-{len(SMALL) - 1}/{len(SMALL)}"},
        )

    loopback.route(
        "GET",
        CONTENT_PATH,
        by_attempt(
            lambda r: send_part_then_drop(r, SMALL, pause=0.3), wrong_range, range_server(SMALL)
        ),
    )
    target = tmp_path / "out.bin"

    async with client_for(loopback) as client:
        await bounded(client.files.download(FILE_ID, target))

    requests = content_requests(loopback)
    assert [None, f"bytes={HALF}-", None] == [r.headers.get("Range") for r in requests]
    assert SMALL == target.read_bytes()
    assert ["out.bin"] == leftovers(tmp_path)


@pytest.mark.asyncio
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("existing", [None, b"the previous, complete version\n"])
async def test_download_that_keeps_dropping_leaves_nothing(
    loopback: LoopbackServer, tmp_path: Path, existing: bytes | None, chunked: bool
) -> None:
    """Every attempt drops: APIConnectionError, no file or .part left, an old file untouched."""
    loopback.route("GET", CONTENT_PATH, lambda r: send_part_then_drop(r, SMALL, chunked=chunked))
    target = tmp_path / "out.bin"
    if existing is not None:
        target.write_bytes(existing)

    async with client_for(loopback) as client:
        with pytest.raises(APIConnectionError):
            await bounded(client.files.download(FILE_ID, target))
        attempts = client.max_retries + 1

    assert attempts == len(content_requests(loopback))
    if existing is None:
        assert [] == leftovers(tmp_path)
    else:
        assert ["out.bin"] == leftovers(tmp_path)
        assert existing == target.read_bytes()


@pytest.mark.asyncio
async def test_download_dropped_before_any_byte_leaves_nothing(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A server that closes without answering: APIConnectionError and an empty directory."""

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        raise ConnectionResetError("dropped by the test server")

    loopback.route("GET", CONTENT_PATH, drop)

    async with client_for(loopback) as client:
        with pytest.raises(APIConnectionError):
            await bounded(client.files.download(FILE_ID, tmp_path / "out.bin"))

    assert [] == leftovers(tmp_path)


@pytest.mark.asyncio
@pytest.mark.parametrize("existing", [None, b"keep me"])
async def test_download_404_raises_not_found_and_leaves_nothing(
    loopback: LoopbackServer, tmp_path: Path, existing: bytes | None
) -> None:
    """A 404 raises NotFoundError at once, with no new file and an old one untouched."""

    async def missing(request: web.Request) -> web.StreamResponse:
        error = {"message": "No such File object: file-stream", "type": "invalid_request_error"}
        return web.json_response({"error": {**error, "param": "id", "code": None}}, status=404)

    loopback.route("GET", CONTENT_PATH, missing)
    target = tmp_path / "out.bin"
    if existing is not None:
        target.write_bytes(existing)

    async with client_for(loopback) as client:
        with pytest.raises(NotFoundError) as caught:
            await bounded(client.files.download(FILE_ID, target))

    assert 404 == caught.value.status_code
    assert 1 == len(content_requests(loopback))
    if existing is None:
        assert [] == leftovers(tmp_path)
    else:
        assert ["out.bin"] == leftovers(tmp_path)
        assert existing == target.read_bytes()


@pytest.mark.asyncio
async def test_successful_download_replaces_an_existing_file(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A complete download takes the final name, replacing what was there, with no .part left."""
    loopback.route("GET", CONTENT_PATH, range_server(SMALL))
    target = tmp_path / "out.bin"
    target.write_bytes(b"old contents, longer than nothing")

    async with client_for(loopback) as client:
        await bounded(client.files.download(FILE_ID, str(target)))

    assert SMALL == target.read_bytes()
    assert ["out.bin"] == leftovers(tmp_path)


@pytest.mark.asyncio
async def test_cancelled_download_leaves_nothing(loopback: LoopbackServer, tmp_path: Path) -> None:
    """A download cancelled midway leaves no file under the final name and no .part file."""
    half_sent = asyncio.Event()
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(SMALL))}
        )
        await response.prepare(request)
        await response.write(SMALL[:HALF])
        half_sent.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(release.wait(), 20)
        return response

    loopback.route("GET", CONTENT_PATH, stall)
    target = tmp_path / "out.bin"

    async with client_for(loopback) as client:
        task = asyncio.create_task(client.files.download(FILE_ID, target))
        await bounded(half_sent.wait())
        await asyncio.sleep(0.2)  # let the client write some of the half to its temporary file
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(task)
        release.set()

    assert [] == leftovers(tmp_path)


@pytest.mark.asyncio
async def test_download_answered_503_then_200_is_retried(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A 5xx on a download is retried (a GET is safe) and the file arrives whole."""

    async def unavailable(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "busy", "type": "server_error"}}, status=503)

    loopback.route("GET", CONTENT_PATH, by_attempt(unavailable, range_server(SMALL)))
    target = tmp_path / "out.bin"

    async with client_for(loopback) as client:
        await bounded(client.files.download(FILE_ID, target))

    assert [None, None] == [r.headers.get("Range") for r in content_requests(loopback)]
    assert SMALL == target.read_bytes()
    assert ["out.bin"] == leftovers(tmp_path)


@pytest.mark.asyncio
async def test_upload_after_429_resends_the_whole_file_over_the_wire(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    """A real 429 then 200: the server receives the complete file on both attempts."""
    source = tmp_path / "upload.jsonl"
    expected_sha = write_random_file(source, 3 * MIB + 17, seed=3)
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    uploads: list[dict[str, Any]] = []
    receive_first = multipart_to_disk(first, uploads)

    async def rate_limited(request: web.Request) -> web.StreamResponse:
        await receive_first(request)
        error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
        return web.json_response({"error": error}, status=429, headers={"retry-after-ms": "0"})

    loopback.route("POST", "/files", by_attempt(rate_limited, multipart_to_disk(second, uploads)))

    async with client_for(loopback) as client:
        created = await bounded(client.files.create(file=source, purpose="batch"))

    assert FILE_ID == created.id
    assert 2 == len(uploads)
    assert [expected_sha, expected_sha] == [sha256_of(first), sha256_of(second)]
    keys = [r.headers["Idempotency-Key"] for r in loopback.requests]
    assert keys[0] == keys[1]


@pytest.mark.asyncio
async def test_upload_dropped_by_the_server_is_not_resent(tmp_path: Path) -> None:
    """The emulator drops the upload after reading it: outcome unknown, exactly one attempt."""
    source = tmp_path / "train.jsonl"
    source.write_bytes(training_lines(12))

    async with (
        Emulator(speed=0, seed=5) as emu,
        AsyncClient(api_key="test", base_url=emu.url, backoff=NO_BACKOFF) as client,
    ):
        emu.set_faults(Faults(rate_drop=1.0), route="POST /files")
        with pytest.raises(APIConnectionError) as caught:
            await bounded(client.files.create(file=source, purpose="fine-tune"))
        uploads = [r for r in emu.stats.requests if r.route == "POST /files"]
        remaining = [f async for f in client.files.list()]

    assert caught.value.outcome_unknown is True
    assert ["dropped"] == [r.outcome for r in uploads]
    assert [] == remaining


# --- (6) the emulator end to end ------------------------------------------------------------------


def training_lines(count: int) -> bytes:
    """A valid supervised training file of ``count`` examples."""
    lines = [
        orjson.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You answer briefly."},
                    {"role": "user", "content": f"What is {i} + {i}?"},
                    {"role": "assistant", "content": str(2 * i)},
                ]
            }
        )
        for i in range(count)
    ]
    return b"\n".join(lines) + b"\n"


def batch_lines(custom_ids: list[str]) -> bytes:
    """A batch input file of chat requests, one per custom id."""
    lines = [
        orjson.dumps(
            {
                "custom_id": custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"Say {custom_id}"}],
                },
            }
        )
        for custom_id in custom_ids
    ]
    return b"\n".join(lines) + b"\n"


@pytest.mark.asyncio
async def test_emulator_end_to_end_job_batch_and_model(tmp_path: Path) -> None:
    """Upload, train, download the results, run a batch, read its output, then drop the model."""
    train_path = tmp_path / "train.jsonl"
    train_path.write_bytes(training_lines(12))
    custom_ids = [f"req-{i:03d}" for i in range(7)]

    async with (
        Emulator(speed=0, seed=1234) as emu,
        AsyncClient(api_key="test", base_url=emu.url, backoff=NO_BACKOFF) as client,
    ):
        # Fine-tuning: upload by path, train, download the CSV of results.
        training = await bounded(client.files.create(file=train_path, purpose="fine-tune"))
        assert ("train.jsonl", FilePurpose.FINE_TUNE, train_path.stat().st_size) == (
            training.filename,
            training.purpose,
            training.bytes,
        )
        job = await bounded(
            client.fine_tuning.jobs.create(
                model="gpt-4o-mini-2024-07-18", training_file=training.id, suffix="e2e"
            )
        )
        for _ in range(100):
            if job.status == FineTuningJobStatus.SUCCEEDED:
                break
            emu.advance(30)
            job = await bounded(client.fine_tuning.jobs.retrieve(job.id))
        assert FineTuningJobStatus.SUCCEEDED == job.status
        assert 1 == len(job.result_files)
        result_id = job.result_files[0]
        result = await bounded(client.files.retrieve(result_id))
        assert FilePurpose.FINE_TUNE_RESULTS == result.purpose
        csv_path = await bounded(client.files.download(result_id, tmp_path / "metrics.csv"))
        rows = csv_path.read_text().splitlines()
        assert "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy" == rows[0]
        assert len(rows) > 1
        assert all(len(row.split(",")) == 5 for row in rows[1:])
        assert [str(n) for n in range(1, len(rows))] == [row.split(",")[0] for row in rows[1:]]
        assert result.bytes == csv_path.stat().st_size
        assert ["metrics.csv", "train.jsonl"] == leftovers(tmp_path)

        # A batch: upload from bytes under a given name, run it, read the output whole.
        batch_file = await bounded(
            client.files.create(file=("requests.jsonl", batch_lines(custom_ids)), purpose="batch")
        )
        assert "requests.jsonl" == batch_file.filename
        batch = await bounded(
            client.batches.create(
                input_file_id=batch_file.id,
                endpoint="/v1/chat/completions",
                metadata={"run": "e2e"},
            )
        )
        assert BatchStatus.VALIDATING == batch.status
        seen_statuses = [batch.status]
        for _ in range(100):
            if batch.status == BatchStatus.COMPLETED:
                break
            emu.advance(2)
            batch = await bounded(client.batches.retrieve(batch.id))
            if batch.status != seen_statuses[-1]:
                seen_statuses.append(batch.status)
        assert [
            BatchStatus.VALIDATING,
            BatchStatus.IN_PROGRESS,
            BatchStatus.FINALIZING,
            BatchStatus.COMPLETED,
        ] == seen_statuses
        assert batch.request_counts is not None
        assert (len(custom_ids), len(custom_ids), 0) == (
            batch.request_counts.total,
            batch.request_counts.completed,
            batch.request_counts.failed,
        )
        assert {"run": "e2e"} == batch.metadata
        assert batch.usage is not None
        assert batch.created_at is not None
        assert batch.in_progress_at is not None
        assert batch.finalizing_at is not None
        assert batch.completed_at is not None
        assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at
        assert batch.finalizing_at <= batch.completed_at
        assert batch.output_file_id is not None
        assert batch.error_file_id is None
        output = await bounded(client.files.content(batch.output_file_id))
        lines = [orjson.loads(line) for line in output.splitlines() if line.strip()]
        assert sorted(custom_ids) == sorted(line["custom_id"] for line in lines)
        assert [200] * len(custom_ids) == [line["response"]["status_code"] for line in lines]
        listed = [b.id async for b in client.batches.list(limit=1)]
        assert [batch.id] == listed
        outputs = [f.id async for f in client.files.list(purpose="batch_output")]
        assert [batch.output_file_id] == outputs

        # The fine-tuned model: its id has ':' and must reach the server intact.
        assert job.fine_tuned_model is not None
        assert job.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:")
        model = await bounded(client.models.retrieve(job.fine_tuned_model))
        assert job.fine_tuned_model == model.id
        deleted = await bounded(client.models.delete(job.fine_tuned_model))
        assert ModelDeleted(id=job.fine_tuned_model, deleted=True, object="model") == deleted
        with pytest.raises(NotFoundError):
            await bounded(client.models.retrieve(job.fine_tuned_model))

        # Deleting a file makes its content a 404.
        assert FileDeleted(id=batch_file.id, deleted=True, object="file") == await bounded(
            client.files.delete(batch_file.id)
        )
        with pytest.raises(NotFoundError):
            await bounded(client.files.content(batch_file.id))
