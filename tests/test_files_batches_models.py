"""Request shapes, client-side checks and retries of client.files, client.batches, client.models."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.payload
import pytest
import pytest_asyncio
from yarl import URL

from finetune_async import (
    APIConnectionError,
    APIError,
    AsyncClient,
    FinetuneError,
    InternalServerError,
    InvalidParameterError,
    RateLimitError,
)
from finetune_async._transport import AiohttpTransport
from finetune_async.types import (
    Batch,
    BatchEndpoint,
    BatchRequestCounts,
    BatchStatus,
    FileDeleted,
    FileObject,
    FilePurpose,
    FileStatus,
    Model,
    ModelDeleted,
)
from tests.conftest import API_KEY, BASE_URL, NO_BACKOFF, MockAPI

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from pathlib import Path

    from finetune_async._sansio import AttemptTimeout, DownloadSink, Request, Response

FILE_ID = "file-abc123"
BATCH_ID = "batch_abc123"
FT_MODEL = "ft:gpt-4o-mini-2024-07-18:org:suffix:abc123"
FILES_URL = f"{BASE_URL}/files"
FILE_URL = f"{FILES_URL}/{FILE_ID}"
BATCHES_URL = f"{BASE_URL}/batches"
BATCH_URL = f"{BATCHES_URL}/{BATCH_ID}"
MODEL_URL = f"{BASE_URL}/models/{FT_MODEL}"
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
CONTENT = b'{"messages": [{"role": "user", "content": "hi"}]}\n' * 40 + b"\xff\x00\xfe tail"

FILE_JSON: dict[str, Any] = {
    "id": FILE_ID,
    "object": "file",
    "bytes": 120000,
    "created_at": 1677610602,
    "expires_at": None,
    "filename": "train.jsonl",
    "purpose": "fine-tune",
    "status": "processed",
}
BATCH_JSON: dict[str, Any] = {
    "id": BATCH_ID,
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "input_file_id": "file-in",
    "completion_window": "24h",
    "status": "validating",
    "created_at": 1711471533,
    "expires_at": 1711557933,
    "request_counts": {"total": 0, "completed": 0, "failed": 0},
    "metadata": None,
}
ERROR_JSON: dict[str, Any] = {
    "error": {"message": "boom", "type": "server_error", "param": None, "code": None}
}


def anything(value: object) -> Any:
    """Return ``value`` typed as Any, to pass deliberately wrong arguments past mypy."""
    return value


async def bounded(call: Awaitable[Any]) -> Any:
    """Await a client call, failing the test instead of hanging."""
    return await asyncio.wait_for(call, 30)


async def drain(pager: Any) -> list[Any]:
    """Collect every item of a pager."""
    return [item async for item in pager]


def form_parts(form: object) -> dict[str, tuple[str | None, dict[str, str], Any]]:
    """Return the parts of a recorded ``aiohttp.FormData``: name -> (filename, headers, value)."""
    assert isinstance(form, aiohttp.FormData)
    parts: dict[str, tuple[str | None, dict[str, str], Any]] = {}
    for options, headers, value in form._fields:
        parts[options["name"]] = (options.get("filename"), dict(headers), value)
    return parts


def file_part(form: object) -> Any:
    """Return the file object the ``file`` part of a recorded form reads (inside its payload)."""
    value = form_parts(form)["file"][2]
    return value._value if isinstance(value, aiohttp.payload.Payload) else value


def reading_file_part(seen: list[bytes]) -> Callable[..., None]:
    """An aioresponses callback that reads the file part as a server would, recording it."""

    def callback(url: URL, **kwargs: Any) -> None:
        seen.append(file_part(kwargs["data"]).read())

    return callback


def query_of(url: str) -> dict[str, str]:
    """Return the query of ``url`` as a dict."""
    return dict(URL(url).query)


class RecordingTransport:
    """The aiohttp transport, keeping the exact Request it sends (aioresponses normalises URLs)."""

    def __init__(self) -> None:
        self._inner = AiohttpTransport()
        self.sent: list[Request] = []

    async def send(self, request: Request, limits: AttemptTimeout) -> Response:
        """Record, then send through aiohttp (intercepted by aioresponses)."""
        self.sent.append(request)
        return await self._inner.send(request, limits)

    async def stream(
        self, request: Request, limits: AttemptTimeout, sink: DownloadSink
    ) -> Response:
        """Record, then stream through aiohttp."""
        self.sent.append(request)
        return await self._inner.stream(request, limits, sink)

    async def aclose(self) -> None:
        """Close the aiohttp session."""
        await self._inner.aclose()


@pytest_asyncio.fixture
async def recorded() -> AsyncIterator[tuple[AsyncClient, RecordingTransport]]:
    """A client whose transport records the exact requests."""
    transport = RecordingTransport()
    async with AsyncClient(
        api_key=API_KEY, base_url=BASE_URL, backoff=NO_BACKOFF, transport=transport
    ) as c:
        yield c, transport
    await transport.aclose()


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    """A small JSONL file on disk, with CONTENT."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(CONTENT)
    return path


