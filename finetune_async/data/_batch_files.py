"""Batch input files written from typed requests, and batch output files read into typed results.

The writer checks what the Batch API checks, before anything is uploaded (seeds 003, the spec's
``CreateBatchRequest``): a unique, non-empty ``custom_id`` per line, ``method`` ``POST``, a ``url``
the API accepts and the same one on every line (the batch's ``endpoint``), at most 50,000
requests, at most 200 MB, and for ``/v1/embeddings`` at most 50,000 inputs across the file. A
request that breaks a rule raises before its line is written, so the file on disk only ever holds
lines that passed.

The reader turns output and error lines (``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}``) into ``BatchResult`` records, one line at a time. A line that is
not such an object raises instead of being skipped: a silently dropped line would look like a
request that never ran. Blank lines are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Self

import attrs
import orjson

from .._validation import check_one_of
from ..errors import FinetuneError, InvalidParameterError
from ..types import BatchEndpoint, BatchError, BatchRequest, BatchResult

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "MAX_EMBEDDING_INPUTS",
    "BatchInputSummary",
    "BatchInputWriter",
    "parse_result_line",
    "read_batch_results",
    "write_batch_input",
]

#: Requests in one batch input file (seeds 003).
MAX_BATCH_REQUESTS: Final = 50_000
#: Bytes in one batch input file: "up to 200 MB" (seeds 003), read as decimal megabytes, the
#: stricter reading, so a file that passes here is never refused as too large by the service.
MAX_BATCH_BYTES: Final = 200_000_000
#: Embedding inputs across all requests of a ``/v1/embeddings`` batch (seeds 003).
MAX_EMBEDDING_INPUTS: Final = 50_000

_EMBEDDINGS: Final = BatchEndpoint.EMBEDDINGS.value
#: The endpoints ``batches.create`` accepts: the spec's list, kept once in ``BatchEndpoint``.
_ENDPOINTS: Final = tuple(endpoint.value for endpoint in BatchEndpoint)
_REQUEST_KEYS: Final = frozenset(field.name for field in attrs.fields(BatchRequest))

BatchSource = str | os.PathLike[str] | bytes | Iterable[bytes] | Iterable[str]
"""Where results are read from: a path, a file's bytes, or its lines (bytes or text)."""


@attrs.frozen
class BatchInputSummary:
    """What a finished batch input file holds.

    Attributes:
        count: How many requests it has.
        bytes: Its size in bytes.
        endpoint: The endpoint of its requests: the ``endpoint`` to create the batch with.
        embedding_inputs: The embedding inputs across its requests (0 for other endpoints).
    """

    count: int
    bytes: int
    endpoint: str
    embedding_inputs: int = 0


def _fail(param: str, message: str) -> InvalidParameterError:
    return InvalidParameterError(message, param=param)


def _check_endpoint(url: object, param: str) -> str:
    # The same check, and message, as batches.create's; required, so never None.
    checked = check_one_of(url, param, _ENDPOINTS, required=True)
    assert checked is not None  # noqa: S101
    return checked


def _embedding_inputs(body: Mapping[str, Any]) -> int:
    """Count the inputs of an embeddings body: a string, strings, a token array, token arrays."""
    value = body.get("input")
    if isinstance(value, list):
        # A list of token ids is one input; a list of strings or of token lists is one each.
        return 1 if value and isinstance(value[0], int) else len(value)
    return 0 if value is None else 1


