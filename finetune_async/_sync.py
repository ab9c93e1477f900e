"""``Client``: the blocking twin of ``AsyncClient``, through one anyio blocking portal.

The only module that imports ``anyio.from_thread`` (docs/architecture.md rule 4, the shape of
apscheduler's sync scheduler). The client owns one ``BlockingPortal`` for its life: an event loop
on a thread of its own, started lazily under a lock at the first call. The ``AsyncClient`` is
entered on that loop, so its aiohttp session lives there, and every sync method is one call
through the portal; threads sharing a ``Client`` run their requests concurrently on its one
connection pool. Closing happens in ``close()`` (or ``with``), or at interpreter exit, never in
``__del__``: a portal left to the garbage collector has hung interpreter shutdown. A client
collected unclosed warns (``ResourceWarning``) and asks its loop to end, without waiting for it.
After ``os.fork()`` the child starts its own portal, loop and session at its first call
(docs/architecture.md rule 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import warnings
import weakref
from concurrent.futures import CancelledError, Future
from functools import partial
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack

from ._client import AsyncClient, ClientOptions
from .errors import FinetuneError
from .resources.batches import Batches
from .resources.files import Files
from .resources.fine_tuning import FineTuning
from .resources.models import Models

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from types import TracebackType

    from ._config import Backoff, Timeout
    from ._sansio import DownloadSink
    from .resources._requester import Query
    from .webhooks import Webhooks

__all__ = ["Client"]

T = TypeVar("T")


class _PortalRunner:
    """Owns the portal: starts it on first use, runs coroutines on it, and stops it once.

    The portal's thread holds the ``AsyncClient`` and never the ``Client`` wrapper, so a client
    dropped unclosed can be collected, and its thread then ends (``abandon``).
    """

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        # The calls in flight, so that close() can end them at once with a clear error.
        self._calls: set[Future[Any]] = set()
        self._closed = False

    @property
    def is_running(self) -> bool:
        """Whether the portal is up and coroutines can be run on it."""
        return self._loop is not None and not self._closed

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called (or the owning client was collected unclosed)."""
        return self._closed

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not self._closed:
            return loop
        with self._lock:
            if self._closed:
                raise FinetuneError("this Client is closed; create a new one")
            if self._loop is None:
                # Registered until the loop thread ends, not only until close(): a fork while an
                # abandoned client's thread is still closing must keep that one's state too.
                _register_at_exit(self)
                self._thread, self._loop, self._stop = _start_portal(
                    self._client, partial(_unregister_at_exit, self)
                )
            return self._loop

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``func()`` on the portal's loop and wait for it.

        The portal owns the loop, its thread and the async client's life; calls go straight to
        its loop with ``run_coroutine_threadsafe``, which costs half the CPU of the portal's own
        task-group hand-off (about 105 against 210 microseconds a call, measured). A
        ``KeyboardInterrupt`` (or any other exception) while waiting cancels the task on the loop,
        so Ctrl-C stops the call instead of leaving it running in the background.

        Raises:
            FinetuneError: The client is closed, or was closed while this call was running.
        """
        loop = self._get_loop()
        if asyncio._get_running_loop() is loop:  # noqa: SLF001 - the cheap check asyncio offers
            raise FinetuneError("a Client call from its own event loop would deadlock")
        # Under the lock: a call is either refused, or in the set that close() cancels. One
        # scheduled on a loop that close() is already ending could otherwise wait forever.
        with self._lock:
            if self._closed:
                raise FinetuneError("this Client is closed; create a new one")
            future = asyncio.run_coroutine_threadsafe(_awaited(func), loop)
            self._calls.add(future)
        try:
            return future.result()
        except CancelledError:
            if self._closed:
                raise FinetuneError(
                    "the Client was closed during the call; the call was cancelled"
                ) from None
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._calls.discard(future)

    def close(self) -> None:
        """Cancel the calls in flight, close the async client on its loop, end the thread.

        Idempotent. Each call still in flight raises ``FinetuneError`` in its own thread.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread, loop, stop = self._thread, self._loop, self._stop
            self._thread, self._loop, self._stop = None, None, None
            calls, self._calls = list(self._calls), set()
        _unregister_at_exit(self)
        for future in calls:
            future.cancel()
        if loop is None or stop is None or thread is None:
            return
        _request_stop(loop, stop)
        # A thread that is not alive is not waited for: after a fork, the parent's loop thread
        # does not exist in the child (rule 11), and the thread cannot wait for itself.
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join()

    def abandon(self) -> None:
        """The owning ``Client`` was collected unclosed: warn, and let the loop thread end.

        Called by the garbage collector, on whatever thread it runs (the loop's own included),
        so it waits for nothing and takes no lock: it asks the loop to stop, and the loop thread
        closes the async client and ends by itself.
        """
        if self._closed or self._loop is None or self._stop is None:
            return
        self._closed = True
        # Stop first: under `-W error` the warning raises, and the thread must end all the same.
        _request_stop(self._loop, self._stop)
        warnings.warn(
            f"unclosed Client (base_url={self._client.base_url!r}) was garbage-collected; its "
            "thread and connections are released now. Use `with Client(...)` or call close().",
            ResourceWarning,
            # Past this method and weakref's finalizer: the line that dropped the client, as
            # for Python's own unclosed files.
            stacklevel=3,
        )

    def forget_parent(self) -> None:
        """In a forked child: start afresh at the next call, never touching the parent's state.

        The parent's loop, thread and aiohttp session are kept referenced, never used nor
        finalized (docs/architecture.md rule 11): closing that session here would unregister the
        parent's sockets from the epoll instance both processes share.
        """
        _inherited.append((self._thread, self._loop, self._stop, self._calls))
        _inherited.append(_detach_session(self._client))
        self._lock = threading.Lock()  # another thread of the parent may have held it
        self._thread, self._loop, self._stop = None, None, None
        self._calls = set()


