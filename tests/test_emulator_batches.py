"""The emulator's batches: life cycle on a virtual clock, output and error files, failures."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest

from finetune_async.emulator import Emulator, Timing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping

AUTH = {"Authorization": "Bearer test"}
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
COMPLETIONS = "/v1/completions"
MODEL = "gpt-4o-mini"
VALIDATE = 10.0
REQUEST = 0.5
FINALIZE = 10.0
CANCEL = 5.0
DAY = 24 * 3600
ERROR_KEYS = {"message", "type", "param", "code"}
LINE_KEYS = {"id", "custom_id", "response", "error"}

Json = dict[str, Any]


# --- helpers -----------------------------------------------------------------------------------


class Api:
    """Raw HTTP calls to one running emulator (the SDK has no files/batches API yet)."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send one request and return (status, decoded JSON body)."""
        async with self.session.request(
            method, self.emu.url + path, json=json, params=params
        ) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def ok(self, method: str, path: str, *, json: object = None, **params: str) -> Json:
        """Send one request that must succeed and return its JSON body."""
        status, body = await self.call(method, path, json=json, params=params or None)
        assert 200 == status, body
        assert isinstance(body, dict)
        return body

    async def upload(
        self, data: bytes, *, purpose: str = "batch", filename: str = "input.jsonl"
    ) -> Json:
        """Upload ``data`` as a multipart file and return the file object."""
        form = aiohttp.FormData()
        form.add_field("purpose", purpose)
        form.add_field("file", data, filename=filename, content_type="application/jsonl")
        async with self.session.post(self.emu.url + "/files", data=form) as resp:
            body = orjson.loads(await resp.read())
            assert 200 == resp.status, body
            assert isinstance(body, dict)
            return body

    async def content(self, file_id: str) -> bytes:
        """Return the bytes of a file."""
        async with self.session.get(f"{self.emu.url}/files/{file_id}/content") as resp:
            assert 200 == resp.status
            return await resp.read()

    async def lines(self, file_id: str) -> list[Json]:
        """Return the decoded JSONL lines of a file."""
        return [orjson.loads(line) for line in (await self.content(file_id)).splitlines() if line]

    async def create_batch(
        self, lines: Iterable[Mapping[str, Any] | bytes], endpoint: str = CHAT, **extra: Any
    ) -> Json:
        """Upload ``lines`` and create a batch on them."""
        uploaded = await self.upload(jsonl(lines))
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": endpoint,
            "completion_window": "24h",
            **extra,
        }
        return await self.ok("POST", "/batches", json=body)

    async def batch(self, batch_id: str) -> Json:
        """GET /batches/{id}."""
        return await self.ok("GET", f"/batches/{batch_id}")

    async def after(self, seconds: float, batch_id: str) -> Json:
        """Advance the clock by ``seconds`` and return the batch."""
        self.emu.advance(seconds)
        return await self.batch(batch_id)


@asynccontextmanager
async def running(seed: int = 1, timing: Timing | None = None) -> AsyncIterator[Api]:
    """A stopped-clock emulator and a session on it."""
    async with (
        Emulator(speed=0, seed=seed, timing=timing) as emu,
        aiohttp.ClientSession(headers=AUTH, timeout=aiohttp.ClientTimeout(total=10)) as session,
    ):
        yield Api(emu, session)


def jsonl(lines: Iterable[Mapping[str, Any] | bytes]) -> bytes:
    """Encode request lines (raw bytes are kept as they are) as a JSONL file."""
    return b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )


def request(custom_id: str, body: Mapping[str, Any], url: str = CHAT, method: str = "POST") -> Json:
    """One line of a batch input file."""
    return {"custom_id": custom_id, "method": method, "url": url, "body": dict(body)}


def chat(custom_id: str, text: str | None = None, **body: Any) -> Json:
    """A well-formed chat-completions request line."""
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": text or f"question {custom_id}"},
    ]
    return request(custom_id, {"model": MODEL, "messages": messages, **body})


def assert_error_shape(body: Any, param: str | None) -> Json:
    """The body is OpenAI's ``{"error": {message, type, param, code}}`` naming ``param``."""
    assert isinstance(body, dict)
    assert ["error"] == list(body)
    error = body["error"]
    assert ERROR_KEYS == set(error)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    assert param == error["param"]
    return dict(error)


