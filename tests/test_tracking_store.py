"""The ``Store`` contract, run against every store, and the SQLite file's own rules.

Each contract test takes the ``store`` fixture, parametrised over ``MemoryStore`` and
``SQLiteStore`` (a ``PostgresStore`` joins the list later). The SQLite tests then check the
migrations from an older schema, and that a corrupt, foreign, too new or unwritable file is a
``StoreError`` raised by ``Tracker.__aenter__`` before any request reaches the server.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from finetune_async import AsyncClient, FinetuneError
from finetune_async.emulator import Emulator
from finetune_async.tracking import (
    MemoryStore,
    SQLiteStore,
    Store,
    StoredUpdate,
    StoreError,
    Tracker,
)
from finetune_async.tracking._sqlite import SCHEMA_VERSION, migrate, schema_version

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path


def update(object_id: str, seq: int, status: str, *, terminal: bool = False) -> StoredUpdate:
    """An update of ``object_id`` as the tracker would write it."""
    return StoredUpdate(
        update_id=f"upd-{object_id}-{seq}",
        kind="job",
        id=object_id,
        seq=seq,
        status=status,
        previous_status=None if seq == 1 else "running",
        terminal=terminal,
        record=b'{"id": "%s"}' % object_id.encode(),
        created_at=1_700_000_000 + seq,
    )


@pytest_asyncio.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each kind."""
    made: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "t.db")
    await made.open()
    yield made
    await made.close()


# --- the contract --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_add_returns_only_new_ids_and_keeps_the_order(store: Store) -> None:
    """Adding is idempotent; ``objects`` and ``claim`` list in the order added."""
    assert ["a", "b"] == await store.add([("job", "a"), ("batch", "b")], 1.0)
    assert ["c"] == await store.add([("job", "a"), ("job", "b"), ("job", "c")], 2.0)
    objects = await store.objects()
    assert [("a", "job"), ("b", "batch"), ("c", "job")] == [(o.id, o.kind) for o in objects]
    assert ["a", "b", "c"] == [o.id for o in await store.claim("me")]
    assert all(o.status is None and o.seq == 0 and o.delivered for o in objects)


@pytest.mark.asyncio
async def test_record_update_writes_the_update_and_the_object_together(store: Store) -> None:
    """A recorded change is undelivered, and the object has its status, seq and created_at."""
    await store.add([("job", "a")], 1.0)
    assert await store.record_update("me", update("a", 1, "running"))
    (obj,) = await store.objects()
    assert ("running", 1, False, 1_700_000_001, False) == (
        obj.status,
        obj.seq,
        obj.terminal,
        obj.created_at,
        obj.delivered,
    )
    assert [update("a", 1, "running")] == await store.undelivered("me", 10)


@pytest.mark.asyncio
async def test_undelivered_in_order_and_delivery_is_idempotent(store: Store) -> None:
    """Updates come back oldest first, limited; ``mark_delivered`` twice is fine."""
    await store.add([("job", "a"), ("job", "b")], 1.0)
    for u in (update("a", 1, "queued"), update("b", 1, "queued"), update("a", 2, "running")):
        await store.record_update("me", u)
    assert ["upd-a-1", "upd-b-1"] == [u.update_id for u in await store.undelivered("me", 2)]
    assert await store.mark_delivered("me", "upd-a-1")
    assert await store.mark_delivered("me", "upd-a-1")
    assert not await store.mark_delivered("me", "upd-nope")
    pending = [u.update_id for u in await store.undelivered("me", 10)]
    assert ["upd-b-1", "upd-a-2"] == pending
    await store.mark_delivered("me", "upd-a-2")
    delivered = {o.id: o.delivered for o in await store.objects()}
    assert {"a": True, "b": False} == delivered


@pytest.mark.asyncio
async def test_a_repeated_update_id_is_written_once(store: Store) -> None:
    """The same change recorded twice (a poll retried after a crash) is one update."""
    await store.add([("job", "a")], 1.0)
    assert await store.record_update("me", update("a", 1, "queued"))
    assert await store.record_update("me", update("a", 1, "queued"))
    assert 1 == len(await store.undelivered("me", 10))


@pytest.mark.asyncio
async def test_terminal_objects_leave_the_claim(store: Store) -> None:
    """``claim`` hands out live objects only; ``objects`` keeps all."""
    await store.add([("job", "a"), ("job", "b")], 1.0)
    await store.record_update("me", update("a", 1, "succeeded", terminal=True))
    assert ["b"] == [o.id for o in await store.claim("me")]
    assert [True, False] == [o.terminal for o in await store.objects()]


@pytest.mark.asyncio
async def test_remove_forgets_the_object_and_its_updates(store: Store) -> None:
    """After ``remove`` the id is gone, with its updates; an update for it is refused."""
    await store.add([("job", "a"), ("job", "b")], 1.0)
    await store.record_update("me", update("a", 1, "queued"))
    await store.record_update("me", update("b", 1, "queued"))
    assert await store.remove("a")
    assert not await store.remove("a")
    assert ["b"] == [o.id for o in await store.objects()]
    assert ["upd-b-1"] == [u.update_id for u in await store.undelivered("me", 10)]
    assert not await store.record_update("me", update("a", 2, "running"))


