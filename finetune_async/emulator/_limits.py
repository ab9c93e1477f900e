"""The emulator's size limits: the API's own for uploads, small ones for JSON and its log."""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["Limits"]

#: The Files API takes files of up to 512 MB each (the API reference for ``POST /files``).
FILE_BYTES: Final = 512 * 1024 * 1024
#: The largest JSON body the emulator reads: its biggest create body is a few kilobytes.
JSON_BYTES: Final = 1024 * 1024
#: Requests kept in ``Stats.requests`` (about 1 KB each, so a few MB at most).
REQUEST_LOG: Final = 10_000


def _positive(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int or value < 1:
        msg = f"Limits.{attribute.name} must be a positive integer, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Limits:
    """How much the emulator accepts and remembers; beyond a size limit it answers 413.

    Attributes:
        file_bytes: The largest file ``POST /files`` takes (the API's 512 MB by default).
        json_bytes: The largest JSON request body (1 MiB by default).
        request_log: How many requests ``emu.stats.requests`` keeps, newest last; older ones
            are dropped (``stats.total`` still counts them).
    """

    file_bytes: int = attrs.field(default=FILE_BYTES, validator=_positive)
    json_bytes: int = attrs.field(default=JSON_BYTES, validator=_positive)
    request_log: int = attrs.field(default=REQUEST_LOG, validator=_positive)
