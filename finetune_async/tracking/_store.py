"""The ``Store`` protocol: everything a ``Tracker`` keeps, behind a dozen async methods.

A store holds two tables' worth of state:

- the **objects**: every tracked job and batch (kind, id, last status observed, a per-object
  sequence number of updates, ``created_at`` as the API reported it, polls, the last poll's
  time, the last webhook hint's time);
- the **updates**: each observed status change, with the record as JSON bytes, in the order
  they were recorded, and whether it has been delivered to the consumer.

The rules every implementation keeps (the tests in ``tests/test_tracking_store.py`` run against
each one):

1. Each method that changes state is **one transaction**: when it returns, the change is
   durable (as far as the store is durable at all); if the process dies before it returns, the
   change is either whole or absent. ``record_update`` writes the update and the object's new
   status together, so a restart never finds one without the other.
2. Updates come back from ``undelivered`` in the order ``record_update`` wrote them, and keep
   their ``update_id``. ``mark_delivered`` is idempotent.
3. ``remove`` forgets the object and its updates, delivered or not.
4. Nothing here sends a request. ``open`` raises ``StoreError`` for a store it cannot use
   (corrupt, unwritable, too new), so a ``Tracker`` fails before its first request.

**Owners.** Every method that reads or writes work takes ``owner``: a string naming the
``Tracker`` process (``Tracker`` makes one per instance). A store for one process at a time
(``MemoryStore``, ``SQLiteStore``) ignores it: it hands every object to whoever asks. A shared
store (the ``PostgresStore`` of issue 19) uses it for leases: ``claim`` takes or renews, with
``SELECT … FOR UPDATE SKIP LOCKED``, an owner and an expiry on the objects it returns, and
``record_update`` / ``mark_delivered`` / ``touch`` check, in the same transaction, that the owner
still holds the object's lease (and return False when it does not, writing nothing). So one
``Tracker`` runs unchanged on either kind: it asks again with ``claim`` at each full refresh and
works only on what it was given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from ..errors import FinetuneError
from ..types.tracking import TrackedKind

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Store", "StoreError", "StoredObject", "StoredUpdate"]


class StoreError(FinetuneError):
    """A tracker's store cannot be used: corrupt, unwritable, of a newer schema, or closed.

    ``Tracker.__aenter__`` (and ``Store.open``) raise it before any request is sent.

    Attributes:
        location: What the store is (a file's path, ``"memory"``).
    """

    def __init__(self, message: str, *, location: str) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


@attrs.frozen
class StoredObject:
    """One tracked object as a store holds it.

    Attributes:
        kind: ``"job"`` or ``"batch"``.
        id: The job's or batch's id.
        status: The last status recorded, or None before the first observation.
        seq: How many updates were recorded for it (the next one is ``seq + 1``).
        terminal: Whether ``status`` is final.
        created_at: The object's ``created_at`` (unix seconds) once observed, else None; list
            sweeps stop at pages older than the oldest live object.
        polls: How many times its state was read.
        last_polled_at: When it was last read (unix seconds), or None.
        hinted_at: When a webhook last named it (unix seconds), or None.
        delivered: Whether every update recorded for it has been delivered.
    """

    kind: TrackedKind
    id: str
    status: str | None = None
    seq: int = 0
    terminal: bool = False
    created_at: int | None = None
    polls: int = 0
    last_polled_at: float | None = None
    hinted_at: float | None = None
    delivered: bool = True


@attrs.frozen
class StoredUpdate:
    """One recorded status change.

    Attributes:
        update_id: Stable id of the change (``_plan.update_id``).
        kind: ``"job"`` or ``"batch"``.
        id: The object's id.
        seq: The object's sequence number of this update (1 for the first observation).
        status: The status observed.
        previous_status: The status recorded before it, or None.
        terminal: Whether ``status`` is final.
        record: The record as JSON bytes (the converter's ``dumps``).
        created_at: The object's ``created_at`` as the record says, or None.
    """

    update_id: str
    kind: TrackedKind
    id: str
    seq: int
    status: str
    previous_status: str | None
    terminal: bool
    record: bytes
    created_at: int | None = None


@runtime_checkable
class Store(Protocol):
    """Where a ``Tracker`` keeps its objects and updates (see the module's rules)."""

    async def open(self) -> None:
        """Create or migrate the store, and check that it can be read and written.

        Calling it on an open store does nothing.

        Raises:
            StoreError: The store is corrupt, unwritable or of a newer schema.
        """
        ...

    async def close(self) -> None:
        """Release the store; calling it again does nothing."""
        ...

    async def add(self, objects: Sequence[tuple[TrackedKind, str]], at: float) -> list[str]:
        """Track these objects, in one transaction; return the ids that were not tracked yet.

        An id already tracked (as either kind) is left as it is.
        """
        ...

    async def remove(self, object_id: str) -> bool:
        """Forget an object and all its updates; False if it was not tracked."""
        ...

    async def claim(self, owner: str) -> list[StoredObject]:
        """Return the live (not terminal) objects ``owner`` may poll, in the order they were added.

        A one-process store returns all of them. A shared store takes or renews a lease on
        each object it returns, and leaves out those another live owner holds.
        """
        ...

    async def record_update(self, owner: str, update: StoredUpdate) -> bool:
        """Write an observed change as an undelivered update and the object's new state, at once.

        The object's status, ``seq``, ``terminal`` and ``created_at`` become the update's, in the
        same transaction. Writing an ``update_id`` that exists already changes nothing (a change
        seen twice by a poll retried after a crash). Returns False, writing nothing, when the
        object is not tracked (removed meanwhile) or ``owner`` no longer holds its lease.
        """
        ...

    async def undelivered(self, owner: str, limit: int) -> list[StoredUpdate]:
        """Return up to ``limit`` undelivered updates ``owner`` may deliver, oldest first."""
        ...

    async def mark_delivered(self, owner: str, update_id: str) -> bool:
        """Mark an update delivered; False if there is no such update (removed), else True."""
        ...

    async def touch(self, owner: str, object_ids: Sequence[str], at: float) -> None:
        """Count one poll of each of these objects at ``at`` (unix seconds), in one transaction.

        A shared store renews the owner's leases on them here (the heartbeat).
        """
        ...

    async def hint(self, object_id: str, at: float) -> StoredObject | None:
        """Record that a webhook named ``object_id`` at ``at``; None if it is not tracked."""
        ...

    async def objects(self) -> list[StoredObject]:
        """Return every tracked object, live or not, in the order they were added."""
        ...
