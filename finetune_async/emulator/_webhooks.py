"""The emulator's webhook sender: signed POSTs on the terminal transitions of jobs and batches.

As docs/api.md ("The emulator") and docs/compat.md ("Webhooks as OpenAI sends them")
describe it:

- one thin event ``{"id": "evt_…", "object": "event", "type", "created_at", "data": {"id"}}``
  per terminal transition (``fine_tuning.job.succeeded|failed|cancelled``,
  ``batch.completed|failed|cancelled|expired``), with ``created_at`` on the emulator's clock, as
  the job's ``finished_at`` is;
- one delivery per event and endpoint, whose ``webhook-id`` (``wh_…``) stays the same on every
  attempt, and each attempt signed afresh (``finetune_async.webhooks.sign``, the SDK's own rule)
  with every secret of the endpoint and the real wall-clock time;
- a non-2xx answer (3xx included: redirects are never followed), a connection error or no answer
  within ``webhook_timeout`` real seconds is retried with exponential back-off on the emulator's
  clock (``speed`` compresses it, ``advance`` jumps it) for 72 emulated hours.

Life cycles are lazy (``_clock``): a job reaches ``succeeded`` only when something syncs it. So
while endpoints exist, a watcher task on the emulator's loop sleeps until the next job or batch
is due to move (``next_due``), syncs what is due, and sleeps again; ``advance`` and every request
that may change a schedule (any method but GET) wake it. Without endpoints nothing runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import secrets
import time
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import aiohttp
import attrs
import orjson
from aiohttp import web

from ..errors import InvalidParameterError, WebhookVerificationError
from ..webhooks import sign
from ..webhooks._signature import load_keys
from ._routes._common import validate_due

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence

    from ..webhooks import WebhookReceiver
    from ._clock import Clock
    from ._routes._common import Handler
    from ._state import EmulatorState

__all__ = [
    "MAX_RETRY_WINDOW",
    "USER_AGENT",
    "WebhookEndpoint",
    "WebhookSender",
    "backoff",
    "new_secret",
    "serve_receiver",
]

logger = logging.getLogger("finetune_async.emulator")

#: What OpenAI's deliveries carry (docs/compat.md).
USER_AGENT: Final = "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)"
#: How long, in emulated seconds from the first attempt, a delivery is retried (docs/compat.md).
MAX_RETRY_WINDOW: Final = 72 * 3600.0
#: The first retry's delay and the longest one, in emulated seconds; each retry doubles it.
FIRST_RETRY: Final = 5.0
LONGEST_RETRY: Final = 8 * 3600.0
#: The longest real sleep of a waiter: a safety net for a clock moved without ``advance``.
_IDLE: Final = 1.0
#: How much of an answer's body is read (and dropped) so the connection can be reused.
_DRAIN: Final = 65_536


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _secret(value: str | Sequence[str] | None) -> str | tuple[str, ...]:
    if value is None:
        return new_secret()
    if isinstance(value, str):
        return value
    return tuple(value)


def _check_url(_: object, __: object, url: str) -> None:
    # Checked at run time too: the annotation is only a promise.
    text: object = url
    parts = urlsplit(text) if isinstance(text, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = f"url: a webhook endpoint needs an http:// or https:// URL, got {url!r}"
        raise InvalidParameterError(msg, param="url")


def _check_secret(_: object, __: object, secret: str | tuple[str, ...]) -> None:
    try:
        load_keys(secret)
    except WebhookVerificationError as exc:
        raise InvalidParameterError(f"secret: {exc}", param="secret") from None


@attrs.frozen
class WebhookEndpoint:
    """Where the emulator delivers webhooks, and the secret(s) it signs them with.

    Attributes:
        url: The receiver's ``http://`` or ``https://`` URL; deliveries are POSTed to it.
        secret: ``whsec_…``, or several during a rotation (each delivery then carries one
            signature per secret). None generates ``whsec_`` + base64 of 32 random bytes, which
            is then readable here. It is left out of the repr.

    Raises:
        InvalidParameterError: The URL is not http(s), or a secret is not ``whsec_`` + base64.
    """

    url: str = attrs.field(validator=_check_url)
    secret: str | tuple[str, ...] = attrs.field(
        factory=new_secret, converter=_secret, validator=_check_secret, repr=False
    )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret of the endpoint, in signing order."""
        return (self.secret,) if isinstance(self.secret, str) else self.secret


def backoff(retry: int) -> float:
    """The emulated seconds before retry number ``retry`` (1, 2, …): 5 s doubling, at most 8 h."""
    return min(LONGEST_RETRY, FIRST_RETRY * 2.0 ** (retry - 1))


@attrs.frozen
class _Delivery:
    """One event for one endpoint: the same body and ``webhook-id`` on every attempt."""

    endpoint: WebhookEndpoint
    webhook_id: str
    body: bytes