@pytest.mark.asyncio
async def test_touch_and_hint(store: Store) -> None:
    """``touch`` counts polls; ``hint`` stamps a tracked id and returns None for others."""
    await store.add([("batch", "b")], 1.0)
    await store.touch("me", ["b", "unknown"], 5.0)
    await store.touch("me", ["b"], 6.0)
    hinted = await store.hint("b", 7.0)
    assert hinted is not None
    assert (2, 6.0, 7.0) == (hinted.polls, hinted.last_polled_at, hinted.hinted_at)
    assert await store.hint("unknown", 7.0) is None
    (claimed,) = await store.claim("me")
    assert 7.0 == claimed.hinted_at


@pytest.mark.asyncio
async def test_a_closed_store_raises_store_error(store: Store) -> None:
    """Any call after ``close`` is a ``StoreError``, a ``FinetuneError``."""
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.objects()
    assert issubclass(StoreError, FinetuneError)


# --- SQLite: durability and migrations ----------------------------------------------------------


@pytest.mark.asyncio
async def test_sqlite_keeps_everything_across_reopening(tmp_path: Path) -> None:
    """A second store on the same file sees the objects and the undelivered updates."""
    path = tmp_path / "t.db"
    first = SQLiteStore(path)
    await first.open()
    await first.add([("job", "a")], 1.0)
    await first.record_update("me", update("a", 1, "queued"))
    await first.close()
    second = SQLiteStore(str(path))
    await second.open()
    try:
        assert ["upd-a-1"] == [u.update_id for u in await second.undelivered("other", 10)]
        assert "wal" == sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        await second.close()


@pytest.mark.asyncio
async def test_a_version_1_store_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    """A store written at schema 1 opens at the current version with its rows intact."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert 0 == migrate(conn, upto=1)
    conn.execute(
        "INSERT INTO objects (id, kind, added_at, status, seq) VALUES ('a', 'job', 1, 'queued', 1)"
    )
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        (obj,) = await store.objects()
        assert ("a", "queued", None) == (obj.id, obj.status, obj.hinted_at)
        assert await store.hint("a", 3.0) is not None
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert SCHEMA_VERSION == schema_version(conn) == 2
    conn.close()


# --- unusable files: a clear error, and no request ------------------------------------------------


def corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a database, just some bytes" * 200)


def foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()


def too_new(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.close()


def damaged(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    conn.executemany(
        "INSERT INTO objects (id, kind, added_at) VALUES (?, 'job', 1)",
        [(f"ftjob-{i:06d}" + "x" * 200,) for i in range(2000)],
    )
    conn.close()
    # Scribble over a page in the middle of the file, keeping the header valid.
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("prepare", "words"),
    [
        (corrupt, "not a database"),
        (foreign, "not a tracker's store"),
        (too_new, "newer than this finetune_async knows"),
        (damaged, "malformed"),
    ],
)
async def test_an_unusable_file_fails_before_any_request(
    tmp_path: Path, prepare: Callable[[Path], None], words: str
) -> None:
    """Corrupt, foreign, too new or damaged: ``StoreError`` naming why, nothing sent."""
    path = tmp_path / "t.db"
    prepare(path)
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as client:
        tracker = Tracker(client, store=path, poll_interval=0.01)
        with pytest.raises(StoreError) as caught:
            await tracker.__aenter__()
        assert words in str(caught.value)
        assert str(path) == caught.value.location
        assert 0 == emu.stats.total


@pytest.mark.asyncio
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
async def test_a_read_only_file_fails_before_any_request(tmp_path: Path) -> None:
    """A store file that cannot be written is refused at open, not at the first change."""
    path = tmp_path / "t.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    for leftover in tmp_path.glob("t.db-*"):
        leftover.unlink()
    path.chmod(stat.S_IRUSR)
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as client:
            with pytest.raises(StoreError, match="cannot use"):
                await Tracker(client, store=path).__aenter__()
            assert 0 == emu.stats.total
    finally:
        tmp_path.chmod(stat.S_IRWXU)


@pytest.mark.asyncio
async def test_a_missing_directory_fails_before_any_request(tmp_path: Path) -> None:
    """A path in a directory that does not exist names the directory."""
    path = tmp_path / "nowhere" / "t.db"
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as client:
        with pytest.raises(StoreError, match="no directory"):
            await Tracker(client, store=path).__aenter__()
        assert 0 == emu.stats.total


def test_a_bad_synchronous_setting_is_refused() -> None:
    """Only NORMAL and FULL."""
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore("x.db", synchronous="OFF")


@pytest.mark.asyncio
async def test_a_path_that_is_a_directory_fails_before_any_request(tmp_path: Path) -> None:
    """A store path SQLite cannot open as a file (a directory) is a ``StoreError`` at open."""
    path = tmp_path / "t.db"
    path.mkdir()
    async with Emulator(speed=0) as emu, AsyncClient(base_url=emu.url, api_key="k") as client:
        with pytest.raises(StoreError, match="cannot use") as caught:
            await Tracker(client, store=path).__aenter__()
        assert str(path) == caught.value.location
        assert 0 == emu.stats.total
