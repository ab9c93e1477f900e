"""``finetune-async track add|run|status``: the tracker as a sidecar for services in any language.

``track add`` writes ids to the store and ``track status`` reads it: both open the SQLite file
directly, need no key and send no request (``SQLiteStore`` takes adds from another process while
a tracker runs on it). ``track run`` runs a ``Tracker`` on the store with the connection options
of the API commands and prints each update: one JSON line each with ``--json`` or into a pipe
(``update_id`` first, so that even a line torn by a kill names its update), a live table on a
terminal. It ends when every tracked object is terminal and delivered, unless ``--follow``.

The delivery rule is the tracker's (docs/api.md, "Tracking that survives restarts"): an update
printed counts as delivered once the next one is asked for, which the command does right after
writing and flushing the line. So a run killed (SIGKILL, an OOM kill) while it writes a line, or
interrupted (Ctrl-C, exit 130) before it asks for the next, leaves that update undelivered, and
the next run on the store prints it again with the same ``update_id``: at least once, and a
consumer deduplicates on ``update_id``.

A missing or unusable store is bad input (exit 2, one line naming ``--store``), found before any
request is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import InvalidParameterError
from ..tracking import SQLiteStore, StoreError, TrackedObject, Tracker
from ._args import port, positive_float, positive_int
from ._config import add_client_arguments, make_client
from ._output import jsonable, local_time
from ._webhooks import _SECRET_ENV, webhook_secrets

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from ..types.tracking import TrackedKind, TrackedUpdate
    from ._output import Output

__all__ = ["CLIENT_ACTIONS", "OBJECT_COLUMNS", "add_track_parser", "run_track"]

try:  # the optional UI library
    from rich.live import Live
    from rich.table import Table
except ImportError:  # pragma: no cover - without the cli extra
    Live = None  # type: ignore[assignment,misc]

#: The ``track`` actions that talk to an API, and so take the connection options.
CLIENT_ACTIONS: Final = frozenset({"run"})
#: The columns of ``track status``.
OBJECT_COLUMNS: Final = (
    "kind",
    "id",
    "status",
    "terminal",
    "delivered",
    "polls",
    "last_polled_at",
)
_STORE_HELP: Final = "the tracker's SQLite file (shared by add, run and status)"


def add_track_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_output: Any,
) -> None:
    """Add ``track add|run|status`` (``add_output`` adds ``--json``)."""
    track = commands.add_parser(
        "track", help="a tracker that survives restarts, as a sidecar"
    ).add_subparsers(dest="action", required=True)

    add = track.add_parser("add", help="track jobs (or batches) in the store; sends no request")
    add.add_argument("--store", required=True, metavar="PATH", help=_STORE_HELP)
    add.add_argument("ids", nargs="+", metavar="ID", help="job ids (batch ids with --batch)")
    add.add_argument("--batch", action="store_true", help="the ids are batch ids")
    add_output(add)

    run = track.add_parser(
        "run", help="follow the tracked objects and print each update until all are final"
    )
    add_client_arguments(run)
    run.add_argument("--store", required=True, metavar="PATH", help=_STORE_HELP)
    run.add_argument("--follow", "-f", action="store_true", help="keep running for ids added later")
    run.add_argument(
        "--webhook-port",
        type=port,
        metavar="P",
        help="serve the tracker's webhook receiver on this port (0 picks a free one)",
    )
    run.add_argument(
        "--webhook-host",
        default="127.0.0.1",
        metavar="H",
        help="address the receiver listens on (default 127.0.0.1)",
    )
    run.add_argument(
        "--webhook-secret",
        metavar="whsec_…",
        help=f"the webhook endpoint's secret (default ${_SECRET_ENV})",
    )
    run.add_argument(
        "--poll-interval",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between refreshes without webhooks (default 30)",
    )
    run.add_argument(
        "--reconcile-interval",
        type=positive_float,
        default=600.0,
        metavar="SECONDS",
        help="seconds between refreshes with --webhook-port (default 600)",
    )
    run.add_argument(
        "--refresh",
        choices=("auto", "list", "retrieve"),
        default="auto",
        help="retrieve each object, sweep the lists, or pick the cheaper (default auto)",
    )
    run.add_argument(
        "--max-concurrency",
        type=positive_int,
        default=16,
        metavar="N",
        help="most requests in flight at once (default 16)",
    )
    add_output(run)

    status = track.add_parser("status", help="show the tracked objects; sends no request")
    status.add_argument("--store", required=True, metavar="PATH", help=_STORE_HELP)
    add_output(status)


def run_track(args: argparse.Namespace, out: Output) -> int:
    """Run ``track add``, ``track run`` or ``track status``; return the exit code.

    Raises:
        InvalidParameterError: A missing or unusable store, or bad flags (exit 2).
    """
    if args.action == "add":
        return asyncio.run(_add(args, out))
    if args.action == "status":
        return asyncio.run(_status(args, out))
    return asyncio.run(_run(args, out))


# --- the store --------------------------------------------------------------------------------


def _store_error(exc: StoreError) -> InvalidParameterError:
    """A store that cannot be used, as bad input naming ``--store``."""
    return InvalidParameterError(f"--store: {exc.message}", param="store")


def _existing_store(path: str) -> SQLiteStore:
    """The store at ``path``, which must exist: ``run`` and ``status`` never create one."""
    if not Path(path).is_file():
        msg = (
            f"--store: no tracker store at {path}; "
            f"create it with `finetune-async track add --store {path} ID…`"
        )
        raise InvalidParameterError(msg, param="store")
    return SQLiteStore(path)


async def _opened(store: SQLiteStore) -> SQLiteStore:
    try:
        await store.open()
    except StoreError as exc:
        raise _store_error(exc) from None
    return store


def _check_ids(ids: list[str]) -> list[str]:
    for value in ids:
        if not value.strip():
            msg = f"ID: every id must be a non-empty string, got {value!r}"
            raise InvalidParameterError(msg, param="ids")
    return list(dict.fromkeys(ids))


# --- track add --------------------------------------------------------------------------------


async def _add(args: argparse.Namespace, out: Output) -> int:
    ids = _check_ids(args.ids)
    kind: TrackedKind = "batch" if args.batch else "job"
    store = await _opened(SQLiteStore(args.store))
    try:
        added = set(await store.add([(kind, object_id) for object_id in ids], time.time()))
    except StoreError as exc:
        raise _store_error(exc) from None
    finally:
        await store.close()
    if out.json:
        for object_id in ids:
            out.emit({"kind": kind, "id": object_id, "added": object_id in added})
        return 0
    new = [object_id for object_id in ids if object_id in added]
    old = [object_id for object_id in ids if object_id not in added]
    noun = "batch" if kind == "batch" else "job"
    if new:
        plural = "es" if kind == "batch" else "s"
        out.message(f"tracking {len(new)} {noun}{plural if len(new) > 1 else ''}: {', '.join(new)}")
    if old:
        out.message(f"already tracked: {', '.join(old)}")
    return 0


# --- track status -----------------------------------------------------------------------------


async def _status(args: argparse.Namespace, out: Output) -> int:
    store = await _opened(_existing_store(args.store))
    try:
        stored = await store.objects()
    except StoreError as exc:
        raise _store_error(exc) from None
    finally:
        await store.close()
    objects = [
        TrackedObject(
            kind=item.kind,
            id=item.id,
            status=item.status,
            terminal=item.terminal,
            delivered=item.delivered,
            polls=item.polls,
            last_polled_at=item.last_polled_at,
        )
        for item in stored
    ]
    if not objects and not out.json:
        out.message(f"{args.store} tracks nothing yet (add ids with `finetune-async track add`)")
        return 0
    out.table(objects, OBJECT_COLUMNS, title=f"tracked in {args.store}")
    return 0


# --- track run --------------------------------------------------------------------------------


def _webhook_secret(args: argparse.Namespace) -> str | None:
    """The secret for ``--webhook-port`` (flag, else environment); None without a port."""
    if args.webhook_port is None:
        if args.webhook_secret is not None:
            msg = "--webhook-secret needs --webhook-port (where to receive the webhooks)"
            raise InvalidParameterError(msg, param="webhook_secret")
        return None
    secrets = webhook_secrets([args.webhook_secret] if args.webhook_secret else None)
    if secrets is None:
        msg = (
            "--webhook-port needs the endpoint's secret: pass --webhook-secret whsec_… "
            f"or set {_SECRET_ENV}"
        )
        raise InvalidParameterError(msg, param="webhook_secret")
    return secrets[0]


def _tracker(args: argparse.Namespace, client: Any, secret: str | None) -> Tracker:
    try:
        return Tracker(
            client,
            store=_existing_store(args.store),
            poll_interval=args.poll_interval,
            reconcile_interval=args.reconcile_interval,
            webhook_secret=secret,
            max_concurrency=args.max_concurrency,
            refresh=args.refresh,
        )
    except InvalidParameterError as exc:
        if exc.param == "webhook_secret":
            text = str(exc).removeprefix("webhook_secret")
            raise InvalidParameterError("--webhook-secret" + text, param=exc.param) from None
        raise


async def _run(args: argparse.Namespace, out: Output) -> int:
    secret = _webhook_secret(args)
    _existing_store(args.store)  # before the key is asked for: the first mistake to report
    async with make_client(args) as client:
        tracker = _tracker(args, client, secret)
        opened = False
        try:
            # An exception of the block (Ctrl-C, a reader gone) reaches __aexit__, which then
            # leaves the last printed update undelivered, for the next run.
            async with tracker, _warnings_on_stderr():
                opened = True
                if args.webhook_port is not None:
                    await _serve(tracker, args)
                await _print_updates(tracker, args, out)
        except StoreError as exc:
            if opened:  # the store failed mid-run: not the caller's input
                raise
            raise _store_error(exc) from None
    return 0


@contextlib.asynccontextmanager
async def _warnings_on_stderr() -> AsyncIterator[None]:
    """Show the tracker's warnings (an object that cannot be read) as one stderr line each.

    Standard output carries the updates only; an unknown id or a refused key is retried by the
    tracker (it may be a passing outage), and said here once per run of failures.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("finetune-async: %(message)s"))
    logger = logging.getLogger("finetune_async.tracking")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