@pytest.fixture
def text_handle(data_file: Path) -> Iterator[io.TextIOWrapper]:
    """The data file opened in text mode (a mistake the SDK must catch)."""
    with data_file.open("r", encoding="utf-8", errors="replace") as handle:
        yield handle


# --- files.create: the multipart request ---------------------------------------------------------


@pytest.mark.asyncio
async def test_create_from_path_is_a_streamed_multipart_post(
    mock_api: MockAPI, client: AsyncClient, data_file: Path
) -> None:
    """A path upload is one POST /files with a FormData body: purpose field and named file part."""
    seen: list[bytes] = []
    mock_api.post(FILES_URL, payload=FILE_JSON, callback=reading_file_part(seen))

    result = await bounded(client.files.create(file=data_file, purpose="fine-tune"))

    assert (
        FileObject(
            id=FILE_ID,
            object="file",
            bytes=120000,
            created_at=1677610602,
            expires_at=None,
            filename="train.jsonl",
            purpose=FilePurpose.FINE_TUNE,
            status=FileStatus.PROCESSED,
        )
        == result
    )
    calls = mock_api.calls()
    assert [("POST", FILES_URL)] == [(method, url) for method, url, _ in calls]
    kwargs = calls[0][2]
    parts = form_parts(kwargs["data"])
    assert ["purpose", "file"] == list(parts)
    assert (None, "fine-tune") == (parts["purpose"][0], parts["purpose"][2])
    assert "train.jsonl" == parts["file"][0]
    assert "application/octet-stream" == parts["file"][1]["Content-Type"]
    # The file goes as a file object (streamed by aiohttp), never as bytes read up front.
    assert isinstance(file_part(kwargs["data"]), io.IOBase)
    assert [CONTENT] == seen


@pytest.mark.asyncio
async def test_create_headers_have_idempotency_key_and_no_json_content_type(
    mock_api: MockAPI, client: AsyncClient, data_file: Path
) -> None:
    """The upload carries an Idempotency-Key and leaves Content-Type to aiohttp's multipart."""
    mock_api.post(FILES_URL, payload=FILE_JSON)

    await bounded(client.files.create(file=data_file, purpose="fine-tune"))

    headers = {k.lower(): v for k, v in mock_api.calls()[0][2]["headers"].items()}
    assert "content-type" not in headers
    assert headers["idempotency-key"].strip() != ""
    assert f"Bearer {API_KEY}" == headers["authorization"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("source", "expected_filename"),
    [
        ("path", "train.jsonl"),
        ("path_str", "train.jsonl"),
        ("binary_handle", "train.jsonl"),
        ("bytes", "upload"),
        ("bytearray", "upload"),
        ("bytesio", "upload"),
        ("tuple_bytes", "given-name.jsonl"),
        ("tuple_handle", "given-name.jsonl"),
    ],
)
async def test_create_filename_of_each_source(
    mock_api: MockAPI, client: AsyncClient, data_file: Path, source: str, expected_filename: str
) -> None:
    """The file part is named by the path's base name, the handle's name, "upload", or the tuple."""
    seen: list[bytes] = []
    mock_api.post(FILES_URL, payload=FILE_JSON, callback=reading_file_part(seen))
    with data_file.open("rb") as handle:
        sources: dict[str, object] = {
            "path": data_file,
            "path_str": str(data_file),
            "binary_handle": handle,
            "bytes": CONTENT,
            "bytearray": bytearray(CONTENT),
            "bytesio": io.BytesIO(CONTENT),
            "tuple_bytes": ("given-name.jsonl", CONTENT),
            "tuple_handle": ("given-name.jsonl", handle),
        }
        await bounded(client.files.create(file=anything(sources[source]), purpose="batch"))
        if source in {"binary_handle", "tuple_handle"}:
            # A caller's file object is the caller's to close.
            assert handle.closed is False

    parts = form_parts(mock_api.calls()[0][2]["data"])
    assert expected_filename == parts["file"][0]
    assert "batch" == parts["purpose"][2]
    assert [CONTENT] == seen


