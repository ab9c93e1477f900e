"""``Tracker``: follow jobs and batches until each is terminal, through restarts.

How it runs. One background task (the runner) refreshes the live objects in **rounds**: a full
round every ``poll_interval`` (``reconcile_interval`` with webhooks), an early one for ids just
added, and one retrieve at once for an id a webhook named (then one more, ``recheck_delay``
later, if that read found it not terminal yet: the API had not caught up). A round is the
scheduling unit, not an object (``watch`` keeps a next-poll time per object), because a list
sweep refreshes up to a hundred objects with one request: for each kind,
``_plan.choose_refresh`` picks sweeping or retrieving, a sweep stops as ``_plan.sweep_done``
says, and the objects it did not meet are retrieved. Every request is one attempt (the request
protocol's ``poll``; a sweep page's query rides in its path), so a 429 or ``Retry-After`` pauses
the whole tracker through one ``_polling.RatePause``, the floored, growing pause ``watch`` takes,
instead of each request retrying on its own.

What it keeps. Each observed status change is written to the store as an undelivered update, in
one transaction with the object's new status, before anyone sees it. ``updates()`` reads the
undelivered updates from the store, oldest first, so after a restart it starts with what the
last process had not delivered. The delivery rule (docs/api.md): an update counts as delivered when
the consumer asks for the next one, or leaves the loop without an exception. A generator cannot
tell ``break`` from a raise, so the last update yielded is *held*; ``__aexit__`` marks it
delivered when the ``async with`` block ends without an exception and leaves it undelivered
otherwise, and a new ``updates()`` loop in the same block marks it delivered (the previous loop
was left, and the block went on).

Push and pull. With ``webhook_secret``, ``webhook_receiver`` is a ``WebhookReceiver`` whose
``on_event`` is ``on_webhook_event``: the hint is written to the store before the receiver answers
200, so a process killed right after answering still follows it (``_adopt`` retrieves a hint no
poll followed, first, at the restart). Polling then runs every ``reconcile_interval`` and only
catches what the webhooks missed; ``stats.reconciled`` counts those.

Nothing holds a timeout, cancel scope or task group across a ``yield`` (docs/architecture.md
rule 3): the runner owns the tasks, and ``updates()`` only reads the store and waits on an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal, Self
from urllib.parse import urlencode

import attrs

from .._converter import converter
from .._polling import DEFAULT_POLL_TIMEOUT, RatePause, check_poll_settings, is_terminal
from .._sansio import next_cursor, parse_retry_after, path_segment
from ..errors import APIError, APIStatusError, FinetuneError, InvalidParameterError
from ..types import Batch, FineTuningJob, Page
from ..types.tracking import TrackedKind, TrackedObject, TrackedUpdate
from ..webhooks import WebhookReceiver
from ._plan import PAGE_SIZE, choose_refresh, sweep_done, update_id
from ._serve import WebhookServer, start_webhook_server
from ._sqlite import SQLiteStore
from ._store import Store, StoredObject, StoredUpdate

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable
    from types import TracebackType

    from ..resources._requester import Requester
    from ..types import WebhookEvent
    from ._memory import MemoryStore

__all__ = ["DEFAULT_RECHECK_DELAY", "Tracker", "TrackerStats"]

logger = logging.getLogger("finetune_async.tracking")

_REFRESH_MODES: Final = ("auto", "list", "retrieve")
#: Seconds between a webhook's retrieve that found the object not terminal yet and the one more
#: retrieve that follows it: a few seconds, for the API to catch up with the webhook.
DEFAULT_RECHECK_DELAY: Final = 5.0
_TOO_MANY_REQUESTS: Final = 429
#: Updates read from the store at a time by ``updates()``.
_READ_AHEAD: Final = 32
#: Failed reads of one object in a row before it is logged (once per run of failures).
_FAILURES_LOGGED: Final = 3
#: Why an object is read: a round's poll, a webhook's hint, or the recheck after a hint.
_Why = Literal["poll", "hint", "recheck"]
_PATHS: Final[dict[str, str]] = {"job": "/fine_tuning/jobs", "batch": "/batches"}
_RECORDS: Final[dict[str, type[FineTuningJob | Batch]]] = {
    "job": FineTuningJob,
    "batch": Batch,
}


@attrs.define
class TrackerStats:
    """What a ``Tracker`` did since it was entered (counters of this process only).

    Attributes:
        requests: Requests sent: retrieves and sweep pages, refused ones included.
        polls: Reads of a tracked object's state: by a retrieve, or met in a sweep.
        sweeps: List sweeps started (one per kind and round that swept).
        webhooks: Webhook events taken for a tracked id (each written to the store as a hint).
            A delivery the receiver deduplicated on its ``webhook-id`` is not counted again.
        webhooks_ignored: Verified webhook events for an id this tracker does not track (or
            with no id): answered 200 and otherwise ignored.
        rechecks: Retrieves sent ``recheck_delay`` after a webhook's retrieve that found the
            object not terminal yet.
        reconciled: Terminal statuses found by polling that no webhook had reported: with
            webhooks, what they missed (a dropped delivery, a receiver down); without them,
            every terminal status.
    """

    requests: int = 0
    polls: int = 0
    sweeps: int = 0
    webhooks: int = 0
    webhooks_ignored: int = 0
    rechecks: int = 0
    reconciled: int = 0


class _Live:
    """The runner's record of one live object this process works on."""

    __slots__ = (
        "created_at",
        "failures",
        "hinted",
        "id",
        "kind",
        "position",
        "seq",
        "status",
        "swept",
    )

    def __init__(self, stored: StoredObject) -> None:
        self.kind: TrackedKind = stored.kind
        self.id = stored.id
        self.status = stored.status
        self.seq = stored.seq
        self.created_at = stored.created_at
        self.hinted = stored.hinted_at is not None
        #: Whether a sweep looked for it since it was added (or the tracker started), and where
        #: the last one met it (index from 0 in the list), or None.
        self.swept = False
        self.position: int | None = None
        self.failures = 0


