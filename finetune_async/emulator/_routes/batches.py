"""Routes of the Batch API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..._validation import check_expires_after, check_metadata
from ...errors import InvalidParameterError
from .._batches import BATCH_ENDPOINTS, BatchSim
from ._common import (
    EmulatedAPIError,
    json_body,
    json_response,
    live_page,
    not_found,
    state_of,
)

if TYPE_CHECKING:
    from .._state import EmulatorState

__all__ = ["routes"]


def _batch(state: EmulatorState, batch_id: str) -> BatchSim:
    batch = state.batches.get(batch_id)
    if batch is None:
        raise not_found("batch", batch_id, "batch_id")
    batch.sync(state.now())
    return batch


async def create_batch(request: web.Request) -> web.Response:
    """POST /batches."""
    state = state_of(request)
    body = await json_body(request)
    endpoint = body.get("endpoint")
    if endpoint not in BATCH_ENDPOINTS:
        raise EmulatedAPIError(
            400,
            f"Invalid 'endpoint': {endpoint!r}. Expected one of {', '.join(BATCH_ENDPOINTS)}.",
            param="endpoint",
        )
    window = body.get("completion_window")
    if window != "24h":
        raise EmulatedAPIError(
            400,
            f"Invalid 'completion_window': {window!r}. Only '24h' is supported.",
            param="completion_window",
        )
    input_id = body.get("input_file_id")
    stored = state.files.files.get(input_id) if isinstance(input_id, str) else None
    if stored is None:
        raise EmulatedAPIError(
            400, f"invalid input_file_id: {input_id}", param="input_file_id", code="invalid_file"
        )
    if stored.purpose != "batch":
        raise EmulatedAPIError(
            400,
            f"File {input_id} has purpose '{stored.purpose}'; a batch needs purpose 'batch'.",
            param="input_file_id",
        )
    try:
        metadata = check_metadata(body.get("metadata"))
        check_expires_after(body.get("output_expires_after"), "output_expires_after")
    except InvalidParameterError as exc:
        raise EmulatedAPIError(400, str(exc), param=exc.param) from None
    batch = BatchSim(
        batch_id=state.ids.new("batch", "_"),
        input_file=stored,
        endpoint=endpoint,
        completion_window=window,
        metadata=metadata,
        created_at=state.now(),
        ids=state.ids,
        files=state.files,
        timing=state.timing,
        on_terminal=state.terminal,
    )
    state.batches[batch.id] = batch
    return json_response(batch.to_json())


async def list_batches(request: web.Request) -> web.Response:
    """GET /batches: newest first."""
    state = state_of(request)
    return json_response(
        await live_page(request, list(reversed(state.batches.values())), state.now())
    )


async def retrieve_batch(request: web.Request) -> web.Response:
    """GET /batches/{batch_id}."""
    return json_response(_batch(state_of(request), request.match_info["batch_id"]).to_json())


async def cancel_batch(request: web.Request) -> web.Response:
    """POST /batches/{batch_id}/cancel."""
    state = state_of(request)
    await json_body(request, optional=True)
    batch = _batch(state, request.match_info["batch_id"])
    if not batch.cancel(state.now()):
        raise EmulatedAPIError(
            400,
            f"Batch {batch.id} is {batch.status}; only an unfinished batch can be cancelled.",
            code="invalid_state",
        )
    return json_response(batch.to_json())


def routes() -> list[web.RouteDef]:
    """The Batch API under ``/v1``."""
    return [
        web.post("/v1/batches", create_batch),
        web.get("/v1/batches", list_batches),
        web.get("/v1/batches/{batch_id}", retrieve_batch),
        web.post("/v1/batches/{batch_id}/cancel", cancel_batch),
    ]