@pytest.mark.asyncio
@pytest.mark.parametrize("purpose", UPLOAD_PURPOSES)
async def test_create_accepts_every_upload_purpose(
    mock_api: MockAPI, client: AsyncClient, purpose: str
) -> None:
    """Each of the spec's upload purposes is sent as the purpose field."""
    mock_api.post(FILES_URL, payload={**FILE_JSON, "purpose": purpose})

    result = await bounded(client.files.create(file=b"x", purpose=purpose))

    assert purpose == result.purpose
    assert purpose == form_parts(mock_api.calls()[0][2]["data"])["purpose"][2]


# --- files: retrieve, list, delete, content -----------------------------------------------------


@pytest.mark.asyncio
async def test_retrieve_file(mock_api: MockAPI, client: AsyncClient) -> None:
    """files.retrieve is GET /files/{id} without a body."""
    mock_api.get(FILE_URL, payload=FILE_JSON)

    result = await bounded(client.files.retrieve(FILE_ID))

    assert FILE_ID == result.id
    calls = mock_api.calls()
    assert [("GET", FILE_URL)] == [(m, u) for m, u, _ in calls]
    assert calls[0][2].get("data") is None
    assert "Idempotency-Key" not in calls[0][2]["headers"]


@pytest.mark.asyncio
async def test_list_files_sends_every_filter(mock_api: MockAPI, client: AsyncClient) -> None:
    """files.list sends purpose, limit, after and order as the query."""
    mock_api.get(re.compile(r"^https://api\.test/v1/files\?.*$"), payload={"data": [FILE_JSON]})

    items = await bounded(
        drain(client.files.list(purpose="fine-tune", limit=5, after="file-0", order="asc"))
    )

    assert [FILE_ID] == [item.id for item in items]
    calls = mock_api.calls()
    assert 1 == len(calls)
    assert {"purpose": "fine-tune", "limit": "5", "after": "file-0", "order": "asc"} == query_of(
        calls[0][1]
    )