class BatchInputWriter:
    """Write a batch input file one request at a time, checking each against the API's rules.

    Use it as a context manager. Written to a path, the lines go to a temporary file beside it,
    renamed into place when the block ends without an exception; a block left by an exception
    leaves no file. Written to a binary stream, the lines go straight to it and it is not closed.

    Example::

        with BatchInputWriter("requests.jsonl") as writer:
            writer.add(custom_id="q1", body={"model": "gpt-4o-mini", "messages": [...]})
        client.batches.create(input_file_id=..., endpoint=writer.summary.endpoint)

    Args:
        target: A path, or a binary stream to write to.
        endpoint: The batch's endpoint; None takes the ``url`` of the first request.
        max_requests: The most requests (the API's 50,000 unless testing).
        max_bytes: The largest file in bytes (the API's 200 MB unless testing).
        max_embedding_inputs: The most embedding inputs (the API's 50,000 unless testing).

    Raises:
        InvalidParameterError: An endpoint the Batch API does not offer, or a target path whose
            folder does not exist.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        endpoint: str | None = None,
        max_requests: int = MAX_BATCH_REQUESTS,
        max_bytes: int = MAX_BATCH_BYTES,
        max_embedding_inputs: int = MAX_EMBEDDING_INPUTS,
    ) -> None:
        self._endpoint = None if endpoint is None else _check_endpoint(endpoint, "endpoint")
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self._max_embedding_inputs = max_embedding_inputs
        self._ids: set[str] = set()
        self._bytes = 0
        self._embedding_inputs = 0
        self._summary: BatchInputSummary | None = None
        self._target: Path | None = None
        self._part: Path | None = None
        if isinstance(target, str | os.PathLike):
            self._target = Path(os.fspath(target))
            if not self._target.parent.is_dir():
                msg = f"target: the folder {self._target.parent} does not exist"
                raise _fail("target", msg)
            self._part = self._target.with_name(
                f".{self._target.name}.{uuid.uuid4().hex[:12]}.part"
            )
            self._stream: IO[bytes] = self._part.open("wb")
        else:
            self._stream = target

    @property
    def count(self) -> int:
        """How many requests were written so far."""
        return len(self._ids)

    @property
    def summary(self) -> BatchInputSummary:
        """What the finished file holds (after ``close`` or the end of the ``with`` block).

        Raises:
            FinetuneError: The writer is still open.
        """
        if self._summary is None:
            raise FinetuneError("the batch input file is not finished: close the writer first")
        return self._summary

    def add(
        self,
        request: BatchRequest | Mapping[str, Any] | None = None,
        /,
        *,
        custom_id: str | None = None,
        body: Mapping[str, Any] | None = None,
        url: str | None = None,
        method: str = "POST",
    ) -> None:
        """Check one request and append its line.

        Pass a ``BatchRequest`` (or a dict with its keys), or its fields as keywords; a request
        given by keywords without ``url`` goes to the writer's endpoint.

        Raises:
            InvalidParameterError: An empty or repeated ``custom_id``, a ``method`` other than
                POST, a ``url`` the API does not offer or that differs from the batch's endpoint,
                a body that is not a JSON object, or a limit the line would cross. Nothing is
                written then, and the writer stays usable.
            FinetuneError: The writer is closed.
        """
        if self._summary is not None or self._stream.closed:
            raise FinetuneError("this batch input writer is closed")
        if request is None:
            fields: Mapping[str, Any] = {"custom_id": custom_id, "body": body, "method": method}
            request = self._request_of({**fields, "url": url} if url is not None else fields)
        elif custom_id is not None or body is not None or url is not None:
            msg = "request: pass a request or its fields as keywords, not both"
            raise _fail("request", msg)
        elif isinstance(request, Mapping):
            request = self._request_of(request)
        self._write(request)

    def _request_of(self, line: Mapping[str, Any]) -> BatchRequest:
        """A request from its fields; without a ``url``, the writer's endpoint (or chat)."""
        unknown = sorted(map(str, set(line) - _REQUEST_KEYS))
        if unknown:
            allowed = ", ".join(sorted(_REQUEST_KEYS))
            raise _fail("request", f"request: unknown keys {unknown}; a line has {allowed}")
        # Types are checked by _write, with messages naming the request.
        return BatchRequest(
            custom_id=line.get("custom_id"),  # type: ignore[arg-type]
            body=line.get("body"),  # type: ignore[arg-type]
            url=line.get("url") or self._endpoint or BatchEndpoint.CHAT_COMPLETIONS.value,
            method=line.get("method", "POST"),
        )

    def _write(self, request: BatchRequest) -> None:
        number = self.count + 1
        # Typed fields, but records are built from user data: check the values, not the hints.
        custom_id: object = request.custom_id
        body: object = request.body
        if not isinstance(custom_id, str) or not custom_id.strip():
            raise _fail("custom_id", f"request {number}: custom_id must be a non-empty string")
        where = f"request {number} ({custom_id!r})"
        if custom_id in self._ids:
            msg = f"{where}: custom_id is repeated; custom ids must be unique within a batch"
            raise _fail("custom_id", msg)
        if request.method != "POST":
            raise _fail("method", f"{where}: method must be 'POST', got {request.method!r}")
        url = _check_endpoint(request.url, "url")
        if self._endpoint is not None and url != self._endpoint:
            msg = f"{where}: url {url!r} differs from the batch's endpoint {self._endpoint!r}"
            raise _fail("url", msg)
        if not isinstance(body, Mapping):
            raise _fail("body", f"{where}: body must be a JSON object (a dict)")
        if self.count >= self._max_requests:
            msg = f"{where}: a batch holds at most {self._max_requests:,} requests"
            raise _fail("requests", msg)
        inputs = _embedding_inputs(body) if url == _EMBEDDINGS else 0
        if self._embedding_inputs + inputs > self._max_embedding_inputs:
            total = self._embedding_inputs + inputs
            msg = (
                f"{where}: an embeddings batch holds at most {self._max_embedding_inputs:,}"
                f" inputs across its requests; this one would make {total:,}"
            )
            raise _fail("body", msg)
        line = {"custom_id": custom_id, "method": "POST", "url": url, "body": dict(body)}
        try:
            data = orjson.dumps(line) + b"\n"
        except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
            raise _fail("body", f"{where}: body is not JSON-serialisable: {exc}") from exc
        if self._bytes + len(data) > self._max_bytes:
            msg = (
                f"{where}: a batch input file is at most {self._max_bytes:,} bytes; this line"
                f" ({len(data):,} bytes) would make it {self._bytes + len(data):,}"
            )
            raise _fail("requests", msg)
        self._stream.write(data)
        self._bytes += len(data)
        self._embedding_inputs += inputs
        self._ids.add(custom_id)
        self._endpoint = url

    def close(self) -> BatchInputSummary:
        """Finish the file and return its summary; closing again returns the same summary.

        Raises:
            InvalidParameterError: No request was written (the API refuses an empty file); a
                file being written to a path is removed.
        """
        if self._summary is not None:
            return self._summary
        if self._endpoint is None or not self._ids:
            self._discard()
            raise _fail("requests", "a batch input file needs at least one request")
        self._stream.flush()
        if self._part is not None and self._target is not None:
            self._stream.close()
            self._part.replace(self._target)
        self._summary = BatchInputSummary(
            count=self.count,
            bytes=self._bytes,
            endpoint=self._endpoint,
            embedding_inputs=self._embedding_inputs,
        )
        return self._summary

    def _discard(self) -> None:
        if self._part is not None:
            self._stream.close()
            self._part.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._summary is None:
            self._discard()


