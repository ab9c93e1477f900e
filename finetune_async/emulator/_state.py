"""Everything one emulator holds in memory, and the operations its routes call."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Protocol

from ._faults import Faults, RequestLog, Stats, TokenBucket
from ._files import FileStore
from ._ids import IdFactory
from ._limits import Limits

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterable

    from ._batches import BatchSim
    from ._clock import Clock
    from ._jobs import JobSim, Timing

__all__ = ["BASE_MODELS", "EmulatorState", "Watcher"]

#: Base models the emulator fine-tunes (and answers ``GET /models/{model}`` for).
BASE_MODELS = (
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "o4-mini-2025-04-16",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo",
    "gpt-4o-mini",
    "babbage-002",
    "davinci-002",
)


class Watcher(Protocol):
    """What follows the state's life cycles from outside (the webhook sender)."""

    def terminal(self, event_type: str, object_id: str, when: float) -> None:
        """A job or batch ended at emulated time ``when`` (``fine_tuning.job.succeeded``...)."""

    def changed(self) -> None:
        """A schedule may have moved (a create, cancel, pause, resume, or the clock)."""


class EmulatorState:
    """The files, jobs, batches, models and permissions of one emulator, and its faults."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int | None,
        organization: str,
        api_key: str | None,
        faults: Faults,
        timing: Timing,
        base_models: Iterable[str],
        limits: Limits | None = None,
    ) -> None:
        """Start empty."""
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - emulated ids and faults, not secrets
        self.ids = IdFactory(self.rng)
        self.organization = organization
        self.api_key = api_key
        self.timing = timing
        self.files = FileStore()
        self.jobs: dict[str, JobSim] = {}
        self.batches: dict[str, BatchSim] = {}
        self.base_models = {name: int(clock.now()) for name in base_models}
        self.models: dict[str, dict[str, Any]] = {}
        self.permissions: dict[str, list[dict[str, Any]]] = {}
        #: Training-file validations running on worker threads, by job id.
        self.validations: dict[str, asyncio.Future[None]] = {}
        self.faults = faults
        self.route_faults: dict[str, Faults] = {}
        self.bucket: TokenBucket | None = None
        self.route_buckets: dict[str, TokenBucket] = {}
        self.limits = limits or Limits()
        self.stats = self.new_stats()
        self.set_faults(faults)
        #: Told of every terminal transition and schedule change; the emulator sets it.
        self.watcher: Watcher | None = None

    def terminal(self, event_type: str, object_id: str, when: float) -> None:
        """Pass a job's or batch's end on to the watcher (the sims' ``on_terminal``)."""
        if self.watcher is not None:
            self.watcher.terminal(event_type, object_id, when)

    def changed(self) -> None:
        """Tell the watcher that a schedule may have moved."""
        if self.watcher is not None:
            self.watcher.changed()

    def new_stats(self) -> Stats:
        """Return empty counters, with a request log of the configured size."""
        return Stats(requests=RequestLog(self.limits.request_log))

    def set_faults(self, faults: Faults, route: str | None = None) -> None:
        """Use ``faults`` for every route, or for one route (``"GET /fine_tuning/jobs/{id}"``)."""
        bucket = None if faults.rate_limit is None else TokenBucket(faults.rate_limit)
        if route is None:
            self.faults = faults
            self.bucket = bucket
        else:
            self.route_faults[route] = faults
            if bucket is None:
                self.route_buckets.pop(route, None)
            else:
                self.route_buckets[route] = bucket

    def faults_for(self, route: str) -> tuple[Faults, TokenBucket | None]:
        """Return the faults (and rate limiter) that apply to ``route``."""
        if route in self.route_faults:
            return self.route_faults[route], self.route_buckets.get(route)
        return self.faults, self.bucket

    def now(self) -> float:
        """Return the virtual time."""
        return self.clock.now()

    def add_model(self, name: str, created: int) -> None:
        """Register a fine-tuned model (a job's output)."""
        self.models[name] = {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": self.organization,
        }

    def sync_all(self) -> None:
        """Bring every job and batch up to the clock (before listing files or models)."""
        now = self.now()
        for job in self.jobs.values():
            job.sync(now)
        for batch in self.batches.values():
            batch.sync(now)

    def checkpoint_exists(self, name: str) -> bool:
        """Whether ``name`` is a checkpoint or a fine-tuned model of this emulator."""
        self.sync_all()
        if name in self.models:
            return True
        return any(
            c["fine_tuned_model_checkpoint"] == name
            for job in self.jobs.values()
            for c in job.checkpoints
        )

    def close(self) -> None:
        """Remove the files' contents."""
        self.files.close()