@pytest.mark.asyncio
async def test_list_files_without_filters_sends_no_query(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """files.list with no arguments sends no query parameters at all."""
    mock_api.get(FILES_URL, payload={"object": "list", "data": [], "has_more": False})

    assert [] == await bounded(drain(client.files.list()))
    assert [("GET", FILES_URL)] == [(m, u) for m, u, _ in mock_api.calls()]


@pytest.mark.asyncio
async def test_list_files_follows_the_cursor(mock_api: MockAPI, client: AsyncClient) -> None:
    """A page with has_more leads to a second request with after=<last id>."""
    pattern = re.compile(r"^https://api\.test/v1/files(\?.*)?$")
    mock_api.get(
        pattern,
        payload={
            "object": "list",
            "data": [{**FILE_JSON, "id": "file-1"}, {**FILE_JSON, "id": "file-2"}],
            "has_more": True,
            "last_id": "file-2",
        },
    )
    mock_api.get(
        pattern,
        payload={"object": "list", "data": [{**FILE_JSON, "id": "file-3"}], "has_more": False},
    )

    items = await bounded(drain(client.files.list(limit=2, purpose="batch")))

    assert ["file-1", "file-2", "file-3"] == [item.id for item in items]
    queries = [query_of(url) for _, url, _ in mock_api.calls()]
    assert [
        {"limit": "2", "purpose": "batch"},
        {"limit": "2", "purpose": "batch", "after": "file-2"},
    ] == queries


@pytest.mark.asyncio
async def test_delete_file(mock_api: MockAPI, client: AsyncClient) -> None:
    """files.delete is DELETE /files/{id} and returns the FileDeleted answer."""
    mock_api.delete(FILE_URL, payload={"id": FILE_ID, "object": "file", "deleted": True})

    result = await bounded(client.files.delete(FILE_ID))

    assert FileDeleted(id=FILE_ID, deleted=True, object="file") == result
    assert [("DELETE", FILE_URL)] == [(m, u) for m, u, _ in mock_api.calls()]


@pytest.mark.asyncio
async def test_delete_file_204_without_body(mock_api: MockAPI, client: AsyncClient) -> None:
    """A 204 with no body still gives FileDeleted(id, deleted=True)."""
    mock_api.delete(FILE_URL, status=204, body=b"")

    result = await bounded(client.files.delete(FILE_ID))

    assert FileDeleted(id=FILE_ID, deleted=True) == result


@pytest.mark.asyncio
async def test_file_content_returns_the_exact_bytes(mock_api: MockAPI, client: AsyncClient) -> None:
    """files.content returns the body byte for byte and asks with Accept: */*."""
    body = bytes(range(256)) * 3 + b'{"not": "parsed"}'
    mock_api.get(f"{FILE_URL}/content", body=body, content_type="application/octet-stream")

    result = await bounded(client.files.content(FILE_ID))

    assert body == result
    calls = mock_api.calls()
    assert [("GET", f"{FILE_URL}/content")] == [(m, u) for m, u, _ in calls]
    assert "*/*" == calls[0][2]["headers"]["Accept"]


@pytest.mark.asyncio
async def test_file_content_of_a_json_file_is_not_parsed(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A JSON-typed answer to files.content is still returned as raw bytes."""
    body = b'{"custom_id": "a"}\n{"custom_id": "b"}\n'
    mock_api.get(f"{FILE_URL}/content", body=body, content_type="application/json")

    assert body == await bounded(client.files.content(FILE_ID))


@pytest.mark.asyncio
async def test_file_ids_are_one_path_segment(
    mock_api: MockAPI, recorded: tuple[AsyncClient, RecordingTransport]
) -> None:
    """A file id with '/' or '?' is percent-encoded instead of changing the path."""
    client, transport = recorded
    mock_api.get(re.compile(r"^https://api\.test/v1/files/.*$"), payload=FILE_JSON)

    await bounded(client.files.retrieve("file/../x?y"))

    assert f"{FILES_URL}/file%2F..%2Fx%3Fy" == transport.sent[0].url


# --- batches --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_batch_sends_only_given_fields(mock_api: MockAPI, client: AsyncClient) -> None:
    """batches.create POSTs a JSON body of the given fields, with the default window."""
    mock_api.post(BATCHES_URL, payload=BATCH_JSON)

    result = await bounded(
        client.batches.create(input_file_id="file-in", endpoint="/v1/chat/completions")
    )

    assert (
        Batch(
            id=BATCH_ID,
            object="batch",
            status=BatchStatus.VALIDATING,
            endpoint=BatchEndpoint.CHAT_COMPLETIONS,
            input_file_id="file-in",
            completion_window="24h",
            created_at=1711471533,
            expires_at=1711557933,
            request_counts=BatchRequestCounts(total=0, completed=0, failed=0),
            metadata=None,
        )
        == result
    )
    calls = mock_api.calls()
    assert [("POST", BATCHES_URL)] == [(m, u) for m, u, _ in calls]
    kwargs = calls[0][2]
    assert {
        "input_file_id": "file-in",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    } == json.loads(kwargs["data"])
    assert "application/json" == kwargs["headers"]["Content-Type"]
    assert kwargs["headers"]["Idempotency-Key"].strip() != ""


@pytest.mark.asyncio
@pytest.mark.parametrize("endpoint", [e.value for e in BatchEndpoint])
async def test_create_batch_accepts_every_endpoint(
    mock_api: MockAPI, client: AsyncClient, endpoint: str
) -> None:
    """Every endpoint of the spec's list is sent as given."""
    mock_api.post(BATCHES_URL, payload={**BATCH_JSON, "endpoint": endpoint})

    await bounded(client.batches.create(input_file_id="file-in", endpoint=endpoint))

    assert endpoint == json.loads(mock_api.calls()[0][2]["data"])["endpoint"]


@pytest.mark.asyncio
async def test_create_batch_with_metadata(mock_api: MockAPI, client: AsyncClient) -> None:
    """Metadata is sent as given."""
    mock_api.post(BATCHES_URL, payload={**BATCH_JSON, "metadata": {"team": "nlp"}})

    result = await bounded(
        client.batches.create(
            input_file_id="file-in",
            endpoint="/v1/embeddings",
            completion_window="24h",
            metadata={"team": "nlp", "run": "7"},
        )
    )

    assert {"team": "nlp"} == result.metadata
    assert {
        "input_file_id": "file-in",
        "endpoint": "/v1/embeddings",
        "completion_window": "24h",
        "metadata": {"team": "nlp", "run": "7"},
    } == json.loads(mock_api.calls()[0][2]["data"])


@pytest.mark.asyncio
async def test_retrieve_batch(mock_api: MockAPI, client: AsyncClient) -> None:
    """batches.retrieve is GET /batches/{id}."""
    mock_api.get(BATCH_URL, payload={**BATCH_JSON, "status": "in_progress"})

    result = await bounded(client.batches.retrieve(BATCH_ID))

    assert BatchStatus.IN_PROGRESS == result.status
    calls = mock_api.calls()
    assert [("GET", BATCH_URL)] == [(m, u) for m, u, _ in calls]
    assert calls[0][2].get("data") is None


@pytest.mark.asyncio
async def test_cancel_batch_is_a_post_without_body(mock_api: MockAPI, client: AsyncClient) -> None:
    """batches.cancel is POST /batches/{id}/cancel with no body and an Idempotency-Key."""
    mock_api.post(f"{BATCH_URL}/cancel", payload={**BATCH_JSON, "status": "cancelling"})

    result = await bounded(client.batches.cancel(BATCH_ID))

    assert BatchStatus.CANCELLING == result.status
    calls = mock_api.calls()
    assert [("POST", f"{BATCH_URL}/cancel")] == [(m, u) for m, u, _ in calls]
    assert calls[0][2].get("data") is None
    assert calls[0][2]["headers"]["Idempotency-Key"].strip() != ""


@pytest.mark.asyncio
async def test_list_batches_paginates(mock_api: MockAPI, client: AsyncClient) -> None:
    """batches.list walks pages with limit and the after cursor, lazily."""
    pattern = re.compile(r"^https://api\.test/v1/batches(\?.*)?$")
    mock_api.get(
        pattern,
        payload={
            "object": "list",
            "data": [{**BATCH_JSON, "id": "batch_1"}, {**BATCH_JSON, "id": "batch_2"}],
            "has_more": True,
            "first_id": "batch_1",
            "last_id": "batch_2",
        },
    )
    mock_api.get(
        pattern,
        payload={"object": "list", "data": [{**BATCH_JSON, "id": "batch_3"}], "has_more": False},
    )

    pager = client.batches.list(limit=2, after="batch_0")
    assert [] == mock_api.calls()  # nothing is fetched before iterating
    items = await bounded(drain(pager))

    assert ["batch_1", "batch_2", "batch_3"] == [item.id for item in items]
    assert all(isinstance(item, Batch) for item in items)
    assert [{"limit": "2", "after": "batch_0"}, {"limit": "2", "after": "batch_2"}] == [
        query_of(url) for _, url, _ in mock_api.calls()
    ]


# --- models ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_retrieve_model_keeps_the_colons(
    mock_api: MockAPI, recorded: tuple[AsyncClient, RecordingTransport]
) -> None:
    """models.retrieve of a fine-tuned id sends the ':' as they are, not %3A."""
    client, transport = recorded
    mock_api.get(
        MODEL_URL,
        payload={"id": FT_MODEL, "object": "model", "created": 1721764800, "owned_by": "org"},
    )

    result = await bounded(client.models.retrieve(FT_MODEL))

    assert Model(id=FT_MODEL, object="model", created=1721764800, owned_by="org") == result
    assert [("GET", MODEL_URL)] == [(r.method, r.url) for r in transport.sent]


@pytest.mark.asyncio
async def test_delete_model(
    mock_api: MockAPI, recorded: tuple[AsyncClient, RecordingTransport]
) -> None:
    """models.delete is DELETE /models/{id} with the ':' intact."""
    client, transport = recorded
    mock_api.delete(MODEL_URL, payload={"id": FT_MODEL, "object": "model", "deleted": True})

    result = await bounded(client.models.delete(FT_MODEL))

    assert ModelDeleted(id=FT_MODEL, deleted=True, object="model") == result
    assert [("DELETE", MODEL_URL)] == [(r.method, r.url) for r in transport.sent]


@pytest.mark.asyncio
async def test_delete_model_204_without_body(mock_api: MockAPI, client: AsyncClient) -> None:
    """A 204 with no body gives ModelDeleted(id, deleted=True)."""
    mock_api.delete(MODEL_URL, status=204, body=b"")

    assert ModelDeleted(id=FT_MODEL, deleted=True) == await bounded(client.models.delete(FT_MODEL))


# --- client-side checks: InvalidParameterError and nothing sent ---------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "purpose",
    [
        "fine_tune",
        "",
        None,
        "batch_output",
        "fine-tune-results",
        "assistants_output",
        "FINE-TUNE",
        " fine-tune",
        5,
    ],
)
async def test_bad_purpose_is_rejected_before_sending(
    mock_api: MockAPI, client: AsyncClient, data_file: Path, purpose: object
) -> None:
    """A purpose outside the spec's upload purposes raises InvalidParameterError, nothing sent."""
    mock_api.post(FILES_URL, payload=FILE_JSON, repeat=True)

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(client.files.create(file=data_file, purpose=anything(purpose)))

    assert "purpose" == caught.value.param
    assert [] == mock_api.calls()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["missing", "missing_str", "directory", "int", "none", "str_list"])
