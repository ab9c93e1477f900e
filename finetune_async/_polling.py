"""Polling many objects at once: one scheduler behind ``watch``, ``wait`` and friends.

Each watched object has a next-poll time in a heap; at most ``max_concurrency`` polls are in
flight, each as a short-lived task (an idle object costs a heap entry and a small record, no
task). Polls are single attempts: the scheduler owns the retries. When any answer is a 429 or
carries ``Retry-After``, the whole scheduler sends nothing until that delay has passed, instead of
every poll retrying on its own. A poll that fails otherwise is rescheduled with back-off; after
``failure_threshold`` failures in a row (at once for a permanent 4xx) an update carrying the
error is produced, and the object stays watched until it is terminal: nothing is ever dropped.

The updates come out of an async generator that never holds a timeout, cancel scope or task
group across a ``yield`` (docs/architecture.md rule 3): poll tasks hand their results over through a
deque and an event, and closing the generator (``break``, ``aclose``, cancellation, timeout)
cancels and awaits every poll in flight, leaving no task behind.

This module depends only on the records, the sans-I/O rules and the ``Requester`` protocol, so
the resource namespaces can offer ``wait`` / ``watch`` while staying below the client.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import weakref
from collections import deque
from contextlib import aclosing
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from ._config import Backoff
from ._sansio import backoff_delay, next_cursor, parse_retry_after
from .errors import (
    APIError,
    APIResponseValidationError,
    APIStatusError,
    InvalidParameterError,
    WaitTimeoutError,
)
from .types import FineTuningJob, FineTuningJobEvent, JobUpdate, Page

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Iterable, Mapping

    from .resources._requester import Requester

__all__ = [
    "DEFAULT_POLL_TIMEOUT",
    "RATE_LIMIT_BACKOFF",
    "TERMINAL_STATUSES",
    "JobWatch",
    "Observation",
    "RatePause",
    "Watcher",
    "check_poll_settings",
    "is_file_processed",
    "is_terminal",
    "rate_limit_pause",
    "stream_events",
    "wait_for",
]

T = TypeVar("T")

#: Terminal statuses of jobs and batches, OpenAI's and the providers' spellings (docs/compat.md),
#: compared case-insensitively. Everything else (paused, pending, pausing, cancel_requested...)
#: is still moving.
TERMINAL_STATUSES: Final = frozenset(
    {"succeeded", "failed", "cancelled", "completed", "error", "user_error", "expired"}
)
_FILE_DONE: Final = frozenset({"processed", "error", "deleted"})

#: A server's hint of when to poll again (OpenAI sends it on some long-running objects).
POLL_AFTER_HEADER: Final = "openai-poll-after-ms"
#: Longest sleep between two polls of a failing object.
_MAX_FAILURE_DELAY: Final = 60.0
#: Statuses that will not change by asking again.
_PERMANENT: Final = frozenset({400, 401, 403, 404, 422})
_TOO_MANY_REQUESTS: Final = 429
#: Shortest wait before the next poll of an object that ``openai-poll-after-ms`` may ask for
#: (a hint of 0 would re-poll at once, forever), unless ``poll_interval`` itself is shorter.
_MIN_POLL_AFTER: Final = 0.1
#: Bound of one poll attempt, in seconds, in place of the client's total timeout (600 s).
DEFAULT_POLL_TIMEOUT: Final = 30.0
#: The shared pause after a 429: at least ``initial`` (1 s) whatever the hint, doubling with each
#: 429 in a row up to ``maximum`` (60 s), up to ``jitter`` (25 %) longer at random; a longer hint
#: is honoured up to ``max_retry_after`` (60 s).
RATE_LIMIT_BACKOFF: Final = Backoff(initial=1.0, maximum=60.0, jitter=0.25, max_retry_after=60.0)
#: Beyond this many 429s in a row the floor has long reached its maximum (and 2.0**n overflows).
_MAX_STREAK: Final = 64


def is_terminal(status: str | None) -> bool:
    """Whether a job or batch status is final (``succeeded``, ``FAILED``, ``user_error``...)."""
    return status is not None and status.lower() in TERMINAL_STATUSES


def is_file_processed(status: str | None) -> bool:
    """Whether a file is done processing (``processed`` or ``error``); a missing status is done."""
    return status is None or status.lower() in _FILE_DONE


def _positive(value: object, param: str, *, integer: bool = False) -> None:
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        noun = "a positive integer" if integer else "a number of seconds > 0"
        raise InvalidParameterError(f"{param}: must be {noun}, got {value!r}", param=param)


def check_poll_settings(
    poll_interval: object,
    timeout: object,
    max_concurrency: object = 1,
    *,
    poll_timeout: object = None,
) -> None:
    """Raise ``InvalidParameterError`` for a non-positive interval, timeout or concurrency."""
    _positive(poll_interval, "poll_interval")
    if timeout is not None:
        _positive(timeout, "timeout")
    _positive(max_concurrency, "max_concurrency", integer=True)
    if poll_timeout is not None:
        _positive(poll_timeout, "poll_timeout")


def rate_limit_pause(
    streak: int, hint: float | None, backoff: Backoff, rng: random.Random | None = None
) -> float:
    """Return the shared pause after the ``streak``-th 429 in a row (from 1), in seconds.

    The floor is ``min(backoff.maximum, backoff.initial * 2**(streak - 1))``, made up to
    ``backoff.jitter`` of itself longer at random (never shorter: a floor), and never beyond
    ``backoff.maximum``. A server hint longer than that wins, up to ``backoff.max_retry_after``;
    a shorter one (``Retry-After: 0``, a date in the past, ``retry-after-ms: 0``) is raised to the
    floor, so that a server cannot turn the watch into a busy loop.
    """
    base = min(backoff.maximum, backoff.initial * 2.0 ** min(max(streak, 1) - 1, _MAX_STREAK))
    pause = min(backoff.maximum, base * (1.0 + (rng or random).random() * backoff.jitter))
    if hint is not None:
        pause = max(pause, min(hint, backoff.max_retry_after))
    return pause


class RatePause:
    """The shared pause after a 429 or ``Retry-After``, for ``watch`` and the tracker alike.

    Every request notes a ticket (``ticket()``) when it is sent. A refusal grows the streak (and
    so the pause, through ``_polling.rate_limit_pause``: 1 s at least, doubling to 60 s) only if
    no other refusal grew it since that request was sent: the other refusals of one burst were on
    their way already. An answer to a request sent since the last growth, or in the same round,
    ends the streak. Times are the caller's clock, in seconds.
    """

    __slots__ = ("_backoff", "_growths", "_rng", "_streak", "until")

    def __init__(
        self, backoff: Backoff = RATE_LIMIT_BACKOFF, rng: random.Random | None = None
    ) -> None:
        self._backoff = backoff
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._streak = 0
        self._growths = 0
        #: Nothing is sent before this time.
        self.until = -math.inf

    @property
    def streak(self) -> int:
        """Refused rounds in a row."""
        return self._streak

    def ticket(self) -> int:
        """Note a request being sent; pass the result to ``refused`` or ``answered``."""
        return self._growths

    def refused(self, ticket: int, hint: float | None, now: float) -> float:
        """A request was refused (429, or an error with ``Retry-After``); return the new end."""
        if ticket == self._growths:
            self._streak += 1
            self._growths += 1
        pause = rate_limit_pause(self._streak, hint, self._backoff, self._rng)
        self.until = max(self.until, now + pause)
        return self.until

    def answered(self, ticket: int, hint: float | None, now: float) -> None:
        """A request was answered; a ``Retry-After`` on it is honoured, without a floor."""
        if ticket >= self._growths - 1:
            self._streak = 0
        if hint is not None:
            self.until = max(self.until, now + min(hint, self._backoff.max_retry_after))

    def delay(self, now: float) -> float:
        """Seconds to wait before sending, from ``now``."""
        return max(0.0, self.until - now)


def _check_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = f"ids: every id must be a non-empty string, got {value!r}"
        raise InvalidParameterError(msg, param="ids")
    return value


class Observation(Generic[T]):
    """What the scheduler saw of one object: a change of status, or a run of failures."""

    __slots__ = ("error", "object_id", "previous_status", "record")

    def __init__(
        self, object_id: str, record: T | None, previous_status: str | None, error: Exception | None
    ) -> None:
        """Describe one observation."""
        self.object_id = object_id
        self.record = record
        self.previous_status = previous_status
        self.error = error


class _Watched(Generic[T]):
    """The scheduler's record of one watched object (no task while it waits)."""

    __slots__ = ("done", "failures", "last", "polls", "status")

    def __init__(self) -> None:
        self.last: T | None = None
        self.status: str | None = None
        self.polls = 0
        self.failures = 0
        self.done = False