async def run_to_end(api: Api, batch_id: str, requests: int) -> Json:
    """Advance through validating, every request and finalizing; return the batch."""
    return await api.after(VALIDATE + requests * REQUEST + FINALIZE, batch_id)


# --- the life cycle ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_chat_batch_walks_validating_in_progress_finalizing_completed() -> None:
    """A chat batch moves through every status on the clock, counting one request per 0.5 s."""
    lines = [chat(f"req-{i}") for i in range(6)]
    async with running() as api:
        created = await api.create_batch(lines, metadata={"team": "ml"})
        batch_id = created["id"]
        assert "validating" == created["status"]
        assert "batch" == created["object"]
        assert CHAT == created["endpoint"]
        assert "24h" == created["completion_window"]
        assert {"team": "ml"} == created["metadata"]
        assert created["created_at"] + DAY == created["expires_at"]
        assert "in_progress_at" not in created

        assert "validating" == (await api.after(VALIDATE - 0.5, batch_id))["status"]
        started = await api.after(0.5, batch_id)
        assert "in_progress" == started["status"]
        assert created["created_at"] + VALIDATE == started["in_progress_at"]
        assert {"total": 6, "completed": 0, "failed": 0} == started["request_counts"]
        assert MODEL == started["model"]

        # Quarter-second steps: the count moves by one every other step, exactly.
        for quarter in range(1, 12):
            batch = await api.after(REQUEST / 2, batch_id)
            done = math.floor(quarter / 2)
            assert {"total": 6, "completed": done, "failed": 0} == batch["request_counts"]
            assert "in_progress" == batch["status"]
        batch = await api.after(REQUEST / 2, batch_id)
        assert "finalizing" == batch["status"]
        assert {"total": 6, "completed": 6, "failed": 0} == batch["request_counts"]
        assert started["in_progress_at"] + 6 * REQUEST == batch["finalizing_at"]
        assert "output_file_id" not in batch

        assert "finalizing" == (await api.after(FINALIZE - 0.5, batch_id))["status"]
        done_batch = await api.after(0.5, batch_id)
        assert "completed" == done_batch["status"]
        assert batch["finalizing_at"] + FINALIZE == done_batch["completed_at"]
        assert {"total": 6, "completed": 6, "failed": 0} == done_batch["request_counts"]
        assert isinstance(done_batch["output_file_id"], str)
        assert "error_file_id" not in done_batch
        assert {"team": "ml"} == done_batch["metadata"]
        assert done_batch["usage"]["total_tokens"] > 0
        # A completed batch stays completed.
        assert done_batch == await api.after(DAY * 2, batch_id)


@pytest.mark.asyncio
async def test_output_file_has_one_batch_line_per_request_with_every_custom_id() -> None:
    """The output file uses OpenAI's batch line format, one line per request, ids kept."""
    custom_ids = ["alpha", "beta", "gamma-1", "42", "δ-unicode"]
    lines = [chat(cid, f"tell me about {cid}") for cid in custom_ids]
    async with running() as api:
        batch = await run_to_end(api, (await api.create_batch(lines))["id"], len(lines))
        assert "completed" == batch["status"]
        output_meta = await api.ok("GET", f"/files/{batch['output_file_id']}")
        assert "batch_output" == output_meta["purpose"]
        output = await api.lines(batch["output_file_id"])

    assert custom_ids == [line["custom_id"] for line in output]
    for line, cid in zip(output, custom_ids, strict=True):
        assert LINE_KEYS == set(line)
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        response = line["response"]
        assert {"status_code", "request_id", "body"} == set(response)
        assert 200 == response["status_code"]
        assert response["request_id"].startswith("req_")
        body = response["body"]
        assert "chat.completion" == body["object"]
        assert MODEL == body["model"]
        assert "assistant" == body["choices"][0]["message"]["role"]
        assert f"tell me about {cid}" in body["choices"][0]["message"]["content"]
        usage = body["usage"]
        assert usage["prompt_tokens"] + usage["completion_tokens"] == usage["total_tokens"]
    assert len(output) == len({line["id"] for line in output})


async def _completed_output(seed: int, lines: list[Json]) -> list[Json]:
    async with running(seed=seed) as api:
        batch = await run_to_end(api, (await api.create_batch(lines))["id"], len(lines))
        assert "completed" == batch["status"]
        return await api.lines(batch["output_file_id"])


