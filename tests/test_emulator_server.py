"""The emulator as a server: files, faults and stats, life cycle, the pytest fixture and the CLI."""

from __future__ import annotations

import asyncio
import io
import json
import math
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest

from finetune_async import AsyncClient, NotFoundError
from finetune_async.emulator import Emulator, Faults, RequestRecord
from finetune_async.emulator import pytest_plugin as emulator_plugin

if TYPE_CHECKING:
    from collections.abc import Mapping

    from finetune_async.emulator.pytest_plugin import EmulatorFixture

AUTH = {"Authorization": "Bearer test"}
MODEL_PATH = "/models/gpt-4o-mini"
JOB_ROUTE = "GET /fine_tuning/jobs/{fine_tuning_job_id}"
THREAD_NAME = "finetune-async-emulator"
PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
ERROR_KEYS = {"message", "type", "param", "code"}
TIMEOUT = aiohttp.ClientTimeout(total=10)
WAIT = 10.0

Json = dict[str, Any]


# --- helpers -----------------------------------------------------------------------------------


def session(**kwargs: Any) -> aiohttp.ClientSession:
    """A raw aiohttp session with the Bearer header (no retries)."""
    return aiohttp.ClientSession(headers=AUTH, timeout=TIMEOUT, **kwargs)


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    """Send one request; return (status, JSON body or None, headers)."""
    async with http.request(method, url, params=params, headers=headers) as resp:
        raw = await resp.read()
        return resp.status, (orjson.loads(raw) if raw else None), resp.headers


async def upload(
    http: aiohttp.ClientSession,
    base: str,
    data: bytes,
    *,
    purpose: str | None = "batch",
    filename: str = "data.jsonl",
    with_file: bool = True,
) -> tuple[int, Any]:
    """POST /files as multipart; return (status, JSON body)."""
    form = aiohttp.FormData(default_to_multipart=True)
    if purpose is not None:
        form.add_field("purpose", purpose)
    if with_file:
        # A stream, not bytes: aiohttp warns on large raw bodies (and warnings are errors here).
        form.add_field(
            "file", io.BytesIO(data), filename=filename, content_type="application/octet-stream"
        )
    async with http.post(base + "/files", data=form) as resp:
        return resp.status, orjson.loads(await resp.read())


async def uploaded(http: aiohttp.ClientSession, base: str, data: bytes, **kwargs: Any) -> Json:
    """Upload and return the file object, which must be accepted."""
    status, body = await upload(http, base, data, **kwargs)
    assert 200 == status, body
    assert isinstance(body, dict)
    return body


async def content(http: aiohttp.ClientSession, base: str, file_id: str) -> tuple[int, bytes]:
    """GET /files/{id}/content."""
    async with http.get(f"{base}/files/{file_id}/content") as resp:
        return resp.status, await resp.read()


def assert_error_shape(body: Any, param: str | None = None) -> Json:
    """The body is OpenAI's ``{"error": {message, type, param, code}}`` naming ``param``."""
    assert isinstance(body, dict)
    assert ["error"] == list(body)
    error = body["error"]
    assert ERROR_KEYS == set(error)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert param == error["param"]
    return dict(error)


