"""The emulator's aiohttp.web application: the middleware (auth, faults, counting, errors)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from aiohttp import web

from ._faults import RequestRecord, redact_headers
from ._routes import batches, files, fine_tuning, models
from ._routes._common import STATE, EmulatedAPIError, Handler

if TYPE_CHECKING:
    from ._state import EmulatorState

__all__ = ["STATE", "build_app"]

logger = logging.getLogger("finetune_async.emulator")

_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else request.path
    return f"{request.method} {template.removeprefix('/v1')}"


@web.middleware
async def emulate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request, inject the configured faults, check auth, and shape every error."""
    state = request.app[STATE]
    stats = state.stats
    route = _route_of(request)
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    started = time.monotonic()
    fault: str | None = None
    # Until an answer is made, the request counts as dropped (cut off by a fault or by stop()).
    outcome: int | str = "dropped"
    try:
        faults, bucket = state.faults_for(route)
        if faults.latency:
            await asyncio.sleep(faults.latency)
        fault = faults.pick(state.rng)
        if fault is None and bucket is not None and not bucket.take():
            fault = "rate_limit"
        if fault == "drop":
            await request.read()
            outcome = "dropped"
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        response = await _answer(request, handler, state, fault, faults.retry_after)
        outcome = response.status
        response.headers["x-request-id"] = state.ids.request_id()
        return response
    finally:
        if request.method not in _READ_ONLY:
            # A create, cancel, pause or resume moves a schedule: the webhook watcher looks again.
            state.changed()
        stats.in_flight -= 1
        if fault is not None:
            stats.faults[fault] += 1
        stats.outcomes[outcome] += 1
        # Credentials stay out of the log (a long watch would keep every bearer key).
        headers, credentials = redact_headers(request.headers)
        stats.requests.append(
            RequestRecord(
                started,
                request.method,
                request.path,
                route,
                outcome,
                fault,
                headers,
                credentials=credentials,
            )
        )


def _fault_response(fault: str | None, retry_after: float) -> web.Response | None:
    """Return the answer of an injected 429 or 5xx, or None to let the request through."""
    if fault in {"429", "rate_limit"}:
        return EmulatedAPIError(
            HTTPStatus.TOO_MANY_REQUESTS,
            "Rate limit reached for requests (emulated).",
            code="rate_limit_exceeded",
            kind="requests",
            headers={
                # Retry-After takes whole seconds (RFC 9110); the ms header keeps the precision.
                "Retry-After": str(math.ceil(retry_after)),
                "retry-after-ms": f"{retry_after * 1000:.0f}",
            },
        ).response()
    if fault == "5xx":
        return EmulatedAPIError(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request (emulated).",
            kind="server_error",
        ).response()
    return None


async def _answer(
    request: web.Request,
    handler: Handler,
    state: EmulatorState,
    fault: str | None,
    retry_after: float,
) -> web.StreamResponse:
    injected = _fault_response(fault, retry_after)
    if injected is not None:
        return injected
    try:
        _check_auth(request, state)
        return await handler(request)
    except EmulatedAPIError as failure:
        return failure.response()
    except web.HTTPClientError as exc:
        return _client_error(request, exc).response()
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        # A bug in the emulator: answer as the real API would, and leave a traceback in the log.
        logger.exception("emulator error on %s %s", request.method, request.path)
        return EmulatedAPIError(
            500, "The emulator failed on this request.", kind="server_error"
        ).response()


def _client_error(request: web.Request, exc: web.HTTPClientError) -> EmulatedAPIError:
    """A client error aiohttp raised (no route, wrong method, 413...), in the API's shape."""
    where = f"{request.method} {request.path}"
    if isinstance(exc, web.HTTPNotFound):
        return EmulatedAPIError(404, f"Invalid URL ({where})")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return EmulatedAPIError(405, f"Method not allowed ({where})")
    return EmulatedAPIError(exc.status, exc.reason)


def _check_auth(request: web.Request, state: EmulatorState) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise EmulatedAPIError(
            401,
            "You didn't provide an API key. "
            "Send it in the Authorization header as 'Bearer YOUR_KEY'.",
            kind="invalid_request_error",
        )
    if state.api_key is not None and key.strip() != state.api_key:
        raise EmulatedAPIError(401, "Incorrect API key provided.", code="invalid_api_key")


def build_app(state: EmulatorState) -> web.Application:
    """Return the application serving ``state`` under ``/v1``."""
    # client_max_size bounds what request.read() buffers; uploads stream past it, under their own
    # limit (routes/files.py).
    app = web.Application(middlewares=[emulate], client_max_size=state.limits.json_bytes)
    app[STATE] = state
    for area in (files, fine_tuning, batches, models):
        app.router.add_routes(area.routes())
    return app