@pytest.mark.asyncio
async def test_responses_are_deterministic_for_the_same_input_and_seed() -> None:
    """The same input in a second emulator with the same seed gives the same lines and bodies."""
    lines = [chat(f"c{i}", f"prompt number {i}", temperature=0.2) for i in range(5)]
    first = await _completed_output(11, lines)
    second = await _completed_output(11, lines)

    def without_clock(line: Json) -> Json:
        # `created` is the emulated time, which starts at each emulator's wall-clock start.
        body = {k: v for k, v in line["response"]["body"].items() if k != "created"}
        return {**line, "response": {**line["response"], "body": body}}

    assert [without_clock(line) for line in first] == [without_clock(line) for line in second]
    # Different inputs give different answers: the comparison above is not vacuous.
    bodies = [line["response"]["body"]["choices"][0]["message"]["content"] for line in first]
    assert len(lines) == len(set(bodies))


@pytest.mark.asyncio
async def test_bodies_the_endpoint_cannot_take_go_to_the_error_file_with_400() -> None:
    """Chat lines without messages or without a model land in the error file; counts are exact."""
    no_messages = request("no-messages", {"model": MODEL})
    empty_messages = request("empty-messages", {"model": MODEL, "messages": []})
    no_model = request("no-model", {"messages": [{"role": "user", "content": "hi"}]})
    lines = [chat("ok-1"), no_messages, chat("ok-2"), no_model, empty_messages, chat("ok-3")]
    expected_counts = [(1, 0), (1, 1), (2, 1), (2, 2), (2, 3), (3, 3)]
    async with running() as api:
        batch_id = (await api.create_batch(lines))["id"]
        await api.after(VALIDATE, batch_id)
        for completed, failed in expected_counts[:-1]:
            batch = await api.after(REQUEST, batch_id)
            assert {"total": 6, "completed": completed, "failed": failed} == batch["request_counts"]
        batch = await api.after(REQUEST + FINALIZE, batch_id)
        assert "completed" == batch["status"]
        assert {"total": 6, "completed": 3, "failed": 3} == batch["request_counts"]
        output = await api.lines(batch["output_file_id"])
        errors = await api.lines(batch["error_file_id"])

    assert ["ok-1", "ok-2", "ok-3"] == [line["custom_id"] for line in output]
    assert ["no-messages", "no-model", "empty-messages"] == [line["custom_id"] for line in errors]
    for line, param in zip(errors, ["messages", "model", "messages"], strict=True):
        assert LINE_KEYS == set(line)
        assert line["error"] is None
        assert 400 == line["response"]["status_code"]
        assert line["response"]["request_id"].startswith("req_")
        assert_error_shape(line["response"]["body"], param)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("endpoint", "body", "obj"),
    [
        (EMBEDDINGS, {"model": "text-embedding-3-small", "input": ["one", "two"]}, "list"),
        (EMBEDDINGS, {"model": "text-embedding-3-small", "input": "single"}, "list"),
        (COMPLETIONS, {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}, "text_completion"),
    ],
    ids=["embeddings-list", "embeddings-string", "completions"],
)
async def test_embeddings_and_completions_batches_complete(
    endpoint: str, body: Json, obj: str
) -> None:
    """Embeddings and completions batches answer every request with that endpoint's object."""
    lines = [request(f"r{i}", body, url=endpoint) for i in range(3)]
    async with running() as api:
        batch = await run_to_end(api, (await api.create_batch(lines, endpoint))["id"], 3)
        assert "completed" == batch["status"]
        assert endpoint == batch["endpoint"]
        assert {"total": 3, "completed": 3, "failed": 0} == batch["request_counts"]
        output = await api.lines(batch["output_file_id"])

    assert ["r0", "r1", "r2"] == [line["custom_id"] for line in output]
    for line in output:
        answer = line["response"]["body"]
        assert 200 == line["response"]["status_code"]
        assert obj == answer["object"]
        assert body["model"] == answer["model"]
        if endpoint == EMBEDDINGS:
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            assert list(range(len(inputs))) == [item["index"] for item in answer["data"]]
            assert all(item["embedding"] for item in answer["data"])
        else:
            assert "Say hi" in answer["choices"][0]["text"]