async def test_bad_file_is_rejected_before_sending(
    mock_api: MockAPI, client: AsyncClient, tmp_path: Path, kind: str
) -> None:
    """A missing path, a directory or a value of the wrong kind raises, nothing sent."""
    mock_api.post(FILES_URL, payload=FILE_JSON, repeat=True)
    files: dict[str, object] = {
        "missing": tmp_path / "nope.jsonl",
        "missing_str": str(tmp_path / "nope.jsonl"),
        "directory": tmp_path,
        "int": 42,
        "none": None,
        "str_list": ["a", "b"],
    }

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(client.files.create(file=anything(files[kind]), purpose="fine-tune"))

    assert "file" == caught.value.param
    assert [] == mock_api.calls()


@pytest.mark.asyncio
async def test_text_mode_file_object_is_rejected(
    mock_api: MockAPI, client: AsyncClient, text_handle: io.TextIOWrapper
) -> None:
    """A file opened with "r" (text mode) raises InvalidParameterError, nothing sent."""
    mock_api.post(FILES_URL, payload=FILE_JSON, repeat=True)

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(client.files.create(file=anything(text_handle), purpose="fine-tune"))

    assert "file" == caught.value.param
    assert "binary" in str(caught.value)
    assert [] == mock_api.calls()


@pytest.mark.asyncio
async def test_text_mode_file_object_in_a_tuple_is_rejected(
    mock_api: MockAPI, client: AsyncClient, text_handle: io.TextIOWrapper
) -> None:
    """A text-mode file object inside (filename, file) is rejected as well."""
    mock_api.post(FILES_URL, payload=FILE_JSON, repeat=True)

    with pytest.raises(InvalidParameterError):
        await bounded(
            client.files.create(file=anything(("x.jsonl", text_handle)), purpose="fine-tune")
        )

    assert [] == mock_api.calls()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("endpoint", "completion_window", "param"),
    [
        ("/v1/foo", "24h", "endpoint"),
        ("v1/chat/completions", "24h", "endpoint"),
        ("/v1/chat/completions/", "24h", "endpoint"),
        ("/chat/completions", "24h", "endpoint"),
        ("", "24h", "endpoint"),
        (None, "24h", "endpoint"),
        ("/v1/chat/completions", "48h", "completion_window"),
        ("/v1/chat/completions", "1h", "completion_window"),
        ("/v1/chat/completions", "", "completion_window"),
        ("/v1/chat/completions", 24, "completion_window"),
        ("/v1/chat/completions", None, "completion_window"),
    ],
)
async def test_bad_batch_endpoint_or_window_is_rejected(
    mock_api: MockAPI, client: AsyncClient, endpoint: object, completion_window: object, param: str
) -> None:
    """An endpoint or completion window outside the spec's lists raises, nothing sent."""
    mock_api.post(BATCHES_URL, payload=BATCH_JSON, repeat=True)

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(
            client.batches.create(
                input_file_id="file-in",
                endpoint=anything(endpoint),
                completion_window=anything(completion_window),
            )
        )

    assert param == caught.value.param
    assert [] == mock_api.calls()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "metadata",
    [
        "team=nlp",
        ["team", "nlp"],
        {"team": 1},
        {"team": None},
        {1: "x"},
        {f"k{i}": "v" for i in range(17)},
        {"k" * 65: "v"},
        {"k": "v" * 513},
    ],
    ids=["str", "list", "int_value", "none_value", "int_key", "17_keys", "long_key", "long_value"],
)
async def test_bad_batch_metadata_is_rejected(
    mock_api: MockAPI, client: AsyncClient, metadata: object
) -> None:
    """Metadata that is not up to 16 short string pairs raises, nothing sent."""
    mock_api.post(BATCHES_URL, payload=BATCH_JSON, repeat=True)

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(
            client.batches.create(
                input_file_id="file-in",
                endpoint="/v1/chat/completions",
                metadata=anything(metadata),
            )
        )

    assert (caught.value.param or "").startswith("metadata")
    assert [] == mock_api.calls()