def write_batch_input(
    target: str | os.PathLike[str] | IO[bytes],
    requests: Iterable[BatchRequest | Mapping[str, Any]],
    *,
    endpoint: str | None = None,
) -> BatchInputSummary:
    """Write ``requests`` as a batch input file and return its summary (see ``BatchInputWriter``).

    Raises:
        InvalidParameterError: A request breaks the Batch API's rules, or there is none; a file
            being written to a path is then removed.
    """
    with BatchInputWriter(target, endpoint=endpoint) as writer:
        for request in requests:
            writer.add(request)
    return writer.summary


# --- results ---------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _batch_error(value: object) -> BatchError | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        # Some gateways send a bare message; keep it rather than refuse the line.
        return BatchError(message=str(value))
    line = value.get("line")
    return BatchError(
        code=_text(value.get("code")),
        message=_text(value.get("message")),
        param=_text(value.get("param")),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
    )


def parse_result_line(raw: bytes | str) -> BatchResult:
    """Return the ``BatchResult`` of one output or error line.

    Tolerant where the format varies (``response: null``, a missing ``id``, an ``error`` that is
    a bare string, unknown keys) and strict where a result would be meaningless.

    Raises:
        ValueError: The line is not JSON, not an object, has no string ``custom_id``, has
            neither a ``response`` nor an ``error``, or has a ``response`` that is not an
            object with an integer ``status_code``.
    """
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = f"not valid JSON ({exc})"
        raise ValueError(msg) from exc
    if not isinstance(line, dict):
        msg = f"a result line is a JSON object, got {type(line).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - the caller reports a ValueError per line
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str):
        msg = f"custom_id must be a string, got {custom_id!r}"
        raise ValueError(msg)  # noqa: TRY004
    response = line.get("response")
    if response is None:
        if line.get("error") is None:
            # An input line (or another file) read by mistake: it is no result.
            msg = "a result line has a response or an error, and this one has neither"
            raise ValueError(msg)
        return BatchResult(
            custom_id=custom_id, id=_text(line.get("id")), error=_batch_error(line.get("error"))
        )
    status_code = response.get("status_code") if isinstance(response, dict) else None
    if not isinstance(status_code, int) or isinstance(status_code, bool):
        msg = f"response must be an object with an integer status_code, got {response!r}"
        raise ValueError(msg)  # noqa: TRY004
    return BatchResult(
        custom_id=custom_id,
        id=_text(line.get("id")),
        status_code=status_code,
        request_id=_text(response.get("request_id")),
        body=response.get("body"),
        error=_batch_error(line.get("error")),
    )


def _lines_of(source: object) -> tuple[str, Iterator[bytes | str]]:
    if isinstance(source, str | os.PathLike):
        path = Path(os.fspath(source))
        if not path.is_file():
            raise _fail("source", f"source: no such file: {path}")

        def read() -> Iterator[bytes]:
            with path.open("rb") as handle:
                yield from handle

        return str(path), read()
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>", iter(bytes(source).splitlines())
    if isinstance(source, Iterable):
        return "<lines>", iter(source)
    msg = f"source: expected a path, bytes or lines, got {type(source).__name__}"
    raise _fail("source", msg)


def _read(name: str, lines: Iterator[bytes | str]) -> Iterator[BatchResult]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield parse_result_line(raw)
        except ValueError as exc:
            raise _fail("source", f"{name}:{number}: {exc}") from exc


def read_batch_results(source: BatchSource) -> Iterator[BatchResult]:
    """Iterate over the results of a batch output or error file, one line at a time.

    Args:
        source: A path (read lazily, line by line), the file's bytes, or its lines.

    Raises:
        InvalidParameterError: The path is not a file (at the call), or, while iterating, a line
            is not a result line; the message names the line (``FILE:LINE: problem``).
    """
    name, lines = _lines_of(source)
    return _read(name, lines)
