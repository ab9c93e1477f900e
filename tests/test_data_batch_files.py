"""Batch input files written from typed requests, and batch result files read into typed records.

Pure and local: no server. The limits are passed small where a test crosses them, so no test
writes 200 MB; one test checks that the defaults are the seeds' values.
"""

from __future__ import annotations

import inspect
import io
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import FinetuneError, InvalidParameterError
from finetune_async.data import (
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    MAX_EMBEDDING_INPUTS,
    BatchInputSummary,
    BatchInputWriter,
    BatchRequest,
    BatchResult,
    read_batch_results,
    write_batch_input,
)
from finetune_async.types import BatchEndpoint, BatchError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"


def chat_body(text: str = "hi") -> dict[str, Any]:
    """A chat completion body."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def line_of(custom_id: str, body: dict[str, Any], url: str = CHAT) -> bytes:
    """The exact line the writer produces for one request."""
    line = {"custom_id": custom_id, "method": "POST", "url": url, "body": body}
    return orjson.dumps(line) + b"\n"


def leftovers(folder: Path) -> list[str]:
    """Every file in ``folder`` (temporary files included), by name."""
    return sorted(path.name for path in folder.iterdir())


# --- writer -----------------------------------------------------------------------------------


def test_writer_writes_one_line_per_request_in_every_spelling(tmp_path: Path) -> None:
    """A record, a dict and keywords each become one `{custom_id, method, url, body}` line."""
    target = tmp_path / "requests.jsonl"

    with BatchInputWriter(target) as writer:
        writer.add(BatchRequest(custom_id="a", body=chat_body("one")))
        writer.add({"custom_id": "b", "body": chat_body("two"), "url": CHAT})
        writer.add(custom_id="c", body=chat_body("three"))

    expected = line_of("a", chat_body("one")) + line_of("b", chat_body("two"))
    expected += line_of("c", chat_body("three"))
    assert expected == target.read_bytes()
    assert BatchInputSummary(count=3, bytes=len(expected), endpoint=CHAT) == writer.summary
    assert ["requests.jsonl"] == leftovers(tmp_path)


def test_writer_to_a_stream_leaves_it_open(tmp_path: Path) -> None:
    """Written to a binary stream, the lines go to it and the stream stays open."""
    stream = io.BytesIO()

    summary = write_batch_input(stream, [BatchRequest("x", chat_body())])

    assert line_of("x", chat_body()) == stream.getvalue()
    assert False is stream.closed
    assert 1 == summary.count


def test_keywords_without_url_go_to_the_writers_endpoint() -> None:
    """A request given by keywords without a url takes the endpoint the writer was made for."""
    stream = io.BytesIO()

    with BatchInputWriter(stream, endpoint=EMBEDDINGS) as writer:
        writer.add(custom_id="e1", body={"model": "text-embedding-3-small", "input": "hello"})

    line = orjson.loads(stream.getvalue())
    assert EMBEDDINGS == line["url"]
    assert (EMBEDDINGS, 1) == (writer.summary.endpoint, writer.summary.embedding_inputs)


def test_default_limits_are_the_seeds_values() -> None:
    """50,000 requests, 200 MB (decimal) and 50,000 embedding inputs, also as the defaults."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(BatchInputWriter).parameters.items()
        if name.startswith("max_")
    }

    assert (50_000, 200_000_000, 50_000) == (
        MAX_BATCH_REQUESTS,
        MAX_BATCH_BYTES,
        MAX_EMBEDDING_INPUTS,
    )
    assert {
        "max_requests": 50_000,
        "max_bytes": 200_000_000,
        "max_embedding_inputs": 50_000,
    } == defaults


def test_every_batch_endpoint_is_accepted() -> None:
    """The writer accepts the endpoints `batches.create` accepts (one `BatchEndpoint` list)."""
    for endpoint in BatchEndpoint:
        summary = write_batch_input(io.BytesIO(), [BatchRequest("a", {"model": "m"}, endpoint)])
        assert endpoint.value == summary.endpoint