def _empty_id_calls() -> list[tuple[str, Callable[[AsyncClient, Path, str], Awaitable[object]]]]:
    return [
        ("files.retrieve", lambda c, p, v: c.files.retrieve(v)),
        ("files.delete", lambda c, p, v: c.files.delete(v)),
        ("files.content", lambda c, p, v: c.files.content(v)),
        ("files.download", lambda c, p, v: c.files.download(v, p / "out.bin")),
        ("files.list.after", lambda c, p, v: drain(c.files.list(after=v))),
        ("files.list.purpose", lambda c, p, v: drain(c.files.list(purpose=v))),
        ("batches.retrieve", lambda c, p, v: c.batches.retrieve(v)),
        ("batches.cancel", lambda c, p, v: c.batches.cancel(v)),
        (
            "batches.create",
            lambda c, p, v: c.batches.create(input_file_id=v, endpoint="/v1/chat/completions"),
        ),
        ("batches.list.after", lambda c, p, v: drain(c.batches.list(after=v))),
        ("models.retrieve", lambda c, p, v: c.models.retrieve(v)),
        ("models.delete", lambda c, p, v: c.models.delete(v)),
    ]


EMPTY_ID_CASES = [
    pytest.param(call, value, id=f"{name}-{value!r}")
    for name, call in _empty_id_calls()
    for value in ["", "   ", None, 7]
    # None is the documented "no filter / no cursor" value of the list parameters.
    if not (value is None and ".list." in name)
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("call", "value"), EMPTY_ID_CASES)
async def test_empty_ids_are_rejected_everywhere(
    mock_api: MockAPI,
    client: AsyncClient,
    tmp_path: Path,
    call: Callable[[AsyncClient, Path, Any], Awaitable[object]],
    value: object,
) -> None:
    """An empty, blank or non-string id raises InvalidParameterError and sends nothing."""
    mock_api.get(re.compile(r".*"), payload={}, repeat=True)
    mock_api.post(re.compile(r".*"), payload={}, repeat=True)
    mock_api.delete(re.compile(r".*"), payload={}, repeat=True)

    with pytest.raises(InvalidParameterError):
        await bounded(call(client, tmp_path, value))

    assert [] == mock_api.calls()
    assert [] == list(tmp_path.iterdir())


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "10"])
@pytest.mark.parametrize("resource", ["files", "batches"])
async def test_bad_limit_is_rejected(
    mock_api: MockAPI, client: AsyncClient, resource: str, limit: object
) -> None:
    """A limit that is not a positive integer raises when the list is asked for, nothing sent."""
    mock_api.get(re.compile(r".*"), payload={"data": []}, repeat=True)
    lister = client.files.list if resource == "files" else client.batches.list

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(drain(lister(limit=anything(limit))))

    assert "limit" == caught.value.param
    assert [] == mock_api.calls()


