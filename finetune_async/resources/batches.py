"""The Batch API: run many requests from an uploaded JSONL file within a completion window."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Final

import attrs

from .._pagination import AsyncPager, Pager, Runner
from .._polling import Watcher, is_terminal, wait_for
from .._sansio import path_segment
from .._validation import check_id, check_metadata, check_one_of
from ..types import Batch, BatchEndpoint, Page
from ._requester import Requester, paginate

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["BATCH_ENDPOINTS", "COMPLETION_WINDOWS", "AsyncBatches"]

#: The endpoints a batch may target (the spec's CreateBatchRequest).
BATCH_ENDPOINTS: Final = tuple(endpoint.value for endpoint in BatchEndpoint)
#: The completion windows the API accepts.
COMPLETION_WINDOWS: Final = ("24h",)


def _batch_status(batch: Batch) -> str:
    return batch.status


def _batch_path(batch_id: str, suffix: str = "") -> str:
    return f"/batches/{path_segment(check_id(batch_id, 'batch_id'))}{suffix}"


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
    ) -> Batch:
        """Create a batch from an uploaded JSONL file (purpose ``batch``).

        Not repeated after a failure that leaves its outcome unknown (see
        ``fine_tuning.jobs.create``).

        Args:
            input_file_id: The uploaded file of requests (up to 50,000 requests, 200 MB).
            endpoint: One of ``BATCH_ENDPOINTS``, e.g. ``"/v1/chat/completions"``.
            completion_window: ``"24h"``, the only window the API offers.
            metadata: Up to 16 string pairs.

        Raises:
            InvalidParameterError: An empty file id, an unknown endpoint or window, or bad
                metadata (nothing is sent).
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
    ) -> Batch:
        """Blocking twin of ``AsyncBatches.create``."""
        return self._runner.call(
            partial(
                self._async_api.create,
                input_file_id=input_file_id,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata=metadata,
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
