"""``SQLiteStore``: the embedded, durable default store, one SQLite file.

Why the standard library's ``sqlite3`` on one worker thread, and not ``aiosqlite``: it adds no
runtime dependency, and ``aiosqlite`` does the same thing underneath (one thread per connection,
calls handed over through a queue). Owning the thread keeps every call of a state change inside
one function that runs on it, ``BEGIN IMMEDIATE`` to ``COMMIT``, so a transaction never spans an
``await`` and a cancelled caller cannot leave one half open: the function runs to its end on the
thread, and the change is whole or absent.

The file is opened in WAL mode (readers never block the one writer, and a ``finetune-async track
add`` process can write while a tracker runs) with ``synchronous=NORMAL``: a commit survives the
process being killed (SIGKILL, an OOM kill), and a power loss may lose the last commits but never
corrupts the file (SQLite's WAL documentation). Pass ``synchronous="FULL"`` to survive that too,
at the cost of an fsync per commit.

The schema is versioned: ``schema_version`` holds the number of the last migration applied, and
``_MIGRATIONS`` lists them in order. ``open`` applies the missing ones, each in one transaction.
A file that is not a database, is damaged (``PRAGMA quick_check``), is someone else's database,
was written by a newer schema, or cannot be written raises ``StoreError`` from ``open``, before
the tracker sends any request.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from ._store import StoredObject, StoredUpdate, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..types.tracking import TrackedKind

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "UnusableStoreError", "migrate", "schema_version"]

T = TypeVar("T")

#: The migrations, in order: migration ``n`` (from 1) brings a store from version ``n - 1`` to
#: ``n``. Append, never edit: a store in the field may be at any version.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the objects and their updates.
    (
        """CREATE TABLE objects (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('job', 'batch')),
            added_at REAL NOT NULL,
            status TEXT,
            seq INTEGER NOT NULL DEFAULT 0,
            terminal INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER,
            polls INTEGER NOT NULL DEFAULT 0,
            last_polled_at REAL
        )""",
        "CREATE INDEX objects_live ON objects (terminal)",
        """CREATE TABLE updates (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            update_id TEXT NOT NULL UNIQUE,
            object_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            previous_status TEXT,
            terminal INTEGER NOT NULL,
            record BLOB NOT NULL,
            created_at INTEGER,
            delivered INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX updates_object ON updates (object_id)",
    ),
    # 2: webhook hints, and an index of the undelivered updates only.
    (
        "ALTER TABLE objects ADD COLUMN hinted_at REAL",
        "CREATE INDEX updates_undelivered ON updates (n) WHERE delivered = 0",
    ),
)
#: The version ``open`` brings every store to.
SCHEMA_VERSION: Final = len(_MIGRATIONS)
#: How long a write waits for another process's transaction (``track add`` beside a tracker).
_BUSY_TIMEOUT: Final = 5.0
_SYNCHRONOUS: Final = frozenset({"NORMAL", "FULL"})

_OBJECT_COLUMNS: Final = (
    "o.kind, o.id, o.status, o.seq, o.terminal, o.created_at, o.polls, o.last_polled_at, "
    "o.hinted_at, NOT EXISTS (SELECT 1 FROM updates u WHERE u.object_id = o.id AND "
    "u.delivered = 0)"
)
_UPDATE_COLUMNS: Final = (
    "update_id, kind, object_id, seq, status, previous_status, terminal, record, created_at"
)


class UnusableStoreError(Exception):
    """Why a file cannot serve as a tracker's store (``open`` turns it into ``StoreError``)."""


def _object(row: tuple[Any, ...]) -> StoredObject:
    kind, object_id, status, seq, terminal, created, polls, polled, hinted, delivered = row
    return StoredObject(
        kind=cast("TrackedKind", kind),
        id=object_id,
        status=status,
        seq=seq,
        terminal=bool(terminal),
        created_at=created,
        polls=polls,
        last_polled_at=polled,
        hinted_at=hinted,
        delivered=bool(delivered),
    )


