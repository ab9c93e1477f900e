"""The Batch API: run many requests from an uploaded JSONL file within a completion window."""

from __future__ import annotations

import tempfile
from contextlib import aclosing
from functools import partial
from typing import IO, TYPE_CHECKING, Final

import attrs

from .._pagination import AsyncPager, Pager, Runner, iterate_blocking
from .._polling import Watcher, is_terminal, wait_for
from .._sansio import path_segment
from .._validation import check_expires_after, check_id, check_metadata, check_one_of
from ..data._batch_files import parse_result_line
from ..errors import APIResponseValidationError, FinetuneError
from ..types import Batch, BatchEndpoint, BatchResult, Page
from ._file_paths import ANY_CONTENT, file_path
from ._requester import Requester, paginate

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator, Mapping

__all__ = ["BATCH_ENDPOINTS", "COMPLETION_WINDOWS", "AsyncBatches"]

#: The endpoints a batch may target (the spec's CreateBatchRequest).
BATCH_ENDPOINTS: Final = tuple(endpoint.value for endpoint in BatchEndpoint)
#: The completion windows the API accepts.
COMPLETION_WINDOWS: Final = ("24h",)
#: Bytes of a result file held in memory before its download spills to a temporary file.
_SPOOL_IN_MEMORY: Final = 8 * 1024 * 1024
#: How much of a bad result line an error quotes.
_QUOTED: Final = 200


def _batch_status(batch: Batch) -> str:
    return batch.status


def _batch_path(batch_id: str, suffix: str = "") -> str:
    return f"/batches/{path_segment(check_id(batch_id, 'batch_id'))}{suffix}"


def _result_file_ids(batch: Batch) -> list[str]:
    """The output then error file of a batch that has ended, or raise saying why there are none.

    Raises:
        FinetuneError: The batch has not ended, or it failed before running any request.
    """
    status = str(batch.status)
    if not is_terminal(status):
        msg = (
            f"batch {batch.id} is {status}: its results exist once it has ended;"
            f" wait for it with batches.wait({batch.id!r})"
        )
        raise FinetuneError(msg)
    file_ids = [file_id for file_id in (batch.output_file_id, batch.error_file_id) if file_id]
    if not file_ids and status.lower() == "failed":
        problems = [
            f"line {error.line}: {error.message}" if error.line else str(error.message)
            for error in (batch.errors.data if batch.errors else [])
        ]
        reason = "; ".join(problems[:3]) or "no reason given"
        msg = f"batch {batch.id} failed before running any request, so it has no results: {reason}"
        raise FinetuneError(msg)
    return file_ids


class _SpooledSink:
    """A download held in memory while small, in an anonymous temporary file beyond that."""

    def __init__(self) -> None:
        # Not a `with`: the file outlives this call, and `_results` closes it once read.
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        self._offset = 0

    @property
    def offset(self) -> int:
        return self._offset

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self._offset += len(chunk)

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self._offset = 0