class Watcher(Generic[T]):
    """Polls objects by id until each reaches a final status, and reports what changes.

    Iterate it with ``async for``; ``add`` more ids at any time, ``aclose`` to stop early.

    Args:
        requester: The client (its ``poll``: one attempt, no retries).
        ids: The objects to watch.
        path_of: The API path of an object, from its id.
        into: The record type of a poll's answer.
        status_of: The status of a record.
        is_done: Whether a status is final (the object is then no longer polled).
        poll_interval: Seconds between two polls of an object (sooner while it is young).
        max_concurrency: Most polls in flight at once.
        timeout: Seconds for the whole watch; None watches for as long as it takes.
        failure_threshold: Failed polls in a row before the object is reported with the error.
        backoff: The back-off between the polls of a failing object.
        rate_limit: The shared pause after a 429 or ``Retry-After`` (see ``rate_limit_pause``);
            ``RATE_LIMIT_BACKOFF`` by default: 1 s at least, doubling to 60 s.
        poll_timeout: Seconds one poll may take in all (``DEFAULT_POLL_TIMEOUT``, 30 s): a poll
            the server does not answer in time fails (``APITimeoutError``) and frees its slot;
            None keeps the client's own timeout.
        rng: The source of jitter.
    """

    def __init__(
        self,
        requester: Requester,
        ids: Iterable[str],
        *,
        path_of: Callable[[str], str],
        into: type[T],
        status_of: Callable[[T], str | None],
        is_done: Callable[[str | None], bool],
        poll_interval: float,
        max_concurrency: int,
        timeout: float | None,
        failure_threshold: int = 3,
        backoff: Backoff | None = None,
        rate_limit: Backoff = RATE_LIMIT_BACKOFF,
        poll_timeout: float | None = DEFAULT_POLL_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        """Prepare the watch; nothing is sent before iteration starts."""
        check_poll_settings(poll_interval, timeout, max_concurrency, poll_timeout=poll_timeout)
        self._requester = requester
        self._path_of = path_of
        self._into = into
        self._status_of = status_of
        self._is_done = is_done
        self._interval = float(poll_interval)
        self._max_concurrency = max_concurrency
        self._timeout = timeout
        self._failure_threshold = failure_threshold
        self._backoff = backoff or Backoff(
            initial=min(1.0, poll_interval), maximum=_MAX_FAILURE_DELAY
        )
        self._rate_limit = rate_limit
        self._poll_timeout = poll_timeout
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._watched: dict[str, _Watched[T]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._pending = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._updates: deque[Observation[T]] = deque()
        # The one pause every poll waits for after a 429: each poll takes a ticket when sent, so
        # that the refusals of one burst grow it once (see RatePause).
        self._rate = RatePause(rate_limit, self._rng)
        self._wake: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._current: weakref.ref[AsyncGenerator[Observation[T]]] | None = None
        self._started = False
        self._closed = False
        self._fatal: Exception | None = None
        if isinstance(ids, str):
            msg = "ids: pass a list of ids, not one string"
            raise InvalidParameterError(msg, param="ids")
        self._initial = [_check_id(object_id) for object_id in dict.fromkeys(ids)]

    # --- public surface --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncGenerator[Observation[T]]:
        """Start the watch and return its observations, once (a watch is iterated one time).

        Nothing else holds the returned generator strongly: when an ``async for`` is left by
        ``break`` and the generator dropped, it is finalized at once, which cancels the polls
        in flight, even one the server never answers (poll tasks hold the watcher, so a watcher
        that held its generator would keep both alive).
        """
        if self._started:
            if self._closed:
                return self._finished()
            msg = "a watch can be iterated only once"
            raise RuntimeError(msg)
        self._started = True
        now = asyncio.get_running_loop().time()
        for object_id in self._initial:
            self._track(object_id, now)
        generator = self._run(now)
        self._current = weakref.ref(generator)
        return generator

    async def aclose(self) -> None:
        """Stop watching: cancel every poll in flight and wait for them to end."""
        self._closed = True
        generator = self._current() if self._current is not None else None
        if generator is not None:
            await generator.aclose()
        elif not self._started:
            self._started = True
        await self._stop()

    def add(self, *ids: str) -> None:
        """Watch more objects; ids already watched are ignored. Call it from the loop's thread."""
        for object_id in map(_check_id, ids):
            if not self._started:
                if object_id not in self._initial:
                    self._initial.append(object_id)
            else:
                self._track(object_id, asyncio.get_running_loop().time())
        if self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> int:
        """How many watched objects are not final yet."""
        if not self._started:
            return len(self._initial)
        return self._pending

    # --- the scheduler ---------------------------------------------------------------------------

    @staticmethod
    async def _finished() -> AsyncGenerator[Observation[T]]:
        return
        yield  # pragma: no cover - makes this an (empty) async generator

    def _track(self, object_id: str, when: float) -> None:
        if object_id in self._watched:
            return
        self._watched[object_id] = _Watched()
        self._pending += 1
        self._schedule(object_id, when)

    def _schedule(self, object_id: str, when: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, object_id))

    def _next_delay(self, watched: _Watched[T], headers: Mapping[str, str]) -> float:
        hint = headers.get(POLL_AFTER_HEADER)
        if hint:
            try:
                asked = float(hint) / 1000.0
            except ValueError:
                pass
            else:
                if math.isfinite(asked):
                    # Sooner than the interval if asked, but never at once (a hint of 0).
                    return max(asked, min(self._interval, _MIN_POLL_AFTER))
        # Sooner while the object is young (a quarter, a half, three quarters, then the whole
        # interval), with +-10 % jitter so that objects created together spread out.
        ramp = min(1.0, (watched.polls + 1) / 4.0)
        return self._interval * ramp * self._rng.uniform(0.9, 1.1)

    async def _poll(self, object_id: str) -> None:
        loop = asyncio.get_running_loop()
        watched = self._watched[object_id]
        sent_after = self._rate.ticket()
        try:
            record, headers = await self._requester.poll(
                self._path_of(object_id), self._into, timeout=self._poll_timeout
            )
        except APIError as exc:
            self._failed(object_id, watched, exc, sent_after, loop.time())
        except Exception as exc:  # noqa: BLE001 - a closed client, a bug: end the watch with it
            self._fatal = exc
        else:
            self._observed(
                object_id, watched, record, headers, sent_after=sent_after, now=loop.time()
            )
        finally:
            # Leave the in-flight set *before* waking the scheduler: a done-callback would run
            # only after the scheduler had looked, found this poll "in flight" and gone to sleep.
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.discard(task)
            if self._wake is not None:
                self._wake.set()

    def _observed(
        self,
        object_id: str,
        watched: _Watched[T],
        record: T,
        headers: Mapping[str, str],
        *,
        sent_after: int,
        now: float,
    ) -> None:
        watched.polls += 1
        watched.failures = 0
        status = self._status_of(record)
        previous, watched.last = watched.status, record
        if watched.polls == 1 or status != previous:
            self._updates.append(Observation(object_id, record, previous, None))
        watched.status = status
        done = self._is_done(status)
        # The poll got through (which may end a streak of 429s); a Retry-After on the answer is
        # honoured without a floor, unless the object is done and will not be polled again.
        hint = None if done or not headers else parse_retry_after(headers)
        self._rate.answered(sent_after, hint, now)
        if done:
            watched.done = True
            self._pending -= 1
            return
        self._schedule(object_id, now + self._next_delay(watched, headers))

    def _failed(
        self, object_id: str, watched: _Watched[T], exc: APIError, sent_after: int, now: float
    ) -> None:
        headers = exc.headers if isinstance(exc, APIStatusError) else None
        status = exc.status_code if isinstance(exc, APIStatusError) else None
        hint = parse_retry_after(headers) if headers else None
        if status == _TOO_MANY_REQUESTS or hint is not None:
            # Rate limited: everyone waits; this is not the object's fault, so no failure counts.
            self._schedule(object_id, self._rate.refused(sent_after, hint, now))
            return
        watched.failures += 1
        permanent = status in _PERMANENT
        # Report once per run of failures: at once for a permanent error, else at the threshold.
        report_at = 1 if permanent else self._failure_threshold
        if watched.failures == report_at:
            self._updates.append(Observation(object_id, watched.last, watched.status, exc))
        delay = backoff_delay(watched.failures - 1, self._backoff, self._rng)
        if permanent:
            delay = max(delay, self._interval)
        self._schedule(object_id, now + min(delay, _MAX_FAILURE_DELAY))

    def _launch_due(self, now: float) -> None:
        while (
            self._heap and len(self._in_flight) < self._max_concurrency and now >= self._rate.until
        ):
            when, _, object_id = self._heap[0]
            if when > now:
                return
            heapq.heappop(self._heap)
            task = asyncio.get_running_loop().create_task(self._poll(object_id))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _arm_timer(self, now: float, deadline: float | None) -> None:
        """Wake the loop at the next due poll (or the end of a pause, or the deadline)."""
        candidates = []
        if self._heap and len(self._in_flight) < self._max_concurrency:
            candidates.append(max(self._heap[0][0], self._rate.until))
        if deadline is not None:
            candidates.append(deadline)
        if not candidates and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if candidates:
            wake = self._wake
            assert wake is not None  # noqa: S101 - created before the first arming
            when = max(min(candidates), now)
            timer = self._timer
            if timer is not None and timer.when() == when and not timer.cancelled():
                return  # already armed for that moment: a new handle would cost a heap push
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_at(when, wake.set)

    async def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    async def _run(self, start: float) -> AsyncGenerator[Observation[T]]:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        deadline = None if self._timeout is None else start + self._timeout
        try:
            while True:
                while self._updates:
                    yield self._updates.popleft()
                if self._fatal is not None:
                    raise self._fatal
                if self._pending == 0 and not self._in_flight:
                    return
                now = loop.time()
                if deadline is not None and now >= deadline:
                    raise WaitTimeoutError(
                        f"{self._pending} object(s) not final after {self._timeout} s", last=None
                    )
                self._launch_due(now)
                self._arm_timer(now, deadline)
                self._wake.clear()
                if not self._updates and self._fatal is None:
                    await self._wake.wait()
                    if self._timer is not None and self._timer.when() <= loop.time():
                        self._timer = None  # it fired: never reuse a spent handle
        finally:
            await self._stop()


async def wait_for(watcher: Watcher[T], object_id: str) -> T:
    """Run a one-object watcher until the object is final and return its last record.

    A permanent error (404 for an unknown id, 401...) is raised at once; a transient one keeps the
    wait going, with back-off.

    Raises:
        WaitTimeoutError: The object was not final in time (``last`` is the last record seen).
    """
    last: T | None = None
    try:
        async for seen in watcher:
            if seen.error is not None:
                if isinstance(seen.error, APIStatusError) and seen.error.status_code in _PERMANENT:
                    raise seen.error
                continue
            last = seen.record
    except WaitTimeoutError as exc:
        raise WaitTimeoutError(f"{object_id} is not final after the timeout", last=last) from exc
    finally:
        await watcher.aclose()
    if last is None:  # pragma: no cover - a watcher of one id ends only after seeing it
        msg = f"{object_id} was never seen"
        raise WaitTimeoutError(msg)
    return last


class JobWatch:
    """``fine_tuning.jobs.watch``: an async iterator of ``JobUpdate``, one per observed change.

    It ends when every watched job is terminal. ``add(job_id)`` watches more jobs while it runs;
    ``aclose()`` (or leaving an ``async for``) stops every poll at once.
    """

    __slots__ = ("_direct", "_watcher")

    def __init__(self, watcher: Watcher[FineTuningJob]) -> None:
        """Wrap a watcher of jobs."""
        self._watcher = watcher
        self._direct: AsyncGenerator[JobUpdate] | None = None

    def __aiter__(self) -> AsyncGenerator[JobUpdate]:
        """Return the updates; leaving an ``async for`` early stops every poll at once."""
        return self._updates()

    async def _updates(self) -> AsyncGenerator[JobUpdate]:
        async with aclosing(self._watcher.__aiter__()) as observations:
            async for seen in observations:
                yield JobUpdate(
                    job=seen.record, previous_status=seen.previous_status, error=seen.error
                )

    async def __anext__(self) -> JobUpdate:
        """Return the next update (for callers that drive the watch by hand)."""
        if self._direct is None:
            self._direct = self._updates()
        return await self._direct.__anext__()

    async def aclose(self) -> None:
        """Stop watching; no poll is left running."""
        if self._direct is not None:
            await self._direct.aclose()
        await self._watcher.aclose()

    def add(self, *job_ids: str) -> None:
        """Watch more jobs (from the event loop's thread); ids already watched are ignored."""
        self._watcher.add(*job_ids)

    @property
    def pending(self) -> int:
        """How many watched jobs are not terminal yet."""
        return self._watcher.pending


async def _new_events(
    requester: Requester, path: str, seen: set[str], page_size: int
) -> list[FineTuningJobEvent]:
    """Return the events not seen yet, newest first, paging until the first seen one.

    An event listed twice in one walk (a server repeating a page) is kept once, and a cursor
    that comes back (``has_more: true`` with the same ``last_id``, or A, B, A) ends the walk
    with ``APIResponseValidationError``, instead of asking for the same pages forever.
    """
    fresh: list[FineTuningJobEvent] = []
    listed: set[str] = set()
    asked: set[str] = set()
    cursor: str | None = None
    while True:
        page = await requester.request(
            "GET", path, Page[FineTuningJobEvent], query=(("after", cursor), ("limit", page_size))
        )
        for event in page.data:
            if event.id in seen:
                return fresh
            if event.id not in listed:
                listed.add(event.id)
                fresh.append(event)
        cursor = next_cursor(page.data, page.has_more, page.last_id)
        if cursor is None:
            return fresh
        if cursor in asked:
            msg = (
                f"the events of {path} came back to the cursor {cursor!r} "
                "(has_more is true, but that page was listed already): ending the walk"
            )
            raise APIResponseValidationError(msg, status_code=200, method="GET")
        asked.add(cursor)


async def _events_round(
    requester: Requester, job_path: str, seen: set[str], page_size: int
) -> tuple[FineTuningJob, list[FineTuningJobEvent]]:
    """Read the job, then its events not seen yet (newest first): one round of the stream."""
    job = await requester.request("GET", job_path, FineTuningJob)
    return job, await _new_events(requester, job_path + "/events", seen, page_size)


async def stream_events(
    requester: Requester,
    job_path: str,
    *,
    poll_interval: float,
    page_size: int = 100,
    rate_limit: Backoff = RATE_LIMIT_BACKOFF,
    rng: random.Random | None = None,
) -> AsyncGenerator[FineTuningJobEvent]:
    """Yield a job's events oldest first, each once, until the job is terminal.

    The server lists events newest first; each round pages back to the first event already seen
    and yields the new ones in reverse, never re-sorted (events share ``created_at`` seconds and
    ids are opaque). The job's status is read before its events, so the round that sees it
    terminal also delivers its last events.

    A round still refused with a 429 (or any answer with ``Retry-After``) once the client's own
    retries are spent is tried again after the pause ``watch`` would take (``rate_limit_pause``:
    1 s at least, doubling with each refused round in a row, up to 60 s), instead of ending the
    stream; nothing is yielded twice, since events count as seen only once yielded. Other errors
    end the stream.
    """
    check_poll_settings(poll_interval, None)
    seen: set[str] = set()
    refused = 0
    while True:
        try:
            job, fresh = await _events_round(requester, job_path, seen, page_size)
        except APIStatusError as exc:
            hint = parse_retry_after(exc.headers) if exc.headers else None
            if exc.status_code != _TOO_MANY_REQUESTS and hint is None:
                raise
            refused += 1
            await asyncio.sleep(rate_limit_pause(refused, hint, rate_limit, rng))
            continue
        refused = 0
        for event in reversed(fresh):
            seen.add(event.id)
            yield event
        if is_terminal(job.status):
            return
        await asyncio.sleep(poll_interval)