def _update(row: tuple[Any, ...]) -> StoredUpdate:
    update_id, kind, object_id, seq, status, previous, terminal, record, created = row
    return StoredUpdate(
        update_id=update_id,
        kind=cast("TrackedKind", kind),
        id=object_id,
        seq=seq,
        status=status,
        previous_status=previous,
        terminal=bool(terminal),
        record=bytes(record),
        created_at=created,
    )


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the store's schema version: 0 for an empty file.

    Raises:
        UnusableStoreError: The file holds tables but no ``schema_version``: not a tracker's.
    """
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "schema_version" not in tables:
        if tables - {"sqlite_sequence"}:
            msg = f"it is a SQLite database, but not a tracker's store (tables: {sorted(tables)})"
            raise UnusableStoreError(msg)
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def _check_intact(conn: sqlite3.Connection) -> None:
    """Raise if ``PRAGMA quick_check`` finds damage (milliseconds for a few MB)."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        msg = f"it is damaged: {'; '.join(problems[:3])}"
        raise UnusableStoreError(msg)


def migrate(conn: sqlite3.Connection, *, upto: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to version ``upto``, one transaction each.

    Returns:
        The version the store was at before.

    Raises:
        UnusableStoreError: Not a tracker's store, or of a newer schema than this SDK knows.
    """
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        msg = (
            f"its schema is version {found}, newer than this finetune_async knows "
            f"({SCHEMA_VERSION}): upgrade finetune_async to use it"
        )
        raise UnusableStoreError(msg)
    for version in range(found + 1, upto + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 1:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO schema_version VALUES (0)")
            for statement in _MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return found


class SQLiteStore:
    """A store in one SQLite file, durable across restarts; the ``Tracker``'s default.

    One process tracks with it at a time (``owner`` is ignored); other processes may add ids
    meanwhile (``finetune-async track add``), which the tracker picks up at its next refresh.

    Args:
        path: The file; created (with its tables) if it does not exist. Its directory must.
        synchronous: ``"NORMAL"`` (survives the process dying) or ``"FULL"`` (survives a power
            loss too, with an fsync per commit).

    Raises:
        InvalidParameterError: A ``synchronous`` other than the two.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        from ..errors import InvalidParameterError  # noqa: PLC0415 - keeps the imports short

        if synchronous not in _SYNCHRONOUS:
            msg = f"synchronous: must be 'NORMAL' or 'FULL', got {synchronous!r}"
            raise InvalidParameterError(msg, param="synchronous")
        self.path = os.fspath(path)
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # --- the worker thread -----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        executor = self._executor
        if executor is None or self._closed:
            msg = "the store is not open" if not self._closed else "the store is closed"
            raise StoreError(msg, location=self.path)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, partial(fn, *args))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}", location=self.path) from exc

    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:  # pragma: no cover - _call checks that the store is open
            raise StoreError("the store is not open", location=self.path)
        return conn

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, on the thread."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # --- open and close --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, migrate it and check that it can be written.

        Raises:
            StoreError: Corrupt, not a tracker's store, of a newer schema, or unwritable (a
                read-only file or directory, a missing directory).
        """
        if self._closed:
            raise StoreError("the store is closed", location=self.path)
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finetune-async-sqlite")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(executor, self._open)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    def _open(self) -> sqlite3.Connection:
        directory = Path(self.path).resolve().parent
        if self.path != ":memory:" and not directory.is_dir():
            msg = f"cannot create the tracker's store {self.path}: no directory {directory}"
            raise StoreError(msg, location=self.path)
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions; each write says BEGIN and COMMIT.
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            _check_intact(conn)
            migrate(conn)
            # A store that needs no migration is not written at open: prove that it can be,
            # now, rather than at the first status change (after requests were sent).
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE schema_version SET version = version")
            conn.execute("ROLLBACK")
        except (UnusableStoreError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            msg = f"cannot use {self.path} as a tracker's store: {exc}"
            raise StoreError(msg, location=self.path) from exc
        return conn

    async def close(self) -> None:
        """Close the file and stop the thread; calling it again does nothing."""
        if self._closed:
            return
        executor, self._executor = self._executor, None
        self._closed = True
        if executor is not None:
            conn, self._conn = self._conn, None
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)

    # --- the protocol --------------------------------------------------------------------------

    async def add(self, objects: Sequence[tuple[TrackedKind, str]], at: float) -> list[str]:
        """Track these objects; return the ids not tracked before."""
        rows = list(objects)

        def add(conn: sqlite3.Connection) -> list[str]:
            added = []
            for kind, object_id in rows:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO objects (id, kind, added_at) VALUES (?, ?, ?)",
                    (object_id, kind, at),
                )
                if cursor.rowcount:
                    added.append(object_id)
            return added

        return await self._call(self._write, add)

    async def remove(self, object_id: str) -> bool:
        """Forget an object and its updates."""

        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM updates WHERE object_id = ?", (object_id,))
            return conn.execute("DELETE FROM objects WHERE id = ?", (object_id,)).rowcount > 0

        return await self._call(self._write, remove)

    async def claim(self, owner: str) -> list[StoredObject]:  # noqa: ARG002
        """Return every live object, in the order added."""

        def claim() -> list[StoredObject]:
            query = f"SELECT {_OBJECT_COLUMNS} FROM objects o WHERE o.terminal = 0 ORDER BY o.rowid"  # noqa: S608 - constant columns
            return [_object(row) for row in self._db().execute(query)]

        return await self._call(claim)

    async def record_update(self, owner: str, update: StoredUpdate) -> bool:  # noqa: ARG002
        """Record a change and the object's new state, in one transaction."""

        def record(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                "UPDATE objects SET status = ?, seq = ?, terminal = ?, "
                "created_at = coalesce(?, created_at) WHERE id = ?",
                (update.status, update.seq, int(update.terminal), update.created_at, update.id),
            ).rowcount
            if not changed:
                return False
            conn.execute(
                f"INSERT OR IGNORE INTO updates ({_UPDATE_COLUMNS}) "  # noqa: S608 - constant columns
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    update.update_id,
                    update.kind,
                    update.id,
                    update.seq,
                    update.status,
                    update.previous_status,
                    int(update.terminal),
                    update.record,
                    update.created_at,
                ),
            )
            return True

        return await self._call(self._write, record)

    async def undelivered(self, owner: str, limit: int) -> list[StoredUpdate]:  # noqa: ARG002
        """Return the oldest undelivered updates."""

        def undelivered() -> list[StoredUpdate]:
            rows = self._db().execute(
                f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE delivered = 0 ORDER BY n LIMIT ?",  # noqa: S608 - constant columns
                (limit,),
            )
            return [_update(row) for row in rows]

        return await self._call(undelivered)

    async def mark_delivered(self, owner: str, update_id: str) -> bool:  # noqa: ARG002
        """Mark an update delivered (its record, never read again, is dropped to save room)."""

        def mark(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE updates SET delivered = 1, record = x'' WHERE update_id = ? "
                "AND delivered = 0",
                (update_id,),
            )
            if cursor.rowcount:
                return True
            found = conn.execute("SELECT 1 FROM updates WHERE update_id = ?", (update_id,))
            return found.fetchone() is not None

        return await self._call(self._write, mark)

    async def touch(self, owner: str, object_ids: Sequence[str], at: float) -> None:  # noqa: ARG002
        """Count one poll of each object, in one transaction."""
        rows = [(at, object_id) for object_id in object_ids]
        if not rows:
            return

        def touch(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE objects SET polls = polls + 1, last_polled_at = ? WHERE id = ?", rows
            )

        await self._call(self._write, touch)

    async def hint(self, object_id: str, at: float) -> StoredObject | None:
        """Record a webhook's hint; None if the id is not tracked."""

        def hint(conn: sqlite3.Connection) -> StoredObject | None:
            conn.execute("UPDATE objects SET hinted_at = ? WHERE id = ?", (at, object_id))
            row = conn.execute(
                f"SELECT {_OBJECT_COLUMNS} FROM objects o WHERE o.id = ?",  # noqa: S608 - constant columns
                (object_id,),
            ).fetchone()
            return None if row is None else _object(row)

        return await self._call(self._write, hint)

    async def objects(self) -> list[StoredObject]:
        """Return every tracked object, in the order added."""

        def objects() -> list[StoredObject]:
            query = f"SELECT {_OBJECT_COLUMNS} FROM objects o ORDER BY o.rowid"  # noqa: S608 - constant columns
            return [_object(row) for row in self._db().execute(query)]

        return await self._call(objects)