@attrs.frozen
class AsyncBatches:
    """``client.batches``."""

    _requester: Requester

    async def create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        output_expires_after: Mapping[str, object] | None = None,
    ) -> Batch:
        """Create a batch from an uploaded JSONL file (purpose ``batch``).

        Not repeated after a failure that leaves its outcome unknown (see
        ``fine_tuning.jobs.create``).

        Args:
            input_file_id: The uploaded file of requests (up to 50,000 requests, 200 MB).
            endpoint: One of ``BATCH_ENDPOINTS``, e.g. ``"/v1/chat/completions"``.
            completion_window: ``"24h"``, the only window the API offers.
            metadata: Up to 16 string pairs.
            output_expires_after: When the batch's output and error files expire,
                ``{"anchor": "created_at", "seconds": N}`` with N from 3600 to 2592000.

        Raises:
            InvalidParameterError: An empty file id, an unknown endpoint or window, bad
                metadata or a bad ``output_expires_after`` (nothing is sent).
        """
        body: dict[str, object] = {
            "input_file_id": check_id(input_file_id, "input_file_id"),
            "endpoint": check_one_of(endpoint, "endpoint", BATCH_ENDPOINTS, required=True),
            "completion_window": check_one_of(
                completion_window, "completion_window", COMPLETION_WINDOWS, required=True
            ),
        }
        if metadata is not None:
            body["metadata"] = check_metadata(metadata)
        expiry = check_expires_after(output_expires_after, "output_expires_after")
        if expiry is not None:
            body["output_expires_after"] = expiry
        return await self._requester.request("POST", "/batches", Batch, body=body)

    async def retrieve(self, batch_id: str) -> Batch:
        """Return a batch's current state."""
        return await self._requester.request("GET", _batch_path(batch_id), Batch)

    async def wait(
        self, batch_id: str, *, poll_interval: float = 10.0, timeout: float | None = None
    ) -> Batch:
        """Poll a batch until it is final (completed, failed, expired, cancelled) and return it.

        Raises:
            WaitTimeoutError: Not final in time; ``last`` holds the batch as last seen.
        """
        path = _batch_path(batch_id)
        watcher = Watcher(
            self._requester,
            [batch_id],
            path_of=lambda _: path,
            into=Batch,
            status_of=_batch_status,
            is_done=is_terminal,
            poll_interval=poll_interval,
            max_concurrency=1,
            timeout=timeout,
        )
        return await wait_for(watcher, batch_id)

    async def cancel(self, batch_id: str) -> Batch:
        """Cancel a batch (it goes ``cancelling``, then ``cancelled``)."""
        return await self._requester.request("POST", _batch_path(batch_id, "/cancel"), Batch)

    def list(self, *, limit: int | None = None, after: str | None = None) -> AsyncPager[Batch]:
        """Iterate over batches, newest first, fetching pages lazily.

        Raises:
            InvalidParameterError: A non-positive limit (nothing is sent).
        """
        return paginate(self._requester, "/batches", Page[Batch], limit=limit, after=after)

    def results(self, batch_id: str) -> AsyncGenerator[BatchResult]:
        """Yield the result of every request of an ended batch: its output file, then its errors.

        Each file is downloaded (resumed on retries) into memory while small and into an
        anonymous temporary file beyond 8 MiB, then parsed one line at a time, so memory stays
        flat however large the batch. Results come in file order, which need not be the input
        order: match them by ``custom_id`` (or use ``results_by_id``). A cancelled or expired
        batch gives the results of the requests it got to.

        Raises:
            InvalidParameterError: An empty id (at the call, nothing sent).
            FinetuneError: From the iteration: the batch has not ended yet (its status is in the
                message; ``wait`` for it first), or it failed validation and has no results.
            APIResponseValidationError: From the iteration: a line is not a result line.
        """
        path = _batch_path(batch_id)
        return self._results(path)

    async def results_by_id(self, batch_id: str) -> dict[str, BatchResult]:
        """Return every result of an ended batch keyed by ``custom_id`` (held whole in memory).

        Raises:
            InvalidParameterError: An empty id (nothing is sent).
            FinetuneError: The batch has not ended, or it failed validation (see ``results``).
            APIResponseValidationError: A line is not a result line.
        """
        # aclosing: a cancelled call closes the download's temporary file at once, not at GC.
        async with aclosing(self.results(batch_id)) as results:
            return {result.custom_id: result async for result in results}

    async def _results(self, path: str) -> AsyncGenerator[BatchResult]:
        batch = await self._requester.request("GET", path, Batch)
        for file_id in _result_file_ids(batch):
            # Downloaded by a plain await, then yielded outside any scope
            # (docs/architecture.md rule 3).
            content = await self._spooled(file_id)
            with content:
                content.seek(0)
                for number, raw in enumerate(content, start=1):
                    if raw.strip():
                        yield _result(raw, file_id, number)

    async def _spooled(self, file_id: str) -> IO[bytes]:
        sink = _SpooledSink()
        try:
            await self._requester.download(
                file_path(file_id, "/content"), sink, headers=ANY_CONTENT
            )
        except BaseException:
            sink.file.close()
            raise
        return sink.file


def _result(raw: bytes, file_id: str, number: int) -> BatchResult:
    try:
        return parse_result_line(raw)
    except ValueError as exc:
        quoted = raw.rstrip(b"\r\n")[:_QUOTED].decode("utf-8", errors="replace")
        raise APIResponseValidationError(
            f"line {number} of batch result file {file_id} is not a result line: {exc}",
            status_code=200,
            body=quoted,
            method="GET",
            url=file_path(file_id, "/content"),
        ) from exc


@attrs.frozen
class Batches:
    """Blocking twin of ``AsyncBatches``."""

    _async_api: AsyncBatches
    _runner: Runner

    def create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        output_expires_after: Mapping[str, object] | None = None,
    ) -> Batch:
        """Blocking twin of ``AsyncBatches.create``."""
        return self._runner.call(
            partial(
                self._async_api.create,
                input_file_id=input_file_id,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata=metadata,
                output_expires_after=output_expires_after,
            )
        )

    def retrieve(self, batch_id: str) -> Batch:
        """Blocking twin of ``AsyncBatches.retrieve``."""
        return self._runner.call(partial(self._async_api.retrieve, batch_id))

    def wait(
        self, batch_id: str, *, poll_interval: float = 10.0, timeout: float | None = None
    ) -> Batch:
        """Blocking twin of ``AsyncBatches.wait``."""
        return self._runner.call(
            partial(self._async_api.wait, batch_id, poll_interval=poll_interval, timeout=timeout)
        )

    def cancel(self, batch_id: str) -> Batch:
        """Blocking twin of ``AsyncBatches.cancel``."""
        return self._runner.call(partial(self._async_api.cancel, batch_id))

    def list(self, *, limit: int | None = None, after: str | None = None) -> Pager[Batch]:
        """Blocking twin of ``AsyncBatches.list``: a lazy iterator over batches."""
        return Pager(self._runner, self._async_api.list(limit=limit, after=after))

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Blocking twin of ``AsyncBatches.results``: a plain iterator, flat in memory."""
        return iterate_blocking(self._runner, self._async_api.results(batch_id))

    def results_by_id(self, batch_id: str) -> dict[str, BatchResult]:
        """Blocking twin of ``AsyncBatches.results_by_id``."""
        return self._runner.call(partial(self._async_api.results_by_id, batch_id))
