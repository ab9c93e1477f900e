"""``Emulator``: start and stop the application on 127.0.0.1, on this loop or on a thread."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Self

from aiohttp import web

from ._app import build_app
from ._clock import Clock
from ._faults import Faults, Stats
from ._jobs import Timing
from ._state import BASE_MODELS, EmulatorState
from ._webhooks import WebhookEndpoint, WebhookSender

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import TracebackType

    from ._limits import Limits

__all__ = ["Emulator"]

_STOP_TIMEOUT = 10.0


def _route_name(route: web.AbstractRoute) -> str:
    """Return ``"METHOD /template"`` without ``/v1``, as ``set_faults`` names routes."""
    template = route.resource.canonical if route.resource is not None else ""
    return f"{route.method} {template.removeprefix('/v1')}"


class Emulator:
    """A local OpenAI-compatible fine-tuning server, for tests and demos.

    Use ``async with Emulator() as emu:`` inside a running loop, or ``with Emulator() as emu:``
    from synchronous code (the server then runs on its own thread and loop). Either way
    ``emu.url`` is the base URL to give a client (it ends in ``/v1``); any non-empty Bearer key is
    accepted unless ``api_key`` is set.

    Example:
        >>> async with Emulator(speed=200) as emu:  # doctest: +SKIP
        ...     async with AsyncClient(base_url=emu.url, api_key="test") as client:
        ...         ...
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        organization: str = "org-emulator",
        api_key: str | None = None,
        timing: Timing | None = None,
        base_models: Iterable[str] = BASE_MODELS,
        limits: Limits | None = None,
        webhooks: Iterable[WebhookEndpoint] = (),
        webhook_timeout: float = 5.0,
    ) -> None:
        """Configure the emulator; nothing listens until it is started.

        Args:
            speed: How much faster than real time the emulated clock runs (1.0: realistic
                durations; 0: the clock moves only by ``advance``).
            faults: What goes wrong and how often (``Faults``); none by default.
            host: The address to listen on.
            port: The port; 0 picks a free one.
            seed: Seed of the ids, faults and metrics, for repeatable runs.
            organization: The organization id in jobs and fine-tuned model names.
            api_key: When set, only this Bearer key is accepted.
            timing: The phase durations of jobs and batches (``Timing``).
            base_models: The models jobs may fine-tune.
            limits: The largest upload and JSON body (413 beyond them) and how many requests
                ``stats.requests`` keeps (``Limits``).
            webhooks: Endpoints that get a signed delivery when a job or batch ends
                (``WebhookEndpoint``); add more with ``add_webhook``.
            webhook_timeout: Real seconds a webhook attempt may wait for an answer before it
                counts as failed (and is retried).

        Raises:
            InvalidParameterError: ``webhooks`` holds something else than ``WebhookEndpoint``.
            ValueError: ``speed`` or ``webhook_timeout`` is out of range.
        """
        self.clock = Clock(speed)
        self._host = host
        self._port = port
        self.state = EmulatorState(
            clock=self.clock,
            seed=seed,
            organization=organization,
            api_key=api_key,
            faults=faults or Faults(),
            timing=timing or Timing(),
            base_models=base_models,
            limits=limits,
        )
        self._webhooks = WebhookSender(self.state, webhooks, seed=seed, timeout=webhook_timeout)
        self.state.watcher = self._webhooks
        self._runner: web.AppRunner | None = None
        self._routes: set[str] = {_route_name(r) for r in build_app(self.state).router.routes()}
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # --- what tests use ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. ``http://127.0.0.1:50123/v1``."""
        if self._runner is None:
            msg = "the emulator is not running; start it with `async with` or `with`"
            raise RuntimeError(msg)
        return f"http://{self._host}:{self.port}/v1"

    @property
    def port(self) -> int:
        """The port it listens on (0 before it starts)."""
        return self._port

    @property
    def stats(self) -> Stats:
        """What the emulator saw and answered since the last ``reset_stats``."""
        return self.state.stats

    def reset_stats(self) -> None:
        """Start counting afresh."""
        self.state.stats = self.state.new_stats()

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward by ``seconds`` (from any thread)."""
        self.clock.advance(seconds)
        # What became due meanwhile (an end, a webhook retry) happens now, not at the next poll.
        self._webhooks.advanced()

    def add_webhook(self, url: str, secret: str | Sequence[str] | None = None) -> WebhookEndpoint:
        """Deliver webhooks to ``url`` too, from the next job or batch that ends on.

        Args:
            url: The receiver's http(s) URL.
            secret: ``whsec_…``, or several (each delivery is signed with all of them); None
                generates one, readable as ``endpoint.secret``.

        Returns:
            The endpoint.

        Raises:
            InvalidParameterError: A bad URL or a malformed secret.
        """
        endpoint = WebhookEndpoint(url, secret)
        self._webhooks.add(endpoint)
        return endpoint

    def set_faults(self, faults: Faults, route: str | None = None) -> None:
        """Change the faults while running, for every route or for one.

        Args:
            faults: The new faults.
            route: None for every route, or one route as ``"METHOD /path-template"``, e.g.
                ``"GET /fine_tuning/jobs/{fine_tuning_job_id}"``.

        Raises:
            ValueError: ``route`` is not one of the emulator's routes.
        """
        if route is not None and self._routes and route not in self._routes:
            known = ", ".join(sorted(self._routes))
            msg = f"no such route {route!r}; the routes are: {known}"
            raise ValueError(msg)
        self.state.set_faults(faults, route)

    # --- on the caller's loop ------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (a free port when 0)."""
        if self._runner is not None:
            return
        app = build_app(self.state)
        self._routes = {_route_name(r) for r in app.router.routes()}
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            # A busy port, say: leave no runner or file behind.
            await runner.cleanup()
            self.state.close()
            raise
        self._runner = runner
        self._webhooks.start()
        server = site._server  # noqa: SLF001 - aiohttp exposes the bound port nowhere else
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and the listening socket; calling it again does nothing."""
        runner, self._runner = self._runner, None
        await self._webhooks.stop()
        if runner is not None:
            await asyncio.wait_for(runner.cleanup(), timeout=_STOP_TIMEOUT)
        # A training-file validation outlives the request that started it: let it end before
        # its file is removed and its loop closed (it would then fail on a closed loop).
        validations = list(self.state.validations.values())
        if validations:
            await asyncio.wait(validations, timeout=_STOP_TIMEOUT)
        self.state.close()

    async def __aenter__(self) -> Self:
        """Start, and return the running emulator."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop."""
        await self.stop()

    # --- on its own thread, for synchronous callers ---------------------------------------------

    def __enter__(self) -> Self:
        """Start on a thread of its own and return once it listens."""
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - handed over to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._thread_loop = loop
        self._thread = threading.Thread(target=run, name="finetune-async-emulator", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            loop.close()
            raise failure[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server and its thread."""
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=_STOP_TIMEOUT + 5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_STOP_TIMEOUT)
            loop.close()
            self._thread_loop = self._thread = None
