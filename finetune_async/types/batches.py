"""Records of the Batch API."""

from __future__ import annotations

import attrs

from ._enums import BatchEndpoint, BatchStatus

__all__ = [
    "Batch",
    "BatchError",
    "BatchErrors",
    "BatchInputTokensDetails",
    "BatchOutputTokensDetails",
    "BatchRequestCounts",
    "BatchUsage",
]


@attrs.frozen
class BatchRequestCounts:
    """How many requests of a batch there are, and how many completed or failed so far."""

    total: int = 0
    completed: int = 0
    failed: int = 0


@attrs.frozen
class BatchError:
    """One problem of a batch's input (``line`` counts from 1), or of the batch as a whole."""

    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


@attrs.frozen
class BatchErrors:
    """The errors of a batch that failed validation."""

    data: list[BatchError] = attrs.field(factory=list)
    object: str | None = None


@attrs.frozen
class BatchInputTokensDetails:
    """Breakdown of a batch's input tokens."""

    cached_tokens: int | None = None


@attrs.frozen
class BatchOutputTokensDetails:
    """Breakdown of a batch's output tokens."""

    reasoning_tokens: int | None = None


@attrs.frozen
class BatchUsage:
    """Token usage of a batch (batches created after September 2025)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: BatchInputTokensDetails | None = None
    output_tokens_details: BatchOutputTokensDetails | None = None


@attrs.frozen
class Batch:
    """A batch (``batch``). Timestamps are kept as sent and are None until their phase happens."""

    id: str
    status: BatchStatus | str
    endpoint: BatchEndpoint | str | None = None
    input_file_id: str | None = None
    completion_window: str | None = None
    model: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: BatchErrors | None = None
    created_at: int | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts | None = None
    usage: BatchUsage | None = None
    metadata: dict[str, str] | None = None
    object: str | None = None
