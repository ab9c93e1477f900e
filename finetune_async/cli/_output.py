"""What the command line prints: readable tables on a terminal, JSON lines for scripts.

``--json``, or a standard output that is not a terminal, gives one JSON object per line with the
records' wire field names (every field, null included, so the names are stable) and nothing
decorative. On a terminal, ``rich`` (the ``cli`` extra) draws tables; without it, plain aligned
text. There, timestamps (``created_at``, ``finished_at``...) read as local ISO 8601 times; the
JSON lines keep the raw numbers the API sent.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import orjson

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterable, Sequence

__all__ = ["Output", "is_time_field", "jsonable", "local_time"]

#: Above this a timestamp is in milliseconds (docs/compat.md: some providers send them); as seconds
#: it would be after the year 5000.
_MILLISECONDS_FROM = 100_000_000_000
#: Fields holding a Unix timestamp besides the ``*_at`` ones.
_TIME_FIELDS = frozenset({"created", "estimated_finish"})

try:  # the optional UI library; the SDK itself never imports it
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    Console = None  # type: ignore[assignment,misc]
    Table = None  # type: ignore[assignment,misc]


def jsonable(value: Any) -> Any:
    """Return ``value`` as plain JSON data: records as dicts of every field, enums as values."""
    if attrs.has(type(value)):
        return {
            field.name: jsonable(getattr(value, field.name)) for field in attrs.fields(type(value))
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def is_time_field(name: str) -> bool:
    """Whether a field of that name holds a Unix timestamp (``created_at``, ``finished_at``...)."""
    return name.endswith("_at") or name in _TIME_FIELDS


def local_time(value: Any) -> str:
    """A Unix timestamp (seconds, or milliseconds) as a local ISO 8601 time; else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    seconds = value / 1000 if abs(value) >= _MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).astimezone().isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):  # out of the platform's range: as sent
        return str(value)


def _cell(value: Any, name: str = "") -> str:
    value = jsonable(value)
    if value is None:
        return ""
    if is_time_field(name):
        return local_time(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


class Output:
    """Prints records, tables and messages in the mode the user asked for."""

    def __init__(self, *, json_mode: bool | None = None, stream: TextIO | None = None) -> None:
        """Choose JSON lines when asked, or when the stream is not a terminal."""
        self.stream = stream or sys.stdout
        self.is_terminal = self.stream.isatty()
        self.json = (not self.is_terminal) if json_mode is None else json_mode
        # Data is printed as data: no markup ("[v2]" in a path), no emoji (":x:" in a model
        # name), no guessing of highlights.
        self.console = (
            Console(file=self.stream, markup=False, emoji=False, highlight=False)
            if Console is not None and not self.json
            else None
        )

    def emit(self, value: Any) -> None:
        """Print one JSON object on its own line (JSON mode)."""
        self.stream.write(orjson.dumps(jsonable(value)).decode() + "\n")
        self.stream.flush()

    def record(self, value: Any, title: str | None = None) -> None:
        """Print one record: a JSON line, or a two-column table of its fields."""
        if self.json:
            self.emit(value)
            return
        data = jsonable(value)
        rows = [(key, _cell(item, key)) for key, item in data.items() if item not in (None, [], {})]
        if self.console is not None and Table is not None:
            table = Table(title=title, show_header=False, box=None, pad_edge=False)
            table.add_column(style="bold cyan")
            table.add_column(overflow="fold")
            for key, text in rows:
                table.add_row(key, text)
            self.console.print(table)
            return
        if title:
            self.stream.write(title + "\n")
        width = max((len(key) for key, _ in rows), default=0)
        for key, text in rows:
            self.stream.write(f"{key.ljust(width)}  {text}\n")
        self.stream.flush()

    def table(
        self, records: Iterable[Any], columns: Sequence[str], title: str | None = None
    ) -> int:
        """Print records as rows (JSON lines in JSON mode, as they come); return how many."""
        count = 0
        if self.json:
            for value in records:
                self.emit(value)
                count += 1
            return count
        rows = []
        for value in records:
            data = jsonable(value)
            rows.append([_cell(data.get(column), column) for column in columns])
            count += 1
        if self.console is not None and Table is not None:
            table = Table(title=title)
            for column in columns:
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return count
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
        self.stream.write(
            "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "\n"
        )
        for row in rows:
            self.stream.write(
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + "\n"
            )
        self.stream.flush()
        return count

    async def atable(
        self,
        records: AsyncIterable[Any],
        columns: Sequence[str],
        *,
        title: str | None = None,
        limit: int | None = None,
    ) -> int:
        """Print an async stream of records (JSON lines as they arrive); return how many."""
        items: list[Any] = []
        count = 0
        async for value in records:
            count += 1
            if self.json:
                self.emit(value)
            else:
                items.append(value)
            if limit is not None and count >= limit:
                break
        if self.json:
            return count
        return self.table(items, columns, title=title)

    def message(self, text: str, **data: Any) -> None:
        """Print a line for people; in JSON mode, an object with ``message`` and ``data``."""
        if self.json:
            self.emit({"message": text, **data})
        elif self.console is not None:
            self.console.print(text, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()
