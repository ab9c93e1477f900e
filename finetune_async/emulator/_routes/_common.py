"""What every route shares: the API's error shape, JSON bodies, pages, and the jobs' clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import web

from .._jobs import JobSim
from .._state import EmulatorState

if TYPE_CHECKING:
    from .._batches import BatchSim

__all__ = [
    "STATE",
    "EmulatedAPIError",
    "Handler",
    "json_body",
    "json_response",
    "list_page",
    "live_page",
    "not_found",
    "query_limit",
    "state_of",
    "sync_all",
    "too_large",
    "validate_due",
]

STATE: Final = web.AppKey("finetune_async.emulator.state", EmulatorState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class EmulatedAPIError(Exception):
    """Raised by a handler to answer with OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Describe the error answer."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def response(self) -> web.Response:
        """Return the ``{"error": {...}}`` answer."""
        body = {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }
        return json_response(body, status=self.status, headers=self.headers)


def json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``data`` as a JSON answer (orjson)."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def not_found(kind: str, value: str, param: str) -> EmulatedAPIError:
    """The API's 404 for an unknown id, e.g. ``file_not_found``."""
    return EmulatedAPIError(
        404, f"No such {kind}: '{value}'", param=param, code=f"{kind}_not_found"
    )


# --- query helpers -----------------------------------------------------------------------------


def query_limit(request: web.Request, default: int, maximum: int) -> int:
    """The ``limit`` query parameter, from 1 to ``maximum`` (400 otherwise)."""
    raw = request.query.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EmulatedAPIError(
            400, f"Invalid 'limit': expected an integer, got {raw!r}", param="limit"
        ) from None
    if not 1 <= value <= maximum:
        raise EmulatedAPIError(
            400, f"Invalid 'limit': must be between 1 and {maximum}, got {value}", param="limit"
        )
    return value


def list_page(
    request: web.Request,
    items: Sequence[dict[str, Any]],
    *,
    default: int,
    maximum: int = 100,
    null_ids: bool = False,
) -> dict[str, Any]:
    """Return one page of ``items`` (already in the list's order) after the ``after`` cursor.

    An empty page has ``first_id`` and ``last_id`` set to null when ``null_ids`` is set (the
    lists whose spec schema requires them or allows null), and leaves them out otherwise.
    """
    limit = query_limit(request, default, maximum)
    start = 0
    after = request.query.get("after")
    if after:
        for index, item in enumerate(items):
            if item["id"] == after:
                start = index + 1
                break
        else:
            raise EmulatedAPIError(
                400, f"Invalid 'after': no object with id '{after}' in this list", param="after"
            )
    data = list(items[start : start + limit])
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": start + limit < len(items)}
    if data:
        page["first_id"] = data[0]["id"]
        page["last_id"] = data[-1]["id"]
    elif null_ids:
        page["first_id"] = page["last_id"] = None
    return page


async def live_page(
    request: web.Request, objects: Sequence[JobSim | BatchSim], now: float
) -> dict[str, Any]:
    """Page jobs or batches by id, bringing only the page's objects up to the clock."""
    page = list_page(request, [{"id": obj.id} for obj in objects], default=20)
    by_id = {obj.id: obj for obj in objects}
    live = [by_id[item["id"]] for item in page["data"]]
    await validate_due(state_of(request), [obj for obj in live if isinstance(obj, JobSim)], now)
    for obj in live:
        obj.sync(now)
    page["data"] = [obj.to_json() for obj in live]
    return page


async def validate_due(state: EmulatorState, jobs: Iterable[JobSim], now: float) -> None:
    """Validate, on worker threads, the training files that ``sync(now)`` would validate.

    Validation reads the whole file (a 150 MB file takes about a second): on the event loop it
    would hold up every other request meanwhile. One validation runs per job however many
    requests look at it at once; a request that gives up does not cancel it.
    """
    waits = [_validation(state, job) for job in jobs if job.validation_due(now)]
    if waits:
        await asyncio.gather(*waits)


def _validation(state: EmulatorState, job: JobSim) -> asyncio.Future[None]:
    """The job's running validation (started now if none is), shielded from its waiter."""
    running = state.validations.get(job.id)
    if running is None:
        running = asyncio.ensure_future(asyncio.to_thread(job.run_validation))
        state.validations[job.id] = running
        running.add_done_callback(lambda _: state.validations.pop(job.id, None))
    return asyncio.shield(running)


async def sync_all(state: EmulatorState) -> None:
    """``state.sync_all()``, with the training files it would validate validated off the loop."""
    await validate_due(state, list(state.jobs.values()), state.now())
    state.sync_all()


def too_large(what: str, limit: int) -> EmulatedAPIError:
    """The 413 for a body or part over its limit."""
    return EmulatedAPIError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"{what} is too large: the limit is {limit} bytes.",
        code="request_too_large",
    )


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, within ``Limits.json_bytes`` (400 or 413 otherwise)."""
    limit = state_of(request).limits.json_bytes
    # Refuse a declared oversize body before reading any of it; aiohttp's client_max_size (the
    # same limit) stops a chunked one while it is read.
    if request.content_length is not None and request.content_length > limit:
        raise too_large("The JSON body", limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large("The JSON body", limit) from None
    if not raw.strip():
        if optional:
            return {}
        raise EmulatedAPIError(400, "The request needs a JSON body.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EmulatedAPIError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise EmulatedAPIError(400, "The JSON body must be an object.")
    return body


def state_of(request: web.Request) -> EmulatorState:
    """The emulator state the application serves."""
    return request.app[STATE]
