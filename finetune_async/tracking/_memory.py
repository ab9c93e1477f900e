"""``MemoryStore``: the ``Store`` protocol in dicts, for tests and short-lived trackers.

Nothing survives the process. Each method runs without an ``await`` in between its reads and
writes, so on one event loop every method is atomic, as a transaction would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._store import StoredObject, StoredUpdate, StoreError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..types.tracking import TrackedKind

__all__ = ["MemoryStore"]


class MemoryStore:
    """A store in memory: not durable, for one process (``owner`` is ignored, and ``at`` too).

    Each method's ``# noqa: ARG002``: a one-process store has no leases for ``owner`` to name.
    """

    def __init__(self) -> None:
        self._objects: dict[str, StoredObject] = {}
        # Undelivered and delivered updates by id, in the order they were recorded (dicts keep
        # insertion order), and the undelivered ones apart so that listing them is cheap.
        self._updates: dict[str, StoredUpdate] = {}
        self._pending: dict[str, None] = {}
        self._opened = False
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore(objects={len(self._objects)})"

    def _check(self) -> None:
        if self._closed:
            raise StoreError("the store is closed", location="memory")

    async def open(self) -> None:
        """Make the store usable (nothing to create)."""
        self._check()
        self._opened = True

    async def close(self) -> None:
        """Close the store; its content is kept until the object is dropped."""
        self._closed = True

    async def add(self, objects: Sequence[tuple[TrackedKind, str]], at: float) -> list[str]:  # noqa: ARG002
        """Track these objects; return the ids not tracked before."""
        self._check()
        added = []
        for kind, object_id in objects:
            if object_id not in self._objects:
                self._objects[object_id] = StoredObject(kind=kind, id=object_id)
                added.append(object_id)
        return added

    async def remove(self, object_id: str) -> bool:
        """Forget an object and its updates."""
        self._check()
        if self._objects.pop(object_id, None) is None:
            return False
        for update_id in [u.update_id for u in self._updates.values() if u.id == object_id]:
            del self._updates[update_id]
            self._pending.pop(update_id, None)
        return True

    async def claim(self, owner: str) -> list[StoredObject]:  # noqa: ARG002
        """Return every live object."""
        self._check()
        return [obj for obj in self._objects.values() if not obj.terminal]

    async def record_update(self, owner: str, update: StoredUpdate) -> bool:  # noqa: ARG002
        """Record a change and the object's new state."""
        self._check()
        obj = self._objects.get(update.id)
        if obj is None:
            return False
        if update.update_id in self._updates:
            return True
        self._updates[update.update_id] = update
        self._pending[update.update_id] = None
        self._objects[update.id] = attrs.evolve(
            obj,
            status=update.status,
            seq=update.seq,
            terminal=update.terminal,
            created_at=update.created_at if update.created_at is not None else obj.created_at,
            delivered=False,
        )
        return True

    async def undelivered(self, owner: str, limit: int) -> list[StoredUpdate]:  # noqa: ARG002
        """Return the oldest undelivered updates."""
        self._check()
        out: list[StoredUpdate] = []
        for update_id in self._pending:
            if len(out) >= limit:
                break
            out.append(self._updates[update_id])
        return out

    async def mark_delivered(self, owner: str, update_id: str) -> bool:  # noqa: ARG002
        """Mark an update delivered."""
        self._check()
        update = self._updates.get(update_id)
        if update is None:
            return False
        if update_id in self._pending:
            del self._pending[update_id]
            obj = self._objects.get(update.id)
            if obj is not None and not any(self._updates[u].id == update.id for u in self._pending):
                self._objects[update.id] = attrs.evolve(obj, delivered=True)
        return True

    async def touch(self, owner: str, object_ids: Sequence[str], at: float) -> None:  # noqa: ARG002
        """Count one poll of each object."""
        self._check()
        for object_id in object_ids:
            obj = self._objects.get(object_id)
            if obj is not None:
                self._objects[object_id] = attrs.evolve(obj, polls=obj.polls + 1, last_polled_at=at)

    async def hint(self, object_id: str, at: float) -> StoredObject | None:
        """Record a webhook's hint."""
        self._check()
        obj = self._objects.get(object_id)
        if obj is None:
            return None
        obj = self._objects[object_id] = attrs.evolve(obj, hinted_at=at)
        return obj

    async def objects(self) -> list[StoredObject]:
        """Return every tracked object."""
        self._check()
        return list(self._objects.values())