async def burst(
    http: aiohttp.ClientSession, url: str, n: int, *, method: str = "GET", concurrency: int = 50
) -> list[tuple[int, Any, Mapping[str, str]] | BaseException]:
    """Send ``n`` requests, ``concurrency`` at a time; exceptions are returned, not raised."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[int, Any, Mapping[str, str]]:
        async with gate:
            return await call(http, method, url)

    return await asyncio.wait_for(
        asyncio.gather(*(one() for _ in range(n)), return_exceptions=True), 60
    )


def answered(
    results: list[tuple[int, Any, Mapping[str, str]] | BaseException],
) -> list[tuple[int, Any, Mapping[str, str]]]:
    """The results that are answers; fails on any exception."""
    errors = [r for r in results if isinstance(r, BaseException)]
    assert [] == errors
    return [r for r in results if not isinstance(r, BaseException)]


def binomial_tolerance(n: int, rate: float) -> float:
    """Five standard deviations of a share of ``n`` draws at ``rate`` (a false alarm: ~1e-6)."""
    return 5 * math.sqrt(rate * (1 - rate) / n)


def training_file(examples: int = 10) -> bytes:
    """A valid supervised chat training file."""
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
        for i in range(examples)
    ]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def emulator_threads() -> list[threading.Thread]:
    """Live threads named like the emulator's."""
    return [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


def urlopen_json(url: str, headers: Mapping[str, str] = AUTH) -> tuple[int, Any]:
    """A blocking GET with urllib; returns (status, JSON body), HTTP errors included."""
    req = urllib.request.Request(url, headers=dict(headers))  # noqa: S310 - http on loopback
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("purpose", PURPOSES)
async def test_upload_with_each_allowed_purpose_gives_a_processed_file(purpose: str) -> None:
    """Every purpose CreateFileRequest allows is accepted and echoed in a ``file`` object."""
    data = b'{"a": 1}\n{"b": 2}\n'
    async with Emulator(speed=0, seed=1) as emu, session() as http:
        body = await uploaded(http, emu.url, data, purpose=purpose, filename="mine.jsonl")
    assert "file" == body["object"]
    assert body["id"].startswith("file-")
    assert len(data) == body["bytes"]
    assert "mine.jsonl" == body["filename"]
    assert purpose == body["purpose"]
    assert "processed" == body["status"]
    assert isinstance(body["created_at"], int)


@pytest.mark.asyncio
@pytest.mark.parametrize("purpose", ["nonsense", "batch_output", "fine-tune-results", None])
async def test_upload_with_a_bad_or_missing_purpose_is_400_naming_purpose(
    purpose: str | None,
) -> None:
    """A purpose outside the upload list (or none) is 400 with param ``purpose``; nothing stored."""
    async with Emulator(speed=0) as emu, session() as http:
        status, body = await upload(http, emu.url, b"x", purpose=purpose)
        _, listed, _ = await call(http, "GET", emu.url + "/files")
    assert 400 == status
    assert "invalid_request_error" == assert_error_shape(body, "purpose")["type"]
    assert [] == listed["data"]


@pytest.mark.asyncio
async def test_upload_without_a_file_part_is_400_naming_file() -> None:
    """A form without the ``file`` part is 400 with param ``file``."""
    async with Emulator(speed=0) as emu, session() as http:
        status, body = await upload(http, emu.url, b"", with_file=False)
    assert 400 == status
    assert_error_shape(body, "file")


@pytest.mark.asyncio
async def test_list_files_filters_by_purpose_orders_and_pages() -> None:
    """GET /files filters by purpose, orders asc/desc (desc by default) and pages by cursor."""
    purposes = ["batch", "fine-tune", "batch", "fine-tune", "batch"]
    async with Emulator(speed=0, seed=2) as emu, session() as http:
        ids = [
            (await uploaded(http, emu.url, f"{i}\n".encode(), purpose=p))["id"]
            for i, p in enumerate(purposes)
        ]
        _, default, _ = await call(http, "GET", emu.url + "/files")
        _, ascending, _ = await call(http, "GET", emu.url + "/files", params={"order": "asc"})
        _, batch_only, _ = await call(
            http, "GET", emu.url + "/files", params={"purpose": "batch", "order": "asc"}
        )
        _, none, _ = await call(http, "GET", emu.url + "/files", params={"purpose": "vision"})

        pages: list[Json] = []
        after: str | None = None
        for _ in range(10):
            params = {"order": "asc", "limit": "2"} | ({"after": after} if after else {})
            status, page, _ = await call(http, "GET", emu.url + "/files", params=params)
            assert 200 == status
            pages.append(page)
            if not page["has_more"]:
                break
            after = page["last_id"]
        bad_order, bad_order_body, _ = await call(
            http, "GET", emu.url + "/files", params={"order": "sideways"}
        )
        bad_after, bad_after_body, _ = await call(
            http, "GET", emu.url + "/files", params={"after": "file-unknown"}
        )

    assert "list" == default["object"]
    assert ids[::-1] == [f["id"] for f in default["data"]]
    assert default["has_more"] is False
    assert ids[-1] == default["first_id"]
    assert ids[0] == default["last_id"]
    assert ids == [f["id"] for f in ascending["data"]]
    assert [ids[0], ids[2], ids[4]] == [f["id"] for f in batch_only["data"]]
    assert {"batch"} == {f["purpose"] for f in batch_only["data"]}
    assert [] == none["data"]
    assert none["has_more"] is False
    assert [ids[0:2], ids[2:4], ids[4:5]] == [[f["id"] for f in p["data"]] for p in pages]
    assert [True, True, False] == [p["has_more"] for p in pages]
    assert [(p["data"][0]["id"], p["data"][-1]["id"]) for p in pages] == [
        (p["first_id"], p["last_id"]) for p in pages
    ]
    assert 400 == bad_order
    assert_error_shape(bad_order_body, "order")
    assert 400 == bad_after
    assert_error_shape(bad_after_body, "after")


@pytest.mark.asyncio
async def test_retrieve_then_delete_a_file() -> None:
    """GET /files/{id} gives the upload's object; DELETE removes it and later calls are 404."""
    async with Emulator(speed=0) as emu, session() as http:
        created = await uploaded(http, emu.url, b"hello\n", purpose="user_data")
        url = f"{emu.url}/files/{created['id']}"
        got_status, got, _ = await call(http, "GET", url)
        del_status, deleted, _ = await call(http, "DELETE", url)
        after_status, after, _ = await call(http, "GET", url)
        again_status, again, _ = await call(http, "DELETE", url)
        content_status, _ = await content(http, emu.url, created["id"])
        _, listed, _ = await call(http, "GET", emu.url + "/files")
    assert 200 == got_status
    assert created == got
    assert 200 == del_status
    assert {"id": created["id"], "object": "file", "deleted": True} == deleted
    assert 404 == after_status
    assert "file_not_found" == assert_error_shape(after, "file_id")["code"]
    assert 404 == again_status
    assert_error_shape(again, "file_id")
    assert 404 == content_status
    assert [] == listed["data"]


@pytest.mark.asyncio
async def test_content_returns_the_exact_bytes() -> None:
    """The content of a small binary file (NUL, CR LF, high bytes) comes back byte for byte."""
    data = bytes(range(256)) + b"\r\n\x00end"
    async with Emulator(speed=0) as emu, session() as http:
        created = await uploaded(http, emu.url, data, purpose="vision", filename="blob.bin")
        status, got = await content(http, emu.url, created["id"])
        async with http.get(
            f"{emu.url}/files/{created['id']}/content", headers={"Range": "bytes=10-19"}
        ) as resp:
            range_status, part = resp.status, await resp.read()
    assert 200 == status
    assert data == got
    assert 206 == range_status
    assert data[10:20] == part


@pytest.mark.asyncio
async def test_a_5_mb_file_round_trips_byte_for_byte() -> None:
    """A 5 MB random file is stored and served back identical, with the right size."""
    data = random.Random(5).randbytes(5 * 1024 * 1024)
    async with Emulator(speed=0) as emu, session() as http:
        created = await uploaded(http, emu.url, data, purpose="user_data", filename="big.bin")
        status, got = await content(http, emu.url, created["id"])
    assert len(data) == created["bytes"]
    assert 200 == status
    assert len(data) == len(got)
    assert data == got


@pytest.mark.asyncio
async def test_deleting_a_training_file_in_use_breaks_nothing() -> None:
    """A job whose training file was deleted still answers, and so do files and models."""
    async with Emulator(speed=0, seed=6) as emu, session() as http:
        training = await uploaded(http, emu.url, training_file(), purpose="fine-tune")
        async with http.post(
            emu.url + "/fine_tuning/jobs",
            json={"model": "gpt-4o-mini-2024-07-18", "training_file": training["id"]},
        ) as resp:
            assert 200 == resp.status
            job = await resp.json()
        deleted, _, _ = await call(http, "DELETE", f"{emu.url}/files/{training['id']}")
        emu.advance(30)
        job_status, job_body, _ = await call(http, "GET", f"{emu.url}/fine_tuning/jobs/{job['id']}")
        others = [(await call(http, "GET", emu.url + path))[0] for path in ("/files", MODEL_PATH)]
    assert 200 == deleted
    assert 200 == job_status, job_body
    assert job_body["status"] in {"failed", "queued"}
    assert [200, 200] == others


# --- auth and routing ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_auth_needs_a_bearer_key_and_the_configured_one() -> None:
    """No key is 401; with ``api_key`` set only that key passes."""
    async with Emulator(api_key="sk-right") as emu, aiohttp.ClientSession(timeout=TIMEOUT) as http:
        url = emu.url + MODEL_PATH
        none_status, none_body, _ = await call(http, "GET", url)
        wrong_status, wrong_body, _ = await call(
            http, "GET", url, headers={"Authorization": "Bearer sk-wrong"}
        )
        ok_status, ok_body, ok_headers = await call(
            http, "GET", url, headers={"Authorization": "Bearer sk-right"}
        )
    assert 401 == none_status
    assert_error_shape(none_body)
    assert 401 == wrong_status
    assert "invalid_api_key" == assert_error_shape(wrong_body)["code"]
    assert 200 == ok_status
    assert "gpt-4o-mini" == ok_body["id"]
    assert ok_headers["x-request-id"].startswith("req_")


@pytest.mark.asyncio
async def test_unknown_routes_and_methods_answer_in_the_error_shape() -> None:
    """An unknown path is 404 and a wrong method 405, both in OpenAI's error shape."""
    async with Emulator() as emu, session() as http:
        missing_status, missing, _ = await call(http, "GET", emu.url + "/nowhere")
        method_status, method, _ = await call(http, "PUT", emu.url + "/files")
    assert 404 == missing_status
    assert_error_shape(missing)
    assert 405 == method_status
    assert_error_shape(method)


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rate_429_answers_that_share_with_retry_after_headers() -> None:
    """About 30% of 2,000 GETs are 429 with ``Retry-After: 2``, ``retry-after-ms: 2000``."""
    n = 2000
    async with (
        Emulator(faults=Faults(rate_429=0.3, retry_after=2), seed=10) as emu,
        session() as http,
    ):
        results = answered(await burst(http, emu.url + MODEL_PATH, n))
        stats = emu.stats
    limited = [r for r in results if r[0] == 429]
    assert set() == {r[0] for r in results} - {200, 429}
    assert abs(len(limited) / n - 0.3) <= max(0.05, binomial_tolerance(n, 0.3))
    for _, body, headers in limited:
        assert "2" == headers["Retry-After"]
        assert "2000" == headers["retry-after-ms"]
        assert "rate_limit_exceeded" == assert_error_shape(body)["code"]
    assert n == stats.total
    assert len(limited) == stats.faults["429"]
    assert Counter({200: n - len(limited), 429: len(limited)}) == stats.outcomes


@pytest.mark.asyncio
async def test_rate_5xx_answers_that_share_with_500_and_an_error_body() -> None:
    """About 20% of 2,000 GETs are 500 with a ``server_error`` body."""
    n = 2000
    async with Emulator(faults=Faults(rate_5xx=0.2), seed=11) as emu, session() as http:
        results = answered(await burst(http, emu.url + MODEL_PATH, n))
        stats = emu.stats
    failed = [r for r in results if r[0] == 500]
    assert set() == {r[0] for r in results} - {200, 500}
    assert abs(len(failed) / n - 0.2) <= max(0.05, binomial_tolerance(n, 0.2))
    for _, body, headers in failed:
        assert "server_error" == assert_error_shape(body)["type"]
        assert "Retry-After" not in headers
    assert len(failed) == stats.faults["5xx"]
    assert len(failed) == stats.outcomes[500]


@pytest.mark.asyncio
async def test_rate_drop_closes_that_share_of_connections_without_an_answer() -> None:
    """About 20% of requests see a disconnect; the emulator counts each as ``dropped``."""
    n = 1000
    # POST: aiohttp itself resends an idempotent GET once after a disconnect.
    url_path = "/batches/batch_unknown/cancel"
    async with Emulator(faults=Faults(rate_drop=0.2), seed=12) as emu, session() as http:
        results = await burst(http, emu.url + url_path, n, method="POST")
        stats = emu.stats
    dropped = [r for r in results if isinstance(r, BaseException)]
    others = [r for r in results if not isinstance(r, BaseException)]
    assert [] == [
        r
        for r in dropped
        if not isinstance(r, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
    ]
    assert abs(len(dropped) / n - 0.2) <= max(0.05, binomial_tolerance(n, 0.2))
    assert {404} == {r[0] for r in others}
    assert len(dropped) == stats.faults["drop"]
    assert len(dropped) == stats.outcomes["dropped"]
    assert n == stats.total


@pytest.mark.asyncio
async def test_latency_holds_every_answer_and_max_in_flight_sees_the_peak() -> None:
    """With ``latency`` 20 parallel requests are all held at once: ``max_in_flight`` is 20."""
    latency = 1.0
    async with Emulator(faults=Faults(latency=latency)) as emu, session() as http:
        started = time.monotonic()
        results = answered(await burst(http, emu.url + MODEL_PATH, 20, concurrency=20))
        elapsed = time.monotonic() - started
        stats = emu.stats
    assert [200] * 20 == [r[0] for r in results]
    assert elapsed >= latency
    assert 20 == stats.max_in_flight
    assert 0 == stats.in_flight
    assert 20 == stats.total


@pytest.mark.asyncio
async def test_max_in_flight_is_one_for_sequential_requests() -> None:
    """Requests sent one after the other never overlap: ``max_in_flight`` stays 1."""
    async with Emulator(faults=Faults(latency=0.01)) as emu, session() as http:
        for _ in range(5):
            status, _, _ = await call(http, "GET", emu.url + MODEL_PATH)
            assert 200 == status
        stats = emu.stats
    assert 1 == stats.max_in_flight
    assert 5 == stats.total


@pytest.mark.asyncio
async def test_rate_limit_answers_429_beyond_n_requests_in_a_second() -> None:
    """With ``rate_limit=10`` a burst of 40 gets about 10 answers and 429s for the rest."""
    async with (
        Emulator(faults=Faults(rate_limit=10, retry_after=3)) as emu,
        session() as http,
    ):
        results = answered(await burst(http, emu.url + MODEL_PATH, 40, concurrency=40))
        burst_faults = Counter(emu.stats.faults)
        # The bucket refills at 10 per second: after a second the next 10 pass again.
        await asyncio.sleep(1.1)
        later = answered(await burst(http, emu.url + MODEL_PATH, 10, concurrency=1))
    ok = sum(1 for r in results if r[0] == 200)
    limited = [r for r in results if r[0] == 429]
    assert 10 <= ok <= 12
    assert 40 - ok == len(limited)
    assert Counter({"rate_limit": len(limited)}) == burst_faults
    for _, body, headers in limited:
        assert "3" == headers["Retry-After"]
        assert "3000" == headers["retry-after-ms"]
        assert_error_shape(body)
    assert [200] * 10 == [r[0] for r in later]


@pytest.mark.asyncio
async def test_set_faults_on_one_route_leaves_the_others_alone() -> None:
    """Faults narrowed to ``GET /fine_tuning/jobs/{id}`` hit only that route, and can be lifted."""
    async with Emulator(seed=3) as emu, session() as http:
        emu.set_faults(Faults(rate_429=1.0), route=JOB_ROUTE)
        job = await call(http, "GET", emu.url + "/fine_tuning/jobs/ftjob-x")
        job_again = await call(http, "GET", emu.url + "/fine_tuning/jobs/ftjob-y")
        listing = await call(http, "GET", emu.url + "/fine_tuning/jobs")
        model = await call(http, "GET", emu.url + MODEL_PATH)
        cancel = await call(http, "POST", emu.url + "/fine_tuning/jobs/ftjob-x/cancel")
        records = list(emu.stats.requests)

        emu.set_faults(Faults(rate_5xx=1.0))
        still_429 = await call(http, "GET", emu.url + "/fine_tuning/jobs/ftjob-x")
        now_500 = await call(http, "GET", emu.url + MODEL_PATH)

        emu.set_faults(Faults(), route=JOB_ROUTE)
        lifted = await call(http, "GET", emu.url + "/fine_tuning/jobs/ftjob-x")
    assert [429, 429, 200, 200, 404] == [r[0] for r in (job, job_again, listing, model, cancel)]
    assert [JOB_ROUTE, JOB_ROUTE] == [r.route for r in records if r.fault == "429"]
    assert [
        JOB_ROUTE,
        JOB_ROUTE,
        "GET /fine_tuning/jobs",
        "GET /models/{model}",
        "POST /fine_tuning/jobs/{fine_tuning_job_id}/cancel",
    ] == [r.route for r in records]
    assert [429, 500] == [still_429[0], now_500[0]]
    assert 404 == lifted[0]
    assert_error_shape(lifted[1], "fine_tuning_job_id")


@pytest.mark.asyncio
async def test_stats_record_every_request_and_reset() -> None:
    """``emu.stats`` counts requests, outcomes and faults, records each one, and resets."""
    async with Emulator(seed=4) as emu, session() as http:
        await call(http, "GET", emu.url + MODEL_PATH, headers={"X-Test": "yes"})
        await call(http, "GET", emu.url + "/models/no-such-model")
        emu.set_faults(Faults(rate_5xx=1.0))
        await call(http, "DELETE", emu.url + "/files/file-x")
        stats = emu.stats
        records = list(stats.requests)
        emu.reset_stats()
        fresh = (emu.stats.total, emu.stats.outcomes.copy(), emu.stats.faults.copy())
        fresh_peak = emu.stats.max_in_flight
        emu.set_faults(Faults())
        await call(http, "GET", emu.url + MODEL_PATH)
        after_reset = emu.stats
    assert 3 == stats.total
    assert Counter({200: 1, 404: 1, 500: 1}) == stats.outcomes
    assert Counter({"5xx": 1}) == stats.faults
    assert 1 == stats.max_in_flight
    assert all(isinstance(r, RequestRecord) for r in records)
    assert [
        ("GET", "/v1/models/gpt-4o-mini", "GET /models/{model}", 200, None),
        ("GET", "/v1/models/no-such-model", "GET /models/{model}", 404, None),
        ("DELETE", "/v1/files/file-x", "DELETE /files/{file_id}", 500, "5xx"),
    ] == [(r.method, r.path, r.route, r.outcome, r.fault) for r in records]
    first_headers = {k.lower(): v for k, v in records[0].headers.items()}
    assert "[redacted]" == first_headers["authorization"]
    assert records[0].sent_header("Authorization", "Bearer test")
    assert "yes" == first_headers["x-test"]
    assert "x-test" not in {k.lower() for k in records[1].headers}
    assert records[0].started <= records[1].started <= records[2].started
    assert (0, Counter(), Counter()) == fresh
    assert 0 == fresh_peak
    assert 1 == after_reset.total
    assert ["/v1/models/gpt-4o-mini"] == [r.path for r in after_reset.requests]


async def _fault_sequence(seed: int, n: int = 60) -> list[int]:
    async with Emulator(faults=Faults(rate_429=0.5), seed=seed) as emu, session() as http:
        return [(await call(http, "GET", emu.url + MODEL_PATH))[0] for _ in range(n)]


@pytest.mark.asyncio
async def test_the_same_seed_gives_the_same_fault_sequence() -> None:
    """Two emulators with one seed inject faults on the same requests; another seed differs."""
    first = await _fault_sequence(21)
    second = await _fault_sequence(21)
    other = await _fault_sequence(22)
    assert first == second
    assert {200, 429} == set(first)
    assert first != other


def test_faults_reject_rates_outside_zero_to_one() -> None:
    """``Faults`` refuses a rate above 1 or a negative latency."""
    with pytest.raises(ValueError, match="rate_429"):
        Faults(rate_429=1.5)
    with pytest.raises(ValueError, match="latency"):
        Faults(latency=-1)


def test_faults_reject_a_negative_rate_limit() -> None:
    """``Faults`` refuses a negative ``rate_limit`` as it refuses a negative latency."""
    with pytest.raises(ValueError, match="rate_limit"):
        Faults(rate_limit=-1)


@pytest.mark.asyncio
async def test_a_rate_limit_below_one_per_second_lets_the_first_request_through() -> None:
    """``rate_limit=0.5`` (one request every 2 s) answers the first request, then 429."""
    async with Emulator(faults=Faults(rate_limit=0.5)) as emu, session() as http:
        first = await call(http, "GET", emu.url + MODEL_PATH)
        second = await call(http, "GET", emu.url + MODEL_PATH)
    assert [200, 429] == [first[0], second[0]]


@pytest.mark.asyncio
async def test_a_fractional_retry_after_is_sent_as_whole_seconds() -> None:
    """``Retry-After`` is delay-seconds (digits only, RFC 9110); the ms header keeps precision."""
    async with (
        Emulator(faults=Faults(rate_429=1.0, retry_after=0.5)) as emu,
        session() as http,
    ):
        status, _, headers = await call(http, "GET", emu.url + MODEL_PATH)
    assert 429 == status
    assert "500" == headers["retry-after-ms"]
    assert re.fullmatch(r"[0-9]+", headers["Retry-After"]) is not None, headers["Retry-After"]
    assert int(headers["Retry-After"]) >= 1


# --- life cycle ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_with_listens_on_a_free_loopback_port_and_stops_cleanly() -> None:
    """``url`` is ``http://127.0.0.1:<free port>/v1``; after exit the port refuses, nothing left."""
    before = asyncio.all_tasks()
    emu = Emulator()
    with pytest.raises(RuntimeError):
        _ = emu.url
    async with session() as http:
        async with emu:
            match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/v1", emu.url)
            assert match is not None
            port = int(match.group(1))
            assert emu.port == port
            assert 0 < port
            stored = emu.state.files.path_for((await uploaded(http, emu.url, b"x\n"))["id"])
            assert stored.is_file()
            # Keep-alive connections stay open in the client's pool while the server stops.
            for _ in range(3):
                status, body, _ = await call(http, "GET", emu.url + MODEL_PATH)
                assert 200 == status
                assert "model" == body["object"]
        leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
        assert set() == leftover
        # The uploaded contents and their temporary directory are removed.
        assert stored.parent.exists() is False
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
        with pytest.raises(aiohttp.ClientConnectionError):
            await call(http, "GET", f"http://127.0.0.1:{port}/v1{MODEL_PATH}")


@pytest.mark.asyncio
async def test_two_emulators_run_side_by_side_on_different_ports() -> None:
    """Two emulators get two free ports and separate state."""
    async with Emulator(speed=0) as one, Emulator(speed=0) as two, session() as http:
        await uploaded(http, one.url, b"only in one\n")
        _, in_one, _ = await call(http, "GET", one.url + "/files")
        _, in_two, _ = await call(http, "GET", two.url + "/files")
    assert one.port != two.port
    assert 1 == len(in_one["data"])
    assert [] == in_two["data"]


def test_sync_with_runs_the_emulator_on_a_thread_and_joins_it() -> None:
    """``with Emulator()`` serves from a thread of its own, joined on exit."""
    assert [] == emulator_threads()
    with Emulator(seed=8) as emu:
        assert 1 == len(emulator_threads())
        status, body = urlopen_json(emu.url + MODEL_PATH)
        missing_status, missing = urlopen_json(emu.url + "/models/does-not-exist")
        port = emu.port
        stats_total = emu.stats.total
    assert 200 == status
    assert "gpt-4o-mini" == body["id"]
    assert 404 == missing_status
    assert "model_not_found" == assert_error_shape(missing, "model")["code"]
    assert 2 == stats_total
    assert [] == emulator_threads()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()


def test_sync_with_on_a_busy_port_raises_and_leaves_nothing_behind() -> None:
    """Starting on a busy port raises ``OSError``, leaving no thread and no temporary directory."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        emu = Emulator(port=port)
        with pytest.raises(OSError, match=str(port)), emu:
            pytest.fail("the emulator started on a busy port")
    assert [] == emulator_threads()
    # The store makes its directory at the first file and forgets it on close.
    assert emu.state.files._dir is None


@pytest.mark.asyncio
async def test_async_start_on_a_busy_port_raises_and_leaves_nothing_behind() -> None:
    """``async with`` on a busy port raises ``OSError`` and removes its temporary directory."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        emu = Emulator(port=port)
        with pytest.raises(OSError, match=str(port)):
            async with emu:
                pytest.fail("the emulator started on a busy port")
    # The store makes its directory at the first file and forgets it on close.
    assert emu.state.files._dir is None


@pytest.mark.asyncio
async def test_stop_with_a_request_in_flight_does_not_count_a_500() -> None:
    """A request cut off by ``stop`` was never answered: its outcome is ``dropped``, not 500."""
    async with session() as http:
        async with Emulator(faults=Faults(latency=5)) as emu:
            # POST: aiohttp would resend a GET after the disconnect.
            pending = asyncio.ensure_future(call(http, "POST", emu.url + "/batches/batch_x/cancel"))
            for _ in range(200):
                if emu.stats.in_flight:
                    break
                await asyncio.sleep(0.01)
            assert 1 == emu.stats.in_flight
        with pytest.raises(aiohttp.ClientConnectionError):
            await asyncio.wait_for(pending, WAIT)
    assert 0 == emu.stats.in_flight
    assert [("POST", "dropped")] == [(r.method, r.outcome) for r in emu.stats.requests]
    assert Counter({"dropped": 1}) == emu.stats.outcomes


def test_sync_emulator_advance_moves_the_clock_seen_by_the_server() -> None:
    """``advance`` from the test thread is seen by the server thread (a job leaves validation)."""
    with Emulator(speed=0, seed=9) as emu:
        req = urllib.request.Request(  # noqa: S310 - http on loopback
            emu.url + "/files",
            data=_multipart(training_file(), "fine-tune"),
            headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={_BOUNDARY}"},
        )
        with urllib.request.urlopen(req, timeout=WAIT) as resp:  # noqa: S310
            file_id = json.loads(resp.read())["id"]
        create = urllib.request.Request(  # noqa: S310
            emu.url + "/fine_tuning/jobs",
            data=json.dumps({"model": "gpt-4o-mini-2024-07-18", "training_file": file_id}).encode(),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(create, timeout=WAIT) as resp:  # noqa: S310
            job = json.loads(resp.read())
        emu.advance(30)
        _, later = urlopen_json(f"{emu.url}/fine_tuning/jobs/{job['id']}")
    assert "validating_files" == job["status"]
    assert "queued" == later["status"]


_BOUNDARY = "finetune-async-test-boundary"


def _multipart(data: bytes, purpose: str) -> bytes:
    """A two-part multipart/form-data body (purpose, file) for urllib."""
    return (
        (
            f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
            f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="train.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{_BOUNDARY}--\r\n".encode()
    )


# --- the pytest plugin ---------------------------------------------------------------------------


def test_the_plugin_is_registered_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    """The ``finetune_async`` pytest11 entry point loaded the plugin module in this suite."""
    assert emulator_plugin is pytestconfig.pluginmanager.get_plugin("finetune_async")
    markers = pytestconfig.getini("markers")
    assert any(str(m).startswith("emulator(") for m in markers)


@pytest.mark.asyncio
async def test_emulator_fixture_gives_a_running_emulator_and_a_client(
    emulator: EmulatorFixture,
) -> None:
    """The ``emulator`` fixture gives ``.emulator`` running and ``.client`` pointed at it."""
    assert isinstance(emulator.emulator, Emulator)
    assert isinstance(emulator.client, AsyncClient)
    assert emulator.emulator.url == emulator.url
    assert 1.0 == emulator.emulator.clock.speed
    async with session() as http:
        training = await uploaded(http, emulator.url, training_file(), purpose="fine-tune")
    job = await asyncio.wait_for(
        emulator.client.fine_tuning.jobs.create(
            model="gpt-4o-mini-2024-07-18", training_file=training["id"]
        ),
        WAIT,
    )
    got = await asyncio.wait_for(emulator.client.fine_tuning.jobs.retrieve(job.id), WAIT)
    with pytest.raises(NotFoundError):
        await asyncio.wait_for(emulator.client.fine_tuning.jobs.retrieve("ftjob-nope"), WAIT)
    assert job.id == got.id
    assert training["id"] == got.training_file
    assert ["POST /files", "POST /fine_tuning/jobs", JOB_ROUTE, JOB_ROUTE] == [
        r.route for r in emulator.emulator.stats.requests
    ]


@pytest.mark.asyncio
@pytest.mark.emulator(speed=0, seed=3)
async def test_emulator_marker_configures_the_fixture(emulator: EmulatorFixture) -> None:
    """``@pytest.mark.emulator(speed=0, seed=3)`` reaches ``Emulator``: a stopped, seeded clock."""
    clock = emulator.emulator.clock
    assert 0.0 == clock.speed
    start = clock.now()
    await asyncio.sleep(0.05)
    assert start == clock.now()
    emulator.advance(30)
    assert start + 30 == clock.now()
    async with session() as http:
        first = await uploaded(http, emulator.url, b"same\n")
    # The same seed and the same requests give the same ids.
    async with Emulator(speed=0, seed=3) as reference, session() as http:
        expected = await uploaded(http, reference.url, b"same\n")
    assert expected["id"] == first["id"]


# --- the command line ----------------------------------------------------------------------------


def _read_line(stream: IO[str], timeout: float) -> str:
    """One line from a child's pipe, waiting at most ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no output within {timeout} s")
    return stream.readline()


def test_cli_emulator_prints_its_url_serves_and_exits_0_on_sigint() -> None:
    """``python -m finetune_async emulator --port 0`` prints its URL, serves, exits on SIGINT."""
    command = [sys.executable, "-m", "finetune_async", "emulator", "--port", "0", "--speed", "10"]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [*command, "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = _read_line(proc.stdout, WAIT)
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+)/v1)$", line.strip())
        assert match is not None, line
        url = match.group(1)
        status, body = urlopen_json(url + MODEL_PATH, {"Authorization": "Bearer sk-cli"})
        wrong_status, _ = urlopen_json(url + MODEL_PATH, {"Authorization": "Bearer other"})
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert 200 == status
    assert "gpt-4o-mini" == body["id"]
    assert 401 == wrong_status
    assert 0 == code
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(match.group(2))), timeout=WAIT).close()


def test_cli_emulator_with_a_bad_fault_rate_exits_2_naming_the_flag() -> None:
    """A rate outside 0-1 is a usage error: exit code 2, the flag named on stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "finetune_async", "emulator", "--port", "0", "--rate-429", "2"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert 2 == done.returncode
    assert "error: argument --rate-429: expected a fraction from 0 to 1, got '2'" in done.stderr
    assert "" == done.stdout