def _start_portal(
    client: AsyncClient, on_end: Callable[[], object]
) -> tuple[threading.Thread, asyncio.AbstractEventLoop, asyncio.Event]:
    """Start the portal's thread and loop, with ``client`` entered on it; return them.

    ``on_end`` is called on the loop thread as it ends.
    """
    # anyio is imported with the first blocking call, not with the package.
    import anyio  # noqa: PLC0415
    from anyio.from_thread import BlockingPortal  # noqa: PLC0415

    started: Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = Future()

    async def serve() -> None:
        # The async client is entered on the portal's loop: its session is made there.
        async with client, BlockingPortal():
            stop = asyncio.Event()
            started.set_result((asyncio.get_running_loop(), stop))
            await stop.wait()

    def run() -> None:
        try:
            anyio.run(serve, backend="asyncio")
        except BaseException as exc:
            if started.done():
                raise
            started.set_exception(exc)
        finally:
            on_end()

    # Named like anyio's own portal threads; a daemon, as they are: the exit hook below closes
    # the clients still open before the interpreter would wait for threads.
    thread = threading.Thread(target=run, name=f"asyncio-portal-{id(started):x}", daemon=True)
    thread.start()
    loop, stop = started.result()
    return thread, loop, stop


def _request_stop(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Ask the portal's loop to end, without waiting for it (safe from any thread)."""
    with contextlib.suppress(RuntimeError):  # the loop is already closed
        loop.call_soon_threadsafe(stop.set)


def _detach_session(client: AsyncClient) -> object:
    """Make the client's own transport open a new session at its next request; return the old.

    A session the caller passed in is theirs and left alone. The transport has no public way to
    do this yet, hence the private names, read defensively.
    """
    transport = getattr(client, "_transport", None)
    session = getattr(transport, "_session", None)
    if session is not None and getattr(transport, "_owns_session", False):
        transport._session = None  # type: ignore[union-attr]  # noqa: SLF001
    return session


class _ClientRunner:
    """One client's handle on a (possibly shared) portal: refuses calls once that client closed.

    ``with_options`` gives a client that shares its parent's portal; each client still closes on
    its own, and a closed one must send nothing, even when the portal was never started. A
    derived client's handle keeps its parent's alive: the portal ends when the client that owns
    it is closed or collected, and it is not collected while a client derived from it is in use.
    Every namespace, list and iterator of a client holds its handle, so ``Client().models.list()``
    keeps the portal up for as long as the list is used.
    """

    def __init__(self, portal: _PortalRunner, parent: _ClientRunner | None = None) -> None:
        self.portal = portal
        self.parent = parent
        self.closed = False

    @property
    def is_running(self) -> bool:
        """Whether coroutines can be run for this client."""
        return not self.closed and self.portal.is_running

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``func()`` on the portal's loop, unless this client or the portal is closed."""
        if self.closed or self.portal.closed:
            raise FinetuneError("this Client is closed; create a new one")
        return self.portal.call(func)


async def _awaited(func: Callable[[], Awaitable[T]]) -> T:
    return await func()


# The portals whose loop thread runs: those of clients still open at interpreter exit are closed
# from threading's exit hook, which runs *before* the interpreter joins non-daemon threads; a
# plain atexit callback would run only after that join, and after a portal left to the garbage
# collector could hang it. After a fork, the child forgets every one of them.
_open_runners: set[_PortalRunner] = set()
_open_lock = threading.Lock()
_exit_hook_installed = False
# What a forked child inherited from its parent's portals: kept, never used nor finalized.
_inherited: list[object] = []


def _close_open_runners() -> None:
    with _open_lock:
        runners = list(_open_runners)
        _open_runners.clear()
    for runner in runners:
        with contextlib.suppress(Exception):
            runner.close()


def _register_at_exit(runner: _PortalRunner) -> None:
    global _exit_hook_installed  # noqa: PLW0603 - one hook for the whole process
    with _open_lock:
        _open_runners.add(runner)
        if not _exit_hook_installed:
            threading._register_atexit(_close_open_runners)  # type: ignore[attr-defined]  # noqa: SLF001
            _exit_hook_installed = True


def _unregister_at_exit(runner: _PortalRunner) -> None:
    # No lock: the loop thread calls this as it ends, and must never wait for the thread that
    # holds the lock (it may be joining this one); a set's discard is atomic.
    _open_runners.discard(runner)


def _after_fork_in_child() -> None:
    """Give every open client of the parent a fresh portal, loop and session on first use."""
    global _open_lock  # noqa: PLW0603 - the child's own lock
    _open_lock = threading.Lock()
    runners = list(_open_runners)
    _open_runners.clear()  # the exit hook must not wait on the parent's loop threads
    for runner in runners:
        runner.forget_parent()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Client:
    """A blocking client for the OpenAI-compatible fine-tuning API.

    It has the constructor, the namespaces and the method names of ``AsyncClient``; lists are
    plain lazy iterators. Use it with ``with`` or call ``close()``. It is safe to share between
    threads.

    Example:
        >>> with Client() as client:  # doctest: +SKIP
        ...     for job in client.fine_tuning.jobs.list(limit=50):
        ...         print(job.id, job.status)
    """

    fine_tuning: FineTuning
    batches: Batches
    files: Files
    models: Models
    webhooks: Webhooks

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        """Create a client; see ``AsyncClient`` for the keywords. No thread starts yet."""
        self._setup(AsyncClient(api_key=api_key, base_url=base_url, **options), None)

    def _setup(self, async_client: AsyncClient, parent: _ClientRunner | None) -> None:
        self._async = async_client
        self._owns_portal = parent is None
        if parent is None:
            self._portal = _PortalRunner(async_client)
            self._runner = _ClientRunner(self._portal)
            # Left to the garbage collector unclosed, the client warns and its thread ends. The
            # handle is watched, not the wrapper: namespaces and lists hold it, so
            # `Client().models.retrieve(...)` is not cut off mid-call. At interpreter exit the
            # exit hook has closed it already, so this must not run (nor warn) from atexit.
            weakref.finalize(self._runner, self._portal.abandon).atexit = False
        else:
            self._portal = parent.portal
            self._runner = _ClientRunner(self._portal, parent)
        self.fine_tuning = FineTuning(async_client.fine_tuning, self._runner)
        self.batches = Batches(async_client.batches, self._runner)
        self.files = Files(async_client.files, self._runner)
        self.models = Models(async_client.models, self._runner)
        # Verifying a webhook needs no I/O: the same object serves both clients.
        self.webhooks = async_client.webhooks

    @classmethod
    def _wrap(cls, async_client: AsyncClient, parent: _ClientRunner | None = None) -> Self:
        client = cls.__new__(cls)
        client._setup(async_client, parent)  # noqa: SLF001 - own class
        return client

    @classmethod
    def for_portkey(
        cls,
        *,
        api_key: str | None = None,
        virtual_key: str | None = None,
        provider: str | None = None,
        config: str | Mapping[str, Any] | None = None,
        custom_host: str | None = None,
        trace_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        base_url: str = "https://api.portkey.ai/v1",
        provider_api_key: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> Self:
        """Blocking twin of ``AsyncClient.for_portkey``."""
        return cls._wrap(
            AsyncClient.for_portkey(
                api_key=api_key,
                virtual_key=virtual_key,
                provider=provider,
                config=config,
                custom_host=custom_host,
                trace_id=trace_id,
                metadata=metadata,
                base_url=base_url,
                provider_api_key=provider_api_key,
                **options,
            )
        )

    @classmethod
    def for_azure(
        cls,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        azure_ad_token: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> Self:
        """Blocking twin of ``AsyncClient.for_azure``."""
        return cls._wrap(
            AsyncClient.for_azure(
                endpoint=endpoint,
                api_key=api_key,
                api_version=api_version,
                azure_ad_token=azure_ad_token,
                **options,
            )
        )

    @property
    def base_url(self) -> str:
        """The base URL every path is joined to."""
        return self._async.base_url

    @property
    def timeout(self) -> Timeout:
        """The timeouts of every call."""
        return self._async.timeout

    @property
    def max_retries(self) -> int:
        """How many times a failed call is retried."""
        return self._async.max_retries

    @property
    def is_closed(self) -> bool:
        """Whether ``close`` was called (on this client, or on the one it was derived from)."""
        return self._runner.closed or self._portal.closed

    def with_options(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
    ) -> Self:
        """Return a client sharing this one's thread and connection pool, some settings changed.

        Closing the new client does nothing to the shared pool; closing this one closes both.
        """
        derived = self._async.with_options(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            default_query=default_query,
            backoff=backoff,
        )
        return self._wrap(derived, self._runner)

    def request(
        self,
        method: str,
        path: str,
        into: type[T],
        *,
        query: Query = (),
        body: object = None,
        empty: T | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """Blocking twin of ``AsyncClient.request``."""
        return self._call(
            partial(
                self._async.request,
                method,
                path,
                into,
                query=query,
                body=body,
                empty=empty,
                headers=headers,
            )
        )

    def poll(
        self, path: str, into: type[T], *, timeout: float | None = None
    ) -> tuple[T, Mapping[str, str]]:
        """Blocking twin of ``AsyncClient.poll``."""
        return self._call(partial(self._async.poll, path, into, timeout=timeout))

    def download(
        self, path: str, sink: DownloadSink, *, headers: Mapping[str, str] | None = None
    ) -> Mapping[str, str]:
        """Blocking twin of ``AsyncClient.download``."""
        return self._call(partial(self._async.download, path, sink, headers=headers))

    def _call(self, func: Callable[[], Awaitable[T]]) -> T:
        return self._runner.call(func)

    def close(self) -> None:
        """Close the connection pool and stop the client's thread; calling it again does nothing.

        A client made by ``with_options`` shares its parent's pool: closing it only marks it
        closed.
        """
        if self._runner.closed:
            return
        if self._portal.is_running and not self._owns_portal:
            # Marks the derived async client closed; the shared pool stays with the parent.
            self._runner.call(self._async.aclose)
        self._runner.closed = True
        if self._owns_portal:
            self._portal.close()

    def __enter__(self) -> Self:
        """Return the client itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()

    def __repr__(self) -> str:
        """Show where the client points, never its key."""
        return f"<{type(self).__name__} base_url={self.base_url!r}>"