@pytest.mark.asyncio
async def test_embeddings_line_without_input_is_a_400_in_the_error_file() -> None:
    """An embeddings body without ``input`` is answered 400 naming ``input``."""
    lines = [
        request("good", {"model": "e", "input": "x"}, url=EMBEDDINGS),
        request("bad", {"model": "e"}, url=EMBEDDINGS),
    ]
    async with running() as api:
        batch = await run_to_end(api, (await api.create_batch(lines, EMBEDDINGS))["id"], 2)
        assert {"total": 2, "completed": 1, "failed": 1} == batch["request_counts"]
        errors = await api.lines(batch["error_file_id"])
    assert ["bad"] == [line["custom_id"] for line in errors]
    assert 400 == errors[0]["response"]["status_code"]
    assert_error_shape(errors[0]["response"]["body"], "input")


# --- inputs that fail the whole batch ------------------------------------------------------------

BAD_LINES: dict[str, bytes | Json] = {
    "invalid-json": b'{"custom_id": "x", "method": "POST", ',
    "duplicate-custom-id": chat("first"),
    "url-mismatch": request("wrong-url", {"model": MODEL, "input": "x"}, url=EMBEDDINGS),
    "method-not-post": request("get", {"model": MODEL, "messages": []}, method="GET"),
    "not-an-object": b'["custom_id", "x"]',
    "missing-custom-id": {"method": "POST", "url": CHAT, "body": {"model": MODEL}},
}


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", list(BAD_LINES))
async def test_a_structurally_bad_line_fails_the_batch_naming_the_line(kind: str) -> None:
    """One bad line (line 2) makes the batch ``failed`` with an error naming line 2."""
    lines = [chat("first"), BAD_LINES[kind], chat("third")]
    async with running() as api:
        created = await api.create_batch(lines)
        assert "validating" == created["status"]
        assert "validating" == (await api.after(VALIDATE - 0.5, created["id"]))["status"]
        batch = await api.after(0.5, created["id"])
    assert "failed" == batch["status"]
    assert created["created_at"] + VALIDATE == batch["failed_at"]
    assert "list" == batch["errors"]["object"]
    assert [2] == [error["line"] for error in batch["errors"]["data"]]
    error = batch["errors"]["data"][0]
    assert isinstance(error["code"], str)
    assert error["message"]
    assert "output_file_id" not in batch
    assert "in_progress_at" not in batch


@pytest.mark.asyncio
async def test_every_bad_line_is_listed_in_the_batch_errors() -> None:
    """Several bad lines are each named by their line number, in file order."""
    lines: list[Json | bytes] = [
        chat("a"),  # 1
        b"not json at all",  # 2
        chat("b"),  # 3
        chat("a"),  # 4: duplicate
        request("c", {"model": MODEL}, url=COMPLETIONS),  # 5: wrong url
        request("d", {"model": MODEL, "messages": []}, method="PUT"),  # 6: not POST
        chat("e"),  # 7
    ]
    async with running() as api:
        batch = await api.after(VALIDATE, (await api.create_batch(lines))["id"])
        # A failed batch stays failed.
        later = await api.after(DAY * 2, batch["id"])
    assert "failed" == batch["status"]
    assert [2, 4, 5, 6] == [error["line"] for error in batch["errors"]["data"]]
    assert "a" in batch["errors"]["data"][1]["message"]
    assert batch == later


@pytest.mark.asyncio
async def test_an_empty_input_file_fails_the_batch() -> None:
    """A file without any request fails the batch at validation."""
    async with running() as api:
        batch = await api.after(VALIDATE, (await api.create_batch([]))["id"])
    assert "failed" == batch["status"]
    assert 1 == len(batch["errors"]["data"])


# --- create errors -------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "param"),
    [
        ("unknown-file", "input_file_id"),
        ("fine-tune-file", "input_file_id"),
        ("bad-endpoint", "endpoint"),
        ("bad-window", "completion_window"),
        ("bad-metadata", "metadata"),
    ],
)
async def test_create_batch_rejects_bad_parameters_with_400_naming_the_param(
    case: str, param: str
) -> None:
    """Unknown or wrong-purpose files, endpoints, windows and metadata are 400 naming the param."""
    async with running() as api:
        good = await api.upload(jsonl([chat("x")]))
        tuning = await api.upload(jsonl([chat("x")]), purpose="fine-tune")
        body: Json = {"input_file_id": good["id"], "endpoint": CHAT, "completion_window": "24h"}
        if case == "unknown-file":
            body["input_file_id"] = "file-doesnotexist"
        elif case == "fine-tune-file":
            body["input_file_id"] = tuning["id"]
        elif case == "bad-endpoint":
            body["endpoint"] = "/v1/fine_tuning/jobs"
        elif case == "bad-window":
            body["completion_window"] = "48h"
        else:
            body["metadata"] = {f"k{i}": "v" for i in range(17)}
        status, answer = await api.call("POST", "/batches", json=body)
        listed = await api.ok("GET", "/batches")
    assert 400 == status
    error = assert_error_shape(answer, param)
    assert "invalid_request_error" == error["type"]
    assert [] == listed["data"]