BAD_REQUESTS = {
    "empty custom_id": (BatchRequest("", chat_body()), "custom_id", "non-empty string"),
    "blank custom_id": (BatchRequest("  ", chat_body()), "custom_id", "non-empty string"),
    "custom_id not a string": (
        {"custom_id": 7, "body": chat_body()},
        "custom_id",
        "non-empty string",
    ),
    "method GET": (BatchRequest("a", chat_body(), method="GET"), "method", "must be 'POST'"),
    "unknown url": (BatchRequest("a", chat_body(), url="/v1/nope"), "url", "must be one of"),
    "url without /v1": (
        BatchRequest("a", chat_body(), url="/chat/completions"),
        "url",
        "must be one of",
    ),
    "body not an object": ({"custom_id": "a", "body": ["x"]}, "body", "JSON object"),
    "body missing": ({"custom_id": "a"}, "body", "JSON object"),
    "body not JSON": (BatchRequest("a", {"when": object()}), "body", "not JSON-serialisable"),
    "unknown key": ({"custom_id": "a", "body": {}, "headers": {}}, "request", "unknown keys"),
}


@pytest.mark.parametrize(("request_", "param", "phrase"), BAD_REQUESTS.values(), ids=BAD_REQUESTS)
def test_bad_request_is_refused_and_nothing_is_written(
    tmp_path: Path, request_: Any, param: str, phrase: str
) -> None:
    """A bad request raises naming its parameter; its line is not written; the writer goes on."""
    target = tmp_path / "requests.jsonl"

    with BatchInputWriter(target) as writer:
        writer.add(custom_id="good-1", body=chat_body())
        with pytest.raises(InvalidParameterError) as caught:
            writer.add(request_)
        writer.add(custom_id="good-2", body=chat_body())

    assert param == caught.value.param
    assert phrase in str(caught.value)
    assert line_of("good-1", chat_body()) + line_of("good-2", chat_body()) == target.read_bytes()


def test_repeated_custom_id_is_refused_naming_it() -> None:
    """A custom_id used twice raises at the second, naming the request and the id."""
    stream = io.BytesIO()
    writer = BatchInputWriter(stream)
    writer.add(custom_id="same", body=chat_body("first"))

    with pytest.raises(InvalidParameterError) as caught:
        writer.add(custom_id="same", body=chat_body("second"))

    assert "custom_id" == caught.value.param
    assert "request 2 ('same'): custom_id is repeated" in str(caught.value)
    assert line_of("same", chat_body("first")) == stream.getvalue()


def test_one_endpoint_per_batch() -> None:
    """The first request fixes the endpoint; a request to another one is refused."""
    writer = BatchInputWriter(io.BytesIO())
    writer.add(custom_id="chat", body=chat_body())

    with pytest.raises(InvalidParameterError) as caught:
        writer.add(BatchRequest("emb", {"model": "m", "input": "x"}, url=EMBEDDINGS))

    assert "url" == caught.value.param
    assert f"differs from the batch's endpoint '{CHAT}'" in str(caught.value)


def test_endpoint_of_the_writer_is_checked_at_once(tmp_path: Path) -> None:
    """An endpoint the Batch API does not offer raises at construction, before any file exists."""
    with pytest.raises(InvalidParameterError) as caught:
        BatchInputWriter(tmp_path / "requests.jsonl", endpoint="/v1/fine_tuning/jobs")

    assert "endpoint" == caught.value.param
    assert [] == leftovers(tmp_path)


def test_request_limit_refuses_the_request_past_it() -> None:
    """With room for two requests, the third is refused and the file keeps two lines."""
    stream = io.BytesIO()

    with BatchInputWriter(stream, max_requests=2) as writer:
        writer.add(custom_id="1", body=chat_body())
        writer.add(custom_id="2", body=chat_body())
        with pytest.raises(InvalidParameterError) as caught:
            writer.add(custom_id="3", body=chat_body())

    assert "at most 2 requests" in str(caught.value)
    assert 2 == len(stream.getvalue().splitlines())


def test_byte_limit_is_checked_before_the_line_that_would_cross_it() -> None:
    """A file may be exactly the byte limit; the line that would pass it is refused, unwritten."""
    first, second = line_of("1", chat_body()), line_of("2", chat_body())
    stream = io.BytesIO()

    with BatchInputWriter(stream, max_bytes=len(first) + len(second)) as writer:
        writer.add(custom_id="1", body=chat_body())
        writer.add(custom_id="2", body=chat_body())
        with pytest.raises(InvalidParameterError) as caught:
            writer.add(custom_id="3", body=chat_body())

    assert f"at most {len(first) + len(second):,} bytes" in str(caught.value)
    assert first + second == stream.getvalue()
    assert len(first) + len(second) == writer.summary.bytes