async def _serve(tracker: Tracker, args: argparse.Namespace) -> None:
    try:
        server = await tracker.serve_webhooks(args.webhook_host, args.webhook_port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        msg = (
            f"cannot listen on {args.webhook_host}:{args.webhook_port} "
            f"(--webhook-host, --webhook-port): {reason}"
        )
        raise OSError(msg) from None
    print(
        f"finetune-async track: receiving webhooks on {server.url} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )


async def _print_updates(tracker: Tracker, args: argparse.Namespace, out: Output) -> None:
    if out.json:
        async for update in tracker.updates(follow=args.follow):
            out.emit(update_line(update))  # written and flushed before the next is asked for
        return
    board = Board(await tracker.status())
    if out.is_terminal and Live is not None and out.console is not None:
        with Live(board, console=out.console, refresh_per_second=8) as live:
            async for update in tracker.updates(follow=args.follow):
                board.update(update)
                live.refresh()
        return
    async for update in tracker.updates(follow=args.follow):
        out.message(change_line(update))


def update_line(update: TrackedUpdate) -> dict[str, Any]:
    """The JSON line of an update: ``update_id`` first, then the change, then the record."""
    return {
        "update_id": update.update_id,
        "kind": update.kind,
        "id": update.id,
        "status": update.status,
        "previous_status": update.previous_status,
        "terminal": update.terminal,
        "record": jsonable(update.record),
    }


def change_line(update: TrackedUpdate) -> str:
    """``job ftjob-abc: running -> succeeded``, for a terminal without rich."""
    tail = " (final)" if update.terminal else ""
    return f"{update.kind} {update.id}: {update.previous_status or '-'} -> {update.status}{tail}"


class Board:
    """The live table of ``track run``: one row per tracked object."""

    def __init__(self, objects: list[TrackedObject]) -> None:
        """Start from what the store holds."""
        self.rows: dict[str, list[str]] = {
            item.id: [item.kind, item.id, item.status or "…", "", ""] for item in objects
        }

    def update(self, update: TrackedUpdate) -> None:
        """Take one update."""
        updated = local_time(int(time.time()))
        previous = update.previous_status or "-"
        status = update.status + (" (final)" if update.terminal else "")
        self.rows[update.id] = [update.kind, update.id, status, previous, updated]

    def __rich__(self) -> Any:
        """Render afresh at every refresh of the live display."""
        table = Table(title="tracked", expand=False)
        for column in ("kind", "id", "status", "previous", "updated"):
            table.add_column(column, overflow="fold")
        for row in self.rows.values():
            table.add_row(*row)
        return table