@pytest.mark.asyncio
@pytest.mark.parametrize("order", ["up", "ASC", "ascending", ""])
async def test_bad_file_order_is_rejected(
    mock_api: MockAPI, client: AsyncClient, order: str
) -> None:
    """files.list(order=...) accepts only "asc" and "desc"."""
    mock_api.get(re.compile(r".*"), payload={"data": []}, repeat=True)

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(drain(client.files.list(order=order)))

    assert "order" == caught.value.param
    assert [] == mock_api.calls()


@pytest.mark.asyncio
async def test_download_to_a_directory_is_rejected(
    mock_api: MockAPI, client: AsyncClient, tmp_path: Path
) -> None:
    """files.download to an existing directory raises before sending and writes nothing."""
    mock_api.get(f"{FILE_URL}/content", body=b"data", repeat=True)
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(InvalidParameterError) as caught:
        await bounded(client.files.download(FILE_ID, target))

    assert "path" == caught.value.param
    assert [] == mock_api.calls()
    assert [target] == list(tmp_path.iterdir())
    assert [] == list(target.iterdir())


# --- retries of uploads --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_upload_answered_ambiguously_is_sent_once(
    mock_api: MockAPI, client: AsyncClient, data_file: Path, status: int
) -> None:
    """An upload answered 5xx or 408 is not re-sent and says its outcome is unknown."""
    mock_api.post(FILES_URL, status=status, payload=ERROR_JSON, repeat=True)

    with pytest.raises(APIError) as caught:
        await bounded(client.files.create(file=data_file, purpose="fine-tune"))

    assert 1 == len(mock_api.calls())
    assert caught.value.outcome_unknown is True
    if status >= 500:
        assert isinstance(caught.value, InternalServerError)


@pytest.mark.asyncio
async def test_upload_500_raises_internal_server_error(
    mock_api: MockAPI, client: AsyncClient, data_file: Path
) -> None:
    """An upload answered 500 raises InternalServerError with outcome_unknown, after one send."""
    mock_api.post(FILES_URL, status=500, payload=ERROR_JSON, repeat=True)

    with pytest.raises(InternalServerError) as caught:
        await bounded(client.files.create(file=data_file, purpose="fine-tune"))

    assert caught.value.outcome_unknown is True
    assert 500 == caught.value.status_code
    assert 1 == len(mock_api.calls())


@pytest.mark.asyncio
async def test_upload_cut_while_sending_is_not_resent(
    mock_api: MockAPI, client: AsyncClient, data_file: Path
) -> None:
    """A connection lost during an upload is not retried blindly: outcome unknown, sent once."""
    mock_api.post(FILES_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)

    with pytest.raises(APIConnectionError) as caught:
        await bounded(client.files.create(file=data_file, purpose="fine-tune"))

    assert caught.value.outcome_unknown is True
    assert 1 == len(mock_api.calls())


