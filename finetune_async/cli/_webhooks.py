"""``finetune-async webhooks listen``: a local receiver that prints every verified event.

Like ``stripe listen``: point the emulator (``finetune-async emulator --webhook-url``) or a tunnel
at it and watch the pushes arrive. It is a ``WebhookReceiver``, so it answers as any service
would (200 once printed, 400 to a bad signature, deduplicated on ``webhook-id``). On a terminal
each event is a table row; with ``--json`` or into a pipe, one JSON line with the event's
fields. Standard output carries the events only: the listening line and every refused delivery
go to standard error, so that ``--json`` output stays one event a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Final

from ..emulator._webhooks import serve_receiver
from ..errors import InvalidParameterError
from ..webhooks import WebhookReceiver
from ._output import local_time

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable

    from ..types import WebhookEvent
    from ._output import Output

__all__ = ["EVENT_COLUMNS", "listen", "webhook_secrets"]

#: The columns of a terminal's rows: (title, width).
EVENT_COLUMNS: Final = (("created", 25), ("type", 25), ("object", 30), ("event", 36))
_SECRET_ENV: Final = "OPENAI_WEBHOOK_SECRET"  # noqa: S105 - a variable's name


def webhook_secrets(given: list[str] | None) -> list[str] | None:
    """The secrets of a repeatable flag, else ``OPENAI_WEBHOOK_SECRET``, else None."""
    if given:
        return given
    from_env = os.environ.get(_SECRET_ENV, "").strip()
    return [from_env] if from_env else None


class _Printer:
    """``on_event``: one row or JSON line per event; remembers a reader that went away."""

    def __init__(self, out: Output, stop: asyncio.Event) -> None:
        self.out = out
        self.stop = stop
        self.reader_gone = False
        self.header_shown = False

    async def __call__(self, event: WebhookEvent) -> None:
        try:
            if self.out.json:
                self.out.emit(event)
            else:
                self._row(event)
        except BrokenPipeError:
            # `listen | head -1`: stop, and answer 500 (the event was not shown).
            self.reader_gone = True
            self.stop.set()
            raise

    def _row(self, event: WebhookEvent) -> None:
        stream = self.out.stream
        if not self.header_shown:
            stream.write(_line(title for title, _ in EVENT_COLUMNS))
            self.header_shown = True
        stream.write(
            _line((local_time(event.created_at), str(event.type), event.data.id or "", event.id))
        )
        stream.flush()


def _line(cells: Iterable[object]) -> str:
    values = list(cells)
    padded = [str(v).ljust(w) for v, (_, w) in zip(values[:-1], EVENT_COLUMNS, strict=False)]
    return "  ".join([*padded, str(values[-1])]).rstrip() + "\n"


def _not_broken_pipe(record: logging.LogRecord) -> bool:
    """Drop the receiver's traceback of a reader that went away (that is not a failure)."""
    return not (record.exc_info and isinstance(record.exc_info[1], BrokenPipeError))


def _refused(method: str, path: str, status: int, text: str) -> None:
    hint = ""
    if status == 400:  # noqa: PLR2004
        hint = " (is --secret the sender's secret?)"
    elif status == 404:  # noqa: PLR2004
        hint = " (deliveries go to /)"
    print(
        f"finetune-async: refused {method} {path}: {status} {text}{hint}",
        file=sys.stderr,
        flush=True,
    )


async def listen(args: argparse.Namespace, out: Output) -> int:
    """Serve a receiver on ``--host:--port`` until Ctrl-C; print each verified event.

    Raises:
        InvalidParameterError: No secret, or a malformed one (the message names ``--secret``).
        OSError: The address cannot be bound (the message names ``--host`` and ``--port``).
        BrokenPipeError: The reader of standard output went away.
    """
    secrets = webhook_secrets(args.secret)
    if secrets is None:
        msg = f"--secret: no webhook secret; pass --secret whsec_… or set {_SECRET_ENV}"
        raise InvalidParameterError(msg, param="secret")
    stop = asyncio.Event()
    printer = _Printer(out, stop)
    try:
        receiver = WebhookReceiver(secret=secrets, on_event=printer)
    except InvalidParameterError as exc:
        raise InvalidParameterError(
            "--secret" + str(exc).removeprefix("secret"), param="secret"
        ) from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    def refused(method: str, path: str, status: int, text: str) -> None:
        if not printer.reader_gone:  # the 500 that tells the sender to retry: expected
            _refused(method, path, status, text)

    logger = logging.getLogger("finetune_async.webhooks")
    logger.addFilter(_not_broken_pipe)
    try:
        async with serve_receiver(receiver, args.host, args.port, refused) as port:
            print(
                f"finetune-async webhooks listening on http://{args.host}:{port}/ "
                f"({len(secrets)} secret{'s' if len(secrets) > 1 else ''}; Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        reason = exc.strerror or str(exc)
        msg = f"cannot listen on {args.host}:{args.port} (--host, --port): {reason}"
        raise OSError(msg) from None
    finally:
        logger.removeFilter(_not_broken_pipe)
    if printer.reader_gone:
        raise BrokenPipeError
    return 0