@pytest.mark.asyncio
async def test_unknown_batch_is_404() -> None:
    """Retrieving or cancelling an unknown batch id is a 404 in OpenAI's error shape."""
    async with running() as api:
        status, body = await api.call("GET", "/batches/batch_nope")
        cancel_status, cancel_body = await api.call("POST", "/batches/batch_nope/cancel")
    assert 404 == status
    assert_error_shape(body, "batch_id")
    assert 404 == cancel_status
    assert_error_shape(cancel_body, "batch_id")


# --- cancel --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_cancel_in_progress_goes_cancelling_then_cancelled_with_a_partial_output() -> None:
    """Cancel mid-run: ``cancelling``, then ``cancelled`` 5 s later, with the answers so far."""
    lines = [chat(f"q{i}") for i in range(10)]
    async with running() as api:
        batch_id = (await api.create_batch(lines))["id"]
        progressed = await api.after(VALIDATE + 3 * REQUEST, batch_id)
        assert {"total": 10, "completed": 3, "failed": 0} == progressed["request_counts"]

        cancelling = await api.ok("POST", f"/batches/{batch_id}/cancel")
        assert "cancelling" == cancelling["status"]
        assert int(api.emu.clock.now()) == cancelling["cancelling_at"]
        assert "cancelled_at" not in cancelling
        # Cancelling again while cancelling is accepted and changes nothing.
        assert cancelling == await api.ok("POST", f"/batches/{batch_id}/cancel")

        still = await api.after(CANCEL - 0.5, batch_id)
        assert "cancelling" == still["status"]
        assert {"total": 10, "completed": 3, "failed": 0} == still["request_counts"]
        cancelled = await api.after(0.5, batch_id)
        assert "cancelled" == cancelled["status"]
        assert cancelling["cancelling_at"] + CANCEL == cancelled["cancelled_at"]
        assert cancelling["cancelling_at"] == cancelled["cancelling_at"]
        assert {"total": 10, "completed": 3, "failed": 0} == cancelled["request_counts"]
        output = await api.lines(cancelled["output_file_id"])
        again_status, again = await api.call("POST", f"/batches/{batch_id}/cancel")

    assert ["q0", "q1", "q2"] == [line["custom_id"] for line in output]
    assert 400 == again_status
    assert_error_shape(again, None)


@pytest.mark.asyncio
async def test_cancel_while_validating_cancels_with_nothing_processed() -> None:
    """A batch cancelled while validating ends ``cancelled`` without output."""
    async with running() as api:
        batch_id = (await api.create_batch([chat("a"), chat("b")]))["id"]
        cancelling = await api.ok("POST", f"/batches/{batch_id}/cancel")
        assert "cancelling" == cancelling["status"]
        cancelled = await api.after(CANCEL, batch_id)
    assert "cancelled" == cancelled["status"]
    assert "output_file_id" not in cancelled
    assert "in_progress_at" not in cancelled
    assert 0 == cancelled["request_counts"]["completed"]


@pytest.mark.asyncio
@pytest.mark.parametrize("end", ["completed", "failed"])
async def test_cancel_of_a_finished_batch_is_400(end: str) -> None:
    """A completed or failed batch cannot be cancelled: 400, and the batch is unchanged."""
    lines: list[Json | bytes] = [chat("a")] if end == "completed" else [b"{oops"]
    async with running() as api:
        batch = await run_to_end(api, (await api.create_batch(lines))["id"], 1)
        assert end == batch["status"]
        status, body = await api.call("POST", f"/batches/{batch['id']}/cancel")
        after = await api.batch(batch["id"])
    assert 400 == status
    error = assert_error_shape(body, None)
    assert "invalid_state" == error["code"]
    assert batch == after