def test_embedding_inputs_are_counted_across_requests() -> None:
    """Strings count one each, a token array counts one; the input past the limit is refused."""
    stream = io.BytesIO()
    model = "text-embedding-3-small"

    with BatchInputWriter(stream, endpoint=EMBEDDINGS, max_embedding_inputs=5) as writer:
        writer.add(custom_id="list", body={"model": model, "input": ["a", "b", "c"]})
        writer.add(custom_id="tokens", body={"model": model, "input": [101, 102, 103]})
        writer.add(custom_id="one", body={"model": model, "input": "d"})
        with pytest.raises(InvalidParameterError) as caught:
            writer.add(custom_id="over", body={"model": model, "input": "e"})

    assert "at most 5 inputs" in str(caught.value)
    assert "would make 6" in str(caught.value)
    assert (3, 5) == (writer.summary.count, writer.summary.embedding_inputs)


def test_embedding_limit_does_not_apply_to_chat() -> None:
    """A chat batch has no embedding inputs, however its bodies look."""
    summary = write_batch_input(
        io.BytesIO(), [BatchRequest(str(i), {"model": "m", "input": "x"}) for i in range(3)]
    )

    assert 0 == summary.embedding_inputs


def test_an_empty_file_is_refused_and_removed(tmp_path: Path) -> None:
    """Closing a writer with no request raises (the API refuses an empty file); no file is left."""
    with pytest.raises(InvalidParameterError) as caught, BatchInputWriter(tmp_path / "e.jsonl"):
        pass

    assert "at least one request" in str(caught.value)
    assert [] == leftovers(tmp_path)


def test_an_exception_in_the_block_leaves_no_file(tmp_path: Path) -> None:
    """A block left by an exception removes the partial file: nothing under the final name."""

    def write_a_repeated_id() -> None:
        with BatchInputWriter(tmp_path / "r.jsonl") as writer:
            writer.add(custom_id="a", body=chat_body())
            assert 1 == len(leftovers(tmp_path))  # the partial file, under a temporary name
            writer.add(custom_id="a", body=chat_body())

    with pytest.raises(InvalidParameterError):
        write_a_repeated_id()

    assert [] == leftovers(tmp_path)


def test_write_batch_input_removes_the_file_on_a_bad_request(tmp_path: Path) -> None:
    """The one-call writer leaves no file when a request is bad."""
    requests = [BatchRequest("a", chat_body()), BatchRequest("b", chat_body(), method="PUT")]

    with pytest.raises(InvalidParameterError, match="method must be 'POST'"):
        write_batch_input(tmp_path / "r.jsonl", requests)

    assert [] == leftovers(tmp_path)


def test_target_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    """A path whose folder does not exist raises at construction, naming the folder."""
    with pytest.raises(InvalidParameterError, match="does not exist"):
        BatchInputWriter(tmp_path / "missing" / "r.jsonl")


def test_request_and_keywords_together_are_refused() -> None:
    """`add` takes a request or its fields, not both."""
    writer = BatchInputWriter(io.BytesIO())

    with pytest.raises(InvalidParameterError, match="not both"):
        writer.add(BatchRequest("a", chat_body()), custom_id="b")


def test_closed_writer_refuses_requests_and_keeps_its_summary() -> None:
    """After close, `add` raises and `close` returns the same summary again."""
    writer = BatchInputWriter(io.BytesIO())
    writer.add(custom_id="a", body=chat_body())
    summary = writer.close()

    with pytest.raises(FinetuneError, match="closed"):
        writer.add(custom_id="b", body=chat_body())
    assert summary == writer.close()


def test_summary_of_an_open_writer_raises() -> None:
    """The summary exists only once the file is finished."""
    writer = BatchInputWriter(io.BytesIO())

    with pytest.raises(FinetuneError, match="not finished"):
        _ = writer.summary


# --- reader -----------------------------------------------------------------------------------