class ClockWaiter:
    """Sleep until a time of the emulator's clock, waking early when the clock is moved."""

    def __init__(self, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
        """Wait on ``loop`` for ``clock``."""
        self._clock = clock
        self._loop = loop
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        """Wake every sleeper to look at the clock again (on the loop's thread)."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, real_seconds: float) -> None:
        """Sleep ``real_seconds`` at most, or until ``notify``."""
        waiter = self._loop.create_future()
        self._waiters.add(waiter)
        handle = self._loop.call_later(real_seconds, _settle, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiters.discard(waiter)

    async def until(self, when: float) -> None:
        """Return once the emulator's clock reads ``when`` or later."""
        while (remaining := when - self._clock.now()) > 0:
            speed = self._clock.speed
            await self.wait(min(_IDLE, remaining / speed) if speed > 0 else _IDLE)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class WebhookSender:
    """Turns terminal transitions into signed deliveries to every endpoint, with retries."""

    def __init__(
        self,
        state: EmulatorState,
        endpoints: Iterable[WebhookEndpoint] = (),
        *,
        seed: int | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Deliver for ``state`` to ``endpoints`` (more with ``add``); nothing runs until ``start``.

        Args:
            state: The emulator state whose jobs and batches are watched.
            endpoints: The endpoints known from the start.
            seed: Seed of the event and webhook ids and of the webhook faults.
            timeout: Real seconds an attempt may take before it counts as failed.
        """
        if not timeout > 0:
            msg = f"webhook_timeout must be > 0 (real seconds), got {timeout!r}"
            raise ValueError(msg)
        self._state = state
        self._clock = state.clock
        self.endpoints: list[WebhookEndpoint] = []
        for endpoint in endpoints:
            self._check(endpoint)
            self.endpoints.append(endpoint)
        # A stream of its own: drawing from the state's generator would shift every id and fault
        # the same seed gave before webhooks existed.
        self._rng = random.Random(f"webhooks:{seed}") if seed is not None else random.Random()  # noqa: S311
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        # Two sets of sleepers: retries care only about the clock; the watcher also about
        # schedules (a create or cancel), which every POST may change.
        self._waiter: ClockWaiter | None = None
        self._watch_waiter: ClockWaiter | None = None
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _check(endpoint: object) -> None:
        if not isinstance(endpoint, WebhookEndpoint):
            msg = f"webhooks: expected WebhookEndpoint values, got {type(endpoint).__name__}"
            raise InvalidParameterError(msg, param="webhooks")

    # --- life cycle (on the emulator's loop) ---------------------------------------------------

    def start(self) -> None:
        """Begin watching, on the running loop, if there is any endpoint."""
        self._loop = asyncio.get_running_loop()
        self._waiter = ClockWaiter(self._clock, self._loop)
        self._watch_waiter = ClockWaiter(self._clock, self._loop)
        self._ensure_watcher()

    def _ensure_watcher(self) -> None:
        if self._loop is None or self._watcher is not None or not self.endpoints:
            return
        self._watcher = self._loop.create_task(self._watch(), name="emulator-webhooks")

    async def stop(self) -> None:
        """Cancel the watcher and every pending delivery, and close the HTTP session."""
        tasks = [*self._tasks, *([self._watcher] if self._watcher is not None else [])]
        self._watcher = None
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._loop = self._waiter = self._watch_waiter = None

    # --- what the emulator calls ---------------------------------------------------------------

    def add(self, endpoint: WebhookEndpoint) -> None:
        """Deliver the events from now on to ``endpoint`` too (from any thread)."""
        self._check(endpoint)
        self.endpoints.append(endpoint)
        self._call_on_loop(self._ensure_watcher)

    def changed(self) -> None:
        """A schedule may have changed (a create, a cancel): the watcher looks again."""
        self._call_on_loop(self._notify_watcher)

    def advanced(self) -> None:
        """The clock jumped (``advance``): the watcher and every retry look at it again."""
        self._call_on_loop(self._notify_all)

    def terminal(self, event_type: str, object_id: str, when: float) -> None:
        """A job or batch reached a terminal status at emulated time ``when``: send its event."""
        if not self.endpoints:
            return
        event = {
            "id": "evt_" + self._token(),
            "object": "event",
            "type": event_type,
            "created_at": int(when),
            "data": {"id": object_id},
        }
        body = orjson.dumps(event)
        for endpoint in list(self.endpoints):
            delivery = _Delivery(endpoint, "wh_" + self._token(), body)
            self._call_on_loop(self._schedule, delivery)

    # --- inside --------------------------------------------------------------------------------

    def _token(self) -> str:
        return "".join(self._rng.choices("0123456789abcdef", k=32))

    def _notify_watcher(self) -> None:
        if self._watch_waiter is not None:
            self._watch_waiter.notify()

    def _notify_all(self) -> None:
        self._notify_watcher()
        if self._waiter is not None:
            self._waiter.notify()

    def _call_on_loop(self, function: Callable[..., object], *args: object) -> None:
        """Run ``function(*args)`` on the emulator's loop: now when on it, else thread-safely."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            function(*args)
        else:
            loop.call_soon_threadsafe(function, *args)

    def _schedule(self, delivery: _Delivery) -> None:
        faults = self._state.faults
        stats = self._state.stats.webhooks
        if self._rng.random() < faults.webhook_drop_rate:
            stats.dropped += 1
            return
        copies = 2 if self._rng.random() < faults.webhook_duplicate_rate else 1
        for _ in range(copies):
            delay = self._rng.uniform(0.0, faults.webhook_delay) if faults.webhook_delay else 0.0
            self._spawn(self._deliver(delivery, delay))

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        assert self._loop is not None  # noqa: S101 - only called on the running loop
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        """Sync every job and batch when it is due to move, so that its event is sent on time."""
        waiter = self._watch_waiter
        assert waiter is not None  # noqa: S101 - set by start()
        while True:
            try:
                soonest = await self._sync_due()
            except Exception:
                # A bug in a life cycle must not end every later delivery: log it, go on.
                logger.exception("the emulator's webhook watcher failed; retrying")
                soonest = None
            # One sleep, then a fresh look: a notify (a new job, a cancel, advance) may have
            # brought the next due time forward.
            remaining, speed = (soonest or 0.0) - self._clock.now(), self._clock.speed
            if soonest is None or speed <= 0:
                await waiter.wait(_IDLE)
            elif remaining <= 0:
                # Due but unmoved (it should not happen): never spin the loop.
                await waiter.wait(0.01)
            else:
                await waiter.wait(min(_IDLE, remaining / speed))

    async def _sync_due(self) -> float | None:
        """Sync what is due now; return when the next job or batch is due (None: nothing)."""
        state = self._state
        now = self._clock.now()
        jobs = [job for job in state.jobs.values() if _due(job.next_due(), now)]
        batches = [batch for batch in state.batches.values() if _due(batch.next_due(), now)]
        if jobs:
            # Off the loop, as a request would validate them (routes/_common.validate_due).
            await validate_due(state, jobs, now)
        for job in jobs:
            job.sync(now)
        for batch in batches:
            batch.sync(now)
        upcoming = [
            when
            for when in (
                *(job.next_due() for job in state.jobs.values()),
                *(batch.next_due() for batch in state.batches.values()),
            )
            if when is not None
        ]
        return min(upcoming, default=None)

    async def _deliver(self, delivery: _Delivery, delay: float) -> None:
        """Attempt one delivery until a 2xx, retrying on the emulator's clock for 72 hours."""
        assert self._waiter is not None  # noqa: S101 - set by start()
        if delay:
            await asyncio.sleep(delay)
        first = self._clock.now()
        retry = 0
        while True:
            if await self._attempt(delivery):
                return
            retry += 1
            due = self._clock.now() + backoff(retry)
            if due > first + MAX_RETRY_WINDOW:
                self._state.stats.webhooks.gave_up += 1
                return
            await self._waiter.until(due)

    async def _attempt(self, delivery: _Delivery) -> bool:
        """POST once with a fresh timestamp and signature; True on a 2xx answer."""
        if self._session is None:
            # Created here, on the loop that uses it (docs/architecture.md, rule 1).
            self._session = aiohttp.ClientSession()
        headers = sign(
            delivery.body,
            secret=delivery.endpoint.secrets,
            webhook_id=delivery.webhook_id,
            timestamp=int(time.time()),
        )
        headers["content-type"] = "application/json"
        headers["user-agent"] = USER_AGENT
        self._state.stats.webhooks.attempts += 1
        ok = False
        try:
            async with self._session.post(
                delivery.endpoint.url,
                data=delivery.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                ok = 200 <= response.status < 300  # noqa: PLR2004
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    await response.content.read(_DRAIN)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.debug(
                "webhook %s to %s failed: %r", delivery.webhook_id, delivery.endpoint.url, exc
            )
        stats = self._state.stats.webhooks
        if ok:
            stats.delivered += 1
        else:
            stats.failed += 1
        return ok


def _due(when: float | None, now: float) -> bool:
    return when is not None and when <= now


# --- the local receiver of `finetune-async webhooks listen` ---------------------------------------


@contextlib.asynccontextmanager
async def serve_receiver(
    receiver: WebhookReceiver,
    host: str,
    port: int,
    on_refused: Callable[[str, str, int, str], None] | None = None,
) -> AsyncIterator[int]:
    """Serve ``receiver`` at ``http://host:port/`` (aiohttp.web) while the block runs.

    ``on_refused(method, path, status, text)`` is told of every request not answered 200.
    It lives beside the sender because the emulator's package is the one that serves HTTP (only
    it and the transport may import aiohttp); ``webhooks listen`` uses it.

    Yields:
        The port it listens on (a free one when ``port`` is 0).

    Raises:
        OSError: The address is taken or cannot be bound.
    """
    app = receiver.aiohttp_app()
    if on_refused is not None:
        report = on_refused

        @web.middleware
        async def refused(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # a path other than /: 404
                report(request.method, request.path, exc.status, exc.reason)
                raise
            if response.status != 200:  # noqa: PLR2004
                text = response.text if isinstance(response, web.Response) else None
                report(request.method, request.path, response.status, text or "")
            return response

        app.middlewares.append(refused)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - as _server does
        yield sockets[0].getsockname()[1] if sockets else port
    finally:
        await runner.cleanup()