def _check_ids(ids: Iterable[str], param: str) -> list[str]:
    if isinstance(ids, str):
        msg = f"{param}: pass a list of ids, not one string"
        raise InvalidParameterError(msg, param=param)
    checked = []
    values: Iterable[object] = ids  # checked at run time: callers pass anything
    for value in values:
        if not isinstance(value, str) or not value.strip():
            msg = f"{param}: every id must be a non-empty string, got {value!r}"
            raise InvalidParameterError(msg, param=param)
        checked.append(value)
    return list(dict.fromkeys(checked))


def _open_store(store: object) -> Store:
    if isinstance(store, str | os.PathLike):
        return SQLiteStore(store)
    if isinstance(store, Store):  # SQLiteStore, MemoryStore, or another implementation
        return store
    msg = f"store: a path, a SQLiteStore or a MemoryStore, got {type(store).__name__}"
    raise InvalidParameterError(msg, param="store")


def _status_of(record: FineTuningJob | Batch) -> str:
    return str(record.status)


class Tracker:
    """Follows jobs and batches until each is terminal, keeping its state in a store.

    Use it as ``async with Tracker(client, store="tracker.db") as tracker:``; entering opens the
    store (and raises ``StoreError`` before any request if it cannot be used) and starts
    polling the objects it holds. Leaving stops polling and closes the store.

    Args:
        client: An ``AsyncClient`` (anything with the request protocol's ``poll``).
        store: A path (a SQLite file), a ``SQLiteStore`` or a ``MemoryStore`` (not durable).
        poll_interval: Seconds between two refreshes of the live objects, without webhooks.
        reconcile_interval: Seconds between two refreshes when webhooks are taken
            (``webhook_secret`` set): polling then only catches what the webhooks missed.
        webhook_secret: The webhook endpoint's secret ``whsec_…``; None: no webhooks. It makes
            ``webhook_receiver`` and ``serve_webhooks`` available, and polling run every
            ``reconcile_interval``.
        max_concurrency: Most requests in flight at once.
        refresh: ``"retrieve"`` (one GET per object), ``"list"`` (sweeps of the list endpoints,
            100 a page, newest first) or ``"auto"`` (for each refresh, whichever the last
            sweeps say needs fewer requests).
        recheck_delay: Seconds after a webhook's retrieve that found the object not terminal
            yet (every job and batch event is a terminal one: the status unchanged means the
            webhook came before the API caught up) until one more retrieve of it, rather than a
            whole ``reconcile_interval``. One recheck per webhook; if it too finds the object
            live, the reconcile poll will see the rest.

    Raises:
        InvalidParameterError: A bad setting (nothing is opened or sent).
    """

    def __init__(
        self,
        client: Requester,
        *,
        store: str | os.PathLike[str] | SQLiteStore | MemoryStore | Store,
        poll_interval: float = 30.0,
        reconcile_interval: float = 600.0,
        webhook_secret: str | None = None,
        max_concurrency: int = 16,
        refresh: str = "auto",
        recheck_delay: float = DEFAULT_RECHECK_DELAY,
    ) -> None:
        check_poll_settings(poll_interval, None, max_concurrency)
        for name, value in (
            ("reconcile_interval", reconcile_interval),
            ("recheck_delay", recheck_delay),
        ):
            try:
                check_poll_settings(value, None)
            except InvalidParameterError:
                msg = f"{name}: must be a number of seconds > 0, got {value!r}"
                raise InvalidParameterError(msg, param=name) from None
        if refresh not in _REFRESH_MODES:
            msg = f"refresh: must be 'auto', 'list' or 'retrieve', got {refresh!r}"
            raise InvalidParameterError(msg, param="refresh")
        secret: object = webhook_secret
        if secret is not None and (not isinstance(secret, str) or not secret.strip()):
            msg = "webhook_secret: must be the endpoint's secret (whsec_...) or None"
            raise InvalidParameterError(msg, param="webhook_secret")
        self._receiver: WebhookReceiver | None = None
        if webhook_secret is not None:
            # Made now, so that a malformed secret is refused with the other settings.
            try:
                self._receiver = WebhookReceiver(
                    secret=webhook_secret, on_event=self.on_webhook_event
                )
            except InvalidParameterError as exc:
                msg = f"webhook_secret: {str(exc).removeprefix('secret: ')}"
                raise InvalidParameterError(msg, param="webhook_secret") from None
        self._requester = client
        self._store = _open_store(store)
        self._interval = float(reconcile_interval if webhook_secret else poll_interval)
        self._webhook_secret = webhook_secret
        self._recheck_delay = float(recheck_delay)
        self._servers: list[WebhookServer] = []
        self._max_concurrency = max_concurrency
        self._mode = refresh
        # Names this process to a shared store (its leases); ignored by one-process stores.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._pause = RatePause()
        self.stats = TrackerStats()
        self._live: dict[str, _Live] = {}
        self._fresh: dict[str, None] = {}
        self._urgent: dict[str, None] = {}
        #: Ids whose webhook's retrieve found them live still, and when (loop time) to look again.
        self._rechecks: dict[str, float] = {}
        self._polled: list[str] = []
        self._held: StoredUpdate | None = None
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._fatal: BaseException | None = None
        self._fatal_raised = False
        self._state = "new"

    def __repr__(self) -> str:
        return (
            f"Tracker(store={self._store!r}, refresh={self._mode!r}, live={len(self._live)}, "
            f"state={self._state!r})"
        )

    # --- life cycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Open the store, load what it tracks and start polling.

        Raises:
            StoreError: The store cannot be used; no request was sent.
        """
        if self._state != "new":
            msg = "a Tracker is entered once; create a new one"
            raise FinetuneError(msg)
        self._state = "opening"
        await self._store.open()
        try:
            claimed = await self._store.claim(self._owner)
        except BaseException:
            await self._store.close()
            raise
        self._adopt(claimed)
        self._state = "open"
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="tracker")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop polling and close the store.

        The update the consumer was given last is marked delivered if the block ends without an
        exception, and left for redelivery (after a restart) if it ends with one.

        Raises:
            FinetuneError: The runner had stopped on an error no ``updates()`` loop raised.
        """
        self._state = "closing"
        runner, self._runner = self._runner, None
        try:
            # First, so that no delivery reaches on_webhook_event while the store closes (one
            # arriving now is answered 500, and the sender retries it).
            await self._close_servers()
            if runner is not None:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
            if exc_type is None and self._fatal is None:
                await self._deliver_held()
                await self._flush_polls()
        finally:
            self._state = "closed"
            self._notify()
            await self._store.close()
        if exc_type is None and self._fatal is not None and not self._fatal_raised:
            raise self._fatal

    async def _close_servers(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            await server.close()

    def _check_open(self) -> None:
        if self._state != "open":
            msg = "the tracker is not open: use it inside `async with Tracker(...) as tracker:`"
            raise FinetuneError(msg)

    def _adopt(self, claimed: Iterable[StoredObject]) -> None:
        """Work on these live objects; a webhook not followed by a poll is followed now."""
        for stored in claimed:
            if stored.id in self._live:
                continue
            self._live[stored.id] = _Live(stored)
            if stored.hinted_at is not None and (
                stored.last_polled_at is None or stored.hinted_at > stored.last_polled_at
            ):
                self._urgent[stored.id] = None

    def _notify(self) -> None:
        """Wake every ``updates()`` loop waiting for a change (each holds the old event)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- the public surface ----------------------------------------------------------------------

    async def add_jobs(self, ids: Iterable[str]) -> None:
        """Track these fine-tuning jobs; each is in the store when this returns.

        Raises:
            InvalidParameterError: ``ids`` is one string, or holds an empty or non-string id.
        """
        await self._add("job", _check_ids(ids, "ids"))

    async def add_batches(self, ids: Iterable[str]) -> None:
        """Track these batches; each is in the store when this returns.

        Raises:
            InvalidParameterError: ``ids`` is one string, or holds an empty or non-string id.
        """
        await self._add("batch", _check_ids(ids, "ids"))

    async def _add(self, kind: TrackedKind, ids: list[str]) -> None:
        self._check_open()
        added = await self._store.add([(kind, object_id) for object_id in ids], time.time())
        for object_id in added:
            self._live[object_id] = _Live(StoredObject(kind=kind, id=object_id))
            self._fresh[object_id] = None
        if added:
            self._wake.set()
            self._notify()

    async def remove(self, object_id: str) -> None:
        """Stop tracking an object and forget its updates; an unknown id does nothing."""
        (object_id,) = _check_ids([object_id], "object_id")
        self._check_open()
        await self._store.remove(object_id)
        self._live.pop(object_id, None)
        self._fresh.pop(object_id, None)
        self._urgent.pop(object_id, None)
        self._rechecks.pop(object_id, None)
        if self._held is not None and self._held.id == object_id:
            self._held = None
        self._notify()

    async def status(self) -> list[TrackedObject]:
        """Return every tracked object as the store holds it, in the order added."""
        self._check_open()
        await self._flush_polls()
        return [
            TrackedObject(
                kind=stored.kind,
                id=stored.id,
                status=stored.status,
                terminal=stored.terminal,
                delivered=stored.delivered,
                polls=stored.polls,
                last_polled_at=stored.last_polled_at,
            )
            for stored in await self._store.objects()
        ]

    @property
    def webhook_receiver(self) -> WebhookReceiver:
        """The ``WebhookReceiver`` that feeds this tracker (one per tracker).

        Mount it in a server of your own (``receiver.aiohttp_app()``, ``receiver.asgi_app``), or
        let ``serve_webhooks`` serve it. Its ``on_event`` is ``on_webhook_event``: a delivery is
        answered 200 only once its hint is in the store, and 500 while the tracker is not open
        (the sender retries it). A verified event for an id the tracker does not track is
        answered 200 and ignored (``stats.webhooks_ignored``); a bad signature is 400 and never
        reaches the tracker.

        Raises:
            InvalidParameterError: The tracker was made without ``webhook_secret=``.
        """
        if self._receiver is None:
            msg = (
                "webhook_receiver needs the webhook endpoint's secret: create the tracker "
                "with Tracker(..., webhook_secret='whsec_...')"
            )
            raise InvalidParameterError(msg, param="webhook_secret")
        return self._receiver

    async def serve_webhooks(
        self, host: str = "127.0.0.1", port: int = 0, *, path: str = "/webhooks"
    ) -> WebhookServer:
        """Serve ``webhook_receiver`` with aiohttp on this loop until the tracker is left.

        Args:
            host: The address to listen on.
            port: The port; 0 picks a free one (read it from the result).
            path: Where deliveries are POSTed (``path + "/"`` is answered too).

        Returns:
            The running server: its ``port`` and ``url`` (what the sender is given).

        Raises:
            InvalidParameterError: No ``webhook_secret``, or a bad port or path; nothing is bound.
            FinetuneError: The tracker is not open.
            OSError: The address cannot be bound.
        """
        receiver = self.webhook_receiver
        self._check_open()
        server = await start_webhook_server(receiver, host, port, path)
        self._servers.append(server)
        return server

    async def on_webhook_event(self, event: WebhookEvent) -> bool:
        """Take a verified webhook event: write a hint to the store, then retrieve the object.

        This is ``webhook_receiver``'s ``on_event``; a receiver of your own may call it too. The
        hint is durable when this returns (so the receiver may answer 200); the retrieve runs at
        once in the background, since OpenAI's payloads carry only the id, and a retrieve that
        finds the object not terminal yet is followed by one more ``recheck_delay`` later. An
        id that is not tracked is ignored (counted in ``stats.webhooks_ignored``); one already
        terminal costs no request.

        Returns:
            Whether the event named a tracked object.

        Raises:
            FinetuneError: The tracker is not open (a receiver answers 500: the sender retries).
            StoreError: The hint could not be written (idem).
        """
        self._check_open()
        object_id = event.data.id
        stored = await self._store.hint(object_id, time.time()) if object_id else None
        if stored is None:
            self.stats.webhooks_ignored += 1
            return False
        self.stats.webhooks += 1
        if stored.terminal or self._state != "open":
            return True
        live = self._live.get(stored.id)
        if live is None:
            # Added by another process since the last claim: take it now, not at the next round.
            live = self._live[stored.id] = _Live(stored)
        live.hinted = True
        self._rechecks.pop(stored.id, None)
        self._urgent[stored.id] = None
        self._wake.set()
        return True

    async def updates(self, *, follow: bool = False) -> AsyncGenerator[TrackedUpdate]:
        """Yield one ``TrackedUpdate`` per observed status change, undelivered ones first.

        An update counts as delivered when the next one is asked for, or when the loop is left
        and the ``async with`` block then ends without an exception (see the module's docstring).
        Run one loop at a time: two loops at once would each be given the same updates.

        Args:
            follow: Keep waiting for more ``add_*`` calls once every object is terminal and
                delivered (else the iterator ends then).

        Raises:
            StoreError: The store failed.
            FinetuneError: The runner stopped on an error (a closed client, say).
        """
        self._check_open()
        # A previous loop was left and the block went on: its last update was delivered.
        await self._deliver_held()
        while self._state == "open":
            changed = self._changed
            pending = await self._store.undelivered(self._owner, _READ_AHEAD)
            if not pending:
                if self._fatal is not None:
                    self._fatal_raised = True
                    raise self._fatal
                if not follow and self._idle():
                    return
                await changed.wait()
                continue
            for stored in pending:
                self._held = stored
                yield self._public(stored)
                # Asked for the next one: the last one was delivered.
                await self._deliver_held()

    def _idle(self) -> bool:
        return not self._live and not self._fresh and not self._urgent

    async def _deliver_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await self._store.mark_delivered(self._owner, held.update_id)

    @staticmethod
    def _public(stored: StoredUpdate) -> TrackedUpdate:
        record = converter.loads(stored.record, _RECORDS[stored.kind])
        return TrackedUpdate(
            kind=stored.kind,
            id=stored.id,
            status=stored.status,
            previous_status=stored.previous_status,
            record=record,
            update_id=stored.update_id,
            terminal=stored.terminal,
        )

    # --- the runner ------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        try:
            while True:
                due = self._due_rechecks(loop.time())
                if self._urgent or due:
                    ids, self._urgent = list(self._urgent), {}
                    await self._retrieve_all(self._pick(ids), why="hint")
                    rechecked = self._pick(due)
                    self.stats.rechecks += len(rechecked)
                    await self._retrieve_all(rechecked, why="recheck")
                elif loop.time() >= next_round:
                    started = loop.time()
                    self._fresh.clear()
                    self._adopt(await self._store.claim(self._owner))
                    await self._refresh(list(self._live.values()))
                    next_round = max(started + self._interval, loop.time())
                elif self._fresh:
                    ids, self._fresh = list(self._fresh), {}
                    await self._refresh(self._pick(ids))
                else:
                    self._wake.clear()
                    wake_at = min(self._rechecks.values(), default=next_round)
                    wake_at = min(wake_at, next_round)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wake_at - loop.time())
                    continue
                await self._flush_polls()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a closed client, a failed store: end the loops with it
            self._fatal = _first_leaf(exc)
            self._notify()

    def _due_rechecks(self, now: float) -> list[str]:
        """Take the ids whose recheck is due."""
        due = [object_id for object_id, when in self._rechecks.items() if when <= now]
        for object_id in due:
            del self._rechecks[object_id]
        return due

    def _pick(self, ids: Iterable[str]) -> list[_Live]:
        return [self._live[object_id] for object_id in ids if object_id in self._live]

    async def _flush_polls(self) -> None:
        polled, self._polled = self._polled, []
        if polled:
            await self._store.touch(self._owner, polled, time.time())

    async def _refresh(self, lives: list[_Live]) -> None:
        """Refresh these objects: per kind, a sweep or retrieves, as the plan says."""
        retrieve: list[_Live] = []
        sweeps = []
        for kind in ("job", "batch"):
            group = [live for live in lives if live.kind == kind]
            if not group:
                continue
            positions = [live.position for live in group if live.swept]
            unknown = sum(1 for live in group if not live.swept)
            plan = choose_refresh(self._mode, positions, unknown=unknown)
            if plan == "list":
                sweeps.append(self._sweep(kind, group))
            else:
                retrieve.extend(group)
        async with asyncio.TaskGroup() as group_tasks:
            sweep_tasks = [group_tasks.create_task(sweep) for sweep in sweeps]
            if retrieve:
                group_tasks.create_task(self._retrieve_all(retrieve, why="poll"))
        leftovers = [live for task in sweep_tasks for live in task.result()]
        if leftovers:
            await self._retrieve_all(leftovers, why="poll")

    async def _send(self, path: str, into: type[Any]) -> Any:
        """GET ``path`` once per try, waiting out the shared pause; retried only after a 429."""
        loop = asyncio.get_running_loop()
        while True:
            delay = self._pause.delay(loop.time())
            while delay > 0:
                await asyncio.sleep(delay)
                delay = self._pause.delay(loop.time())
            ticket = self._pause.ticket()
            self.stats.requests += 1
            try:
                record, headers = await self._requester.poll(
                    path, into, timeout=DEFAULT_POLL_TIMEOUT
                )
            except APIStatusError as exc:
                hint = parse_retry_after(exc.headers) if exc.headers else None
                if exc.status_code != _TOO_MANY_REQUESTS and hint is None:
                    raise
                self._pause.refused(ticket, hint, loop.time())
                continue
            hint = parse_retry_after(headers) if headers else None
            self._pause.answered(ticket, hint, loop.time())
            return record

    async def _retrieve_all(self, lives: list[_Live], *, why: _Why) -> None:
        queue = deque(lives)

        async def worker() -> None:
            while queue:
                await self._retrieve(queue.popleft(), why=why)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._max_concurrency, len(queue))):
                group.create_task(worker())

    async def _retrieve(self, live: _Live, *, why: _Why) -> None:
        """Read one object (``why``: a round's poll, a webhook's hint, or its recheck)."""
        path = f"{_PATHS[live.kind]}/{path_segment(live.id)}"
        try:
            record = await self._send(path, _RECORDS[live.kind])
        except APIError as exc:
            live.failures += 1
            if live.failures == _FAILURES_LOGGED:
                logger.warning("tracker: %s %s could not be read: %s", live.kind, live.id, exc)
        else:
            live.failures = 0
            await self._observed(live, record, hinted=why != "poll")
        if why == "hint" and live.id in self._live:
            # Every job and batch event is a terminal one, so the object still being live means
            # the webhook came before the API caught up (or the read failed): look once more
            # soon, rather than a whole reconcile_interval later.
            when = asyncio.get_running_loop().time() + self._recheck_delay
            self._rechecks.setdefault(live.id, when)

    async def _sweep(self, kind: TrackedKind, group: list[_Live]) -> list[_Live]:
        """Walk one list newest first; return the objects of ``group`` it did not meet."""
        self.stats.sweeps += 1
        unseen = {live.id: live for live in group}
        for live in group:
            live.swept, live.position = True, None
        page_type = Page[FineTuningJob] if kind == "job" else Page[Batch]
        cursor: str | None = None
        asked: set[str] = set()
        index = pages = 0
        # Worked out again only when the object holding it is met: walking every unseen object
        # after each page cost about a tenth of a 10,000-job sweep (cProfile, bench_tracker).
        # A created_at learnt meanwhile (None before) only keeps the cached None: a sweep that
        # reads on, never one that stops early.
        oldest_unseen = _oldest(unseen.values())
        while True:
            query = urlencode([("limit", PAGE_SIZE)] + ([("after", cursor)] if cursor else []))
            try:
                page = await self._send(f"{_PATHS[kind]}?{query}", page_type)
            except APIError as exc:
                logger.warning("tracker: a sweep of %s ended early: %s", _PATHS[kind], exc)
                break
            pages += 1
            stale = False
            for record in page.data:
                met = self._live.get(record.id)
                if met is not None and met.kind == kind:
                    gone = unseen.pop(record.id, None)
                    if gone is not None and gone.created_at in (None, oldest_unseen):
                        stale = True
                    met.swept, met.position = True, index
                    await self._observed(met, record, hinted=False)
                index += 1
            oldest = page.data[-1].created_at if page.data else None
            if stale:
                oldest_unseen = _oldest(unseen.values())
            if sweep_done(
                unseen=len(unseen),
                has_more=bool(page.has_more),
                page_oldest=oldest,
                oldest_unseen=oldest_unseen,
                pages_read=pages,
                budgeted=self._mode == "auto",
            ):
                break
            cursor = next_cursor(page.data, page.has_more, page.last_id)
            if cursor is None or cursor in asked:
                break
            asked.add(cursor)
        return [live for live in unseen.values() if live.id in self._live]

    async def _observed(self, live: _Live, record: FineTuningJob | Batch, *, hinted: bool) -> None:
        """Note one read of an object; record its change of status, if any.

        ``hinted``: the read followed a webhook (so a terminal status it finds is no
        reconciliation).
        """
        self.stats.polls += 1
        self._polled.append(live.id)
        status = _status_of(record)
        if live.seq and status == live.status:
            return
        seq = live.seq + 1
        terminal = is_terminal(status)
        update = StoredUpdate(
            update_id=update_id(live.kind, live.id, seq, status),
            kind=live.kind,
            id=live.id,
            seq=seq,
            status=status,
            previous_status=live.status,
            terminal=terminal,
            record=converter.dumps(record),
            created_at=record.created_at,
        )
        if not await self._store.record_update(self._owner, update):
            # Removed meanwhile, or (a shared store) another process holds it now.
            self._live.pop(live.id, None)
            return
        live.status, live.seq = status, seq
        if record.created_at is not None:
            live.created_at = record.created_at
        if terminal:
            self._live.pop(live.id, None)
            self._rechecks.pop(live.id, None)
            if not live.hinted and not hinted:
                self.stats.reconciled += 1
        self._notify()


def _first_leaf(exc: BaseException) -> BaseException:
    """The first error inside task groups' exception groups (the error a caller understands)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _oldest(lives: Iterable[_Live]) -> float | None:
    """The oldest ``created_at`` of these objects; None if one of them has none yet."""
    oldest: float | None = None
    for live in lives:
        if live.created_at is None:
            return None
        oldest = live.created_at if oldest is None else min(oldest, live.created_at)
    return oldest