OUTPUT_LINES = [
    {
        "id": "batch_req_1",
        "custom_id": "ok-1",
        "response": {"status_code": 200, "request_id": "req_1", "body": {"id": "chatcmpl-1"}},
        "error": None,
    },
    {
        "id": "batch_req_2",
        "custom_id": "bad-1",
        "response": {
            "status_code": 400,
            "request_id": "req_2",
            "body": {"error": {"message": "you must provide a model parameter", "code": None}},
        },
        "error": None,
    },
    {
        "id": "batch_req_3",
        "custom_id": "late-1",
        "response": None,
        "error": {"code": "batch_expired", "message": "not run before the window expired"},
    },
    {"custom_id": "bare-1", "response": None, "error": "gateway said no", "extra": [1, 2]},
]
EXPECTED_RESULTS = [
    BatchResult(
        custom_id="ok-1",
        id="batch_req_1",
        status_code=200,
        request_id="req_1",
        body={"id": "chatcmpl-1"},
    ),
    BatchResult(
        custom_id="bad-1",
        id="batch_req_2",
        status_code=400,
        request_id="req_2",
        body={"error": {"message": "you must provide a model parameter", "code": None}},
    ),
    BatchResult(
        custom_id="late-1",
        id="batch_req_3",
        error=BatchError(code="batch_expired", message="not run before the window expired"),
    ),
    BatchResult(custom_id="bare-1", error=BatchError(message="gateway said no")),
]


def result_bytes(lines: list[Any]) -> bytes:
    """A result file of ``lines``, with a blank line in the middle and a trailing newline."""
    encoded = [orjson.dumps(line) for line in lines]
    return b"\n".join([*encoded[:1], b"", *encoded[1:]]) + b"\n"


def test_reader_types_every_kind_of_line() -> None:
    """Success, an endpoint's 4xx, a request that never ran, a bare error: typed, blanks skipped."""
    results = list(read_batch_results(result_bytes(OUTPUT_LINES)))

    assert EXPECTED_RESULTS == results
    assert [True, False, False, False] == [result.ok for result in results]
    assert [
        None,
        "you must provide a model parameter",
        "not run before the window expired",
        "gateway said no",
    ] == [result.error_message for result in results]


def test_reader_takes_a_path_bytes_or_lines(tmp_path: Path) -> None:
    """A path, the file's bytes, and its lines as bytes or as text give the same results."""
    data = result_bytes(OUTPUT_LINES)
    path = tmp_path / "output.jsonl"
    path.write_bytes(data)

    sources: list[Any] = [path, str(path), data, data.splitlines(), data.decode().splitlines()]

    assert [EXPECTED_RESULTS] * 5 == [list(read_batch_results(source)) for source in sources]


def test_reader_pulls_one_line_per_result() -> None:
    """The reader is lazy: the first result needs the first line only."""
    pulled: list[bytes] = []

    def lines() -> Iterator[bytes]:
        for line in result_bytes(OUTPUT_LINES).splitlines():
            pulled.append(line)
            yield line

    results = read_batch_results(lines())
    first = next(results)

    assert ("ok-1", 1) == (first.custom_id, len(pulled))


BAD_LINES = {
    "not JSON": (b"{not json", "not valid JSON"),
    "an array": (b"[1, 2]", "a result line is a JSON object, got list"),
    "no custom_id": (b'{"id": "x", "response": null}', "custom_id must be a string"),
    "response without status": (
        b'{"custom_id": "a", "response": {"body": {}}}',
        "integer status_code",
    ),
    "response not an object": (b'{"custom_id": "a", "response": "ok"}', "integer status_code"),
    "an input line": (line_of("a", chat_body()).strip(), "has a response or an error"),
    "status a boolean": (
        b'{"custom_id": "a", "response": {"status_code": true}}',
        "integer status_code",
    ),
}


@pytest.mark.parametrize(("line", "phrase"), BAD_LINES.values(), ids=BAD_LINES)
def test_bad_line_raises_naming_it_after_the_good_ones(line: bytes, phrase: str) -> None:
    """A bad line is not skipped: it raises with `SOURCE:LINE:`, after the results before it."""
    good = orjson.dumps(OUTPUT_LINES[0])
    seen: list[BatchResult] = []

    with pytest.raises(InvalidParameterError) as caught:
        seen.extend(read_batch_results(good + b"\n" + line + b"\n"))

    assert [EXPECTED_RESULTS[0]] == seen
    assert str(caught.value).startswith("<bytes>:2: ")
    assert phrase in str(caught.value)


def test_reader_of_a_missing_path_raises_at_the_call(tmp_path: Path) -> None:
    """A path that is not a file raises when the reader is made, not later."""
    with pytest.raises(InvalidParameterError, match="no such file"):
        read_batch_results(tmp_path / "missing.jsonl")


def test_reader_refuses_a_source_of_another_kind() -> None:
    """Neither a path, bytes nor lines: a clear error."""
    with pytest.raises(InvalidParameterError, match="expected a path, bytes or lines"):
        read_batch_results(42)  # type: ignore[arg-type]