@pytest.mark.asyncio
async def test_upload_of_a_path_after_429_rereads_the_file(
    mock_api: MockAPI, client: AsyncClient, data_file: Path
) -> None:
    """429 then 200: sent twice, the path re-read from its start each time, with one key."""
    seen: list[bytes] = []
    mock_api.post(FILES_URL, status=429, payload=ERROR_JSON, callback=reading_file_part(seen))
    mock_api.post(FILES_URL, payload=FILE_JSON, callback=reading_file_part(seen))

    result = await bounded(client.files.create(file=data_file, purpose="fine-tune"))

    assert FILE_ID == result.id
    calls = mock_api.calls()
    assert 2 == len(calls)
    assert [CONTENT, CONTENT] == seen
    keys = [kwargs["headers"]["Idempotency-Key"] for _, _, kwargs in calls]
    assert keys[0] == keys[1]
    for _, _, kwargs in calls:
        # Each attempt's source is closed once sent (the SDK opened it).
        assert file_part(kwargs["data"]).closed is True


@pytest.mark.asyncio
async def test_upload_of_bytes_after_429_sends_them_again(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """429 then 200 with bytes: both attempts send every byte."""
    seen: list[bytes] = []
    mock_api.post(FILES_URL, status=429, payload=ERROR_JSON, callback=reading_file_part(seen))
    mock_api.post(FILES_URL, payload=FILE_JSON, callback=reading_file_part(seen))

    await bounded(client.files.create(file=("x.jsonl", CONTENT), purpose="fine-tune"))

    assert [CONTENT, CONTENT] == seen


@pytest.mark.asyncio
async def test_upload_of_a_seekable_handle_after_429_starts_at_its_position(
    mock_api: MockAPI, client: AsyncClient, data_file: Path
) -> None:
    """A file object positioned at k is sent from k on both attempts, and left open."""
    offset = 37
    seen: list[bytes] = []
    mock_api.post(FILES_URL, status=429, payload=ERROR_JSON, callback=reading_file_part(seen))
    mock_api.post(FILES_URL, payload=FILE_JSON, callback=reading_file_part(seen))

    with data_file.open("rb") as handle:
        handle.seek(offset)
        await bounded(client.files.create(file=handle, purpose="fine-tune"))
        assert handle.closed is False

    assert 2 == len(mock_api.calls())
    assert [CONTENT[offset:], CONTENT[offset:]] == seen


class NonSeekable(io.BytesIO):
    """A stream that cannot go back, like a pipe or a socket."""

    def seekable(self) -> bool:
        """Say it cannot seek."""
        return False


@pytest.mark.asyncio
async def test_upload_of_a_non_seekable_source_is_not_sent_twice(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """429 on a non-seekable source: the retry raises FinetuneError instead of sending it again."""
    seen: list[bytes] = []
    mock_api.post(FILES_URL, status=429, payload=ERROR_JSON, callback=reading_file_part(seen))
    mock_api.post(FILES_URL, payload=FILE_JSON, repeat=True, callback=reading_file_part(seen))

    with pytest.raises(FinetuneError) as caught:
        await bounded(client.files.create(file=NonSeekable(CONTENT), purpose="fine-tune"))

    assert "twice" in str(caught.value)
    assert not isinstance(caught.value, InvalidParameterError)
    assert 1 == len(mock_api.calls())
    assert [CONTENT] == seen


@pytest.mark.asyncio
async def test_upload_of_a_non_seekable_source_succeeds_once(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A non-seekable source uploads fine when the first attempt succeeds."""
    seen: list[bytes] = []
    mock_api.post(FILES_URL, payload=FILE_JSON, callback=reading_file_part(seen))

    result = await bounded(
        client.files.create(file=("stream.jsonl", NonSeekable(CONTENT)), purpose="batch")
    )

    assert FILE_ID == result.id
    assert [CONTENT] == seen
    assert "stream.jsonl" == form_parts(mock_api.calls()[0][2]["data"])["file"][0]


@pytest.mark.asyncio
async def test_upload_429_every_time_raises_rate_limit_after_the_retries(
    mock_api: MockAPI, client: AsyncClient, data_file: Path
) -> None:
    """429 on every attempt: max_retries + 1 sends, then RateLimitError (outcome known)."""
    mock_api.post(FILES_URL, status=429, payload=ERROR_JSON, repeat=True)

    with pytest.raises(RateLimitError) as caught:
        await bounded(client.files.create(file=data_file, purpose="fine-tune"))

    assert client.max_retries + 1 == len(mock_api.calls())
    assert caught.value.outcome_unknown is False