# --- expiry --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_batch_still_running_after_24_hours_expires() -> None:
    """Past 24 h, an unfinished batch is ``expired``; unprocessed requests get batch_expired."""
    hour = 3600.0
    timing = Timing(batch_validate=VALIDATE, batch_request=hour)
    lines = [chat(f"e{i}") for i in range(30)]
    async with running(timing=timing) as api:
        created = await api.create_batch(lines)
        batch_id = created["id"]
        nearly = await api.after(DAY - 1, batch_id)
        assert "in_progress" == nearly["status"]
        assert {"total": 30, "completed": 23, "failed": 0} == nearly["request_counts"]
        expired = await api.after(1 + 3600, batch_id)
        assert "expired" == expired["status"]
        assert created["expires_at"] == expired["expired_at"]
        assert {"total": 30, "completed": 23, "failed": 7} == expired["request_counts"]
        output = await api.lines(expired["output_file_id"])
        errors = await api.lines(expired["error_file_id"])
        cancel_status, _ = await api.call("POST", f"/batches/{batch_id}/cancel")

    assert [f"e{i}" for i in range(23)] == [line["custom_id"] for line in output]
    assert [f"e{i}" for i in range(23, 30)] == [line["custom_id"] for line in errors]
    for line in errors:
        assert LINE_KEYS == set(line)
        assert line["response"] is None
        assert "batch_expired" == line["error"]["code"]
        assert line["error"]["message"]
    assert 400 == cancel_status


# --- listing -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_list_batches_is_newest_first_with_cursor_pagination() -> None:
    """GET /batches lists newest first and pages with ``after``/``limit`` and ``has_more``."""
    async with running() as api:
        ids = [(await api.create_batch([chat(f"x{i}")]))["id"] for i in range(5)]
        newest_first = ids[::-1]
        everything = await api.ok("GET", "/batches")
        assert newest_first == [b["id"] for b in everything["data"]]
        assert everything["has_more"] is False
        assert "list" == everything["object"]

        seen: list[str] = []
        pages: list[bool] = []
        after: str | None = None
        for _ in range(10):
            params = {"limit": "2"} | ({"after": after} if after else {})
            page = await api.ok("GET", "/batches", **params)
            seen.extend(b["id"] for b in page["data"])
            pages.append(page["has_more"])
            assert page["data"][0]["id"] == page["first_id"]
            assert page["data"][-1]["id"] == page["last_id"]
            if not page["has_more"]:
                break
            after = page["last_id"]
        status, body = await api.call("GET", "/batches", params={"after": "batch_unknown"})
    assert newest_first == seen
    assert [True, True, False] == pages
    assert 400 == status
    assert_error_shape(body, "after")


@pytest.mark.asyncio
async def test_listed_batches_are_brought_up_to_the_clock() -> None:
    """A batch seen through the list has the same status as through GET."""
    async with running() as api:
        batch_id = (await api.create_batch([chat("a")]))["id"]
        api.emu.advance(VALIDATE + REQUEST + FINALIZE)
        listed = (await api.ok("GET", "/batches"))["data"][0]
        single = await api.batch(batch_id)
    assert "completed" == listed["status"]
    assert single == listed


# --- robustness ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_response_created_times_fall_within_the_processing_window() -> None:
    """Each answer's ``created`` is when it was processed, not when someone next looked."""
    lines = [chat(f"t{i}") for i in range(4)]
    async with running() as api:
        batch_id = (await api.create_batch(lines))["id"]
        # Look only long after the batch ended: the answers must keep their own times.
        batch = await api.after(VALIDATE + 4 * REQUEST + FINALIZE + 3600, batch_id)
        output = await api.lines(batch["output_file_id"])
    assert "completed" == batch["status"]
    created = [line["response"]["body"]["created"] for line in output]
    assert [] == [c for c in created if not batch["in_progress_at"] <= c <= batch["finalizing_at"]]


@pytest.mark.asyncio
async def test_deleting_the_input_file_of_a_validating_batch_breaks_nothing() -> None:
    """A batch whose input file was deleted still answers, and so do the other endpoints."""
    async with running() as api:
        created = await api.create_batch([chat("a"), chat("b")])
        status, _ = await api.call("DELETE", f"/files/{created['input_file_id']}")
        assert 200 == status
        api.emu.advance(VALIDATE + FINALIZE)
        batch_status, batch = await api.call("GET", f"/batches/{created['id']}")
        answers = [
            (await api.call("GET", path))[0] for path in ("/batches", "/files", f"/models/{MODEL}")
        ]
    assert 200 == batch_status, batch
    assert batch["status"] in {"failed", "completed"}
    assert [200, 200, 200] == answers
