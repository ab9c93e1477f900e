"""Client settings that are records: timeouts and the retry back-off."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["DEFAULT_TIMEOUT", "Backoff", "Timeout"]


def _non_negative_or_none(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        msg = f"Timeout.{attribute.name} must be a number of seconds >= 0 or None, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Timeout:
    """How long a call may take, in seconds; None means no limit.

    Attributes:
        connect: Per attempt: getting a connection (pool wait and TCP/TLS set-up included).
        read: Per attempt: the longest wait for the next bytes of the answer.
        total: The whole call, every retry and back-off sleep included. Each attempt also gets at
            most what remains of it.
    """

    connect: float | None = attrs.field(default=5.0, validator=_non_negative_or_none)
    read: float | None = attrs.field(default=600.0, validator=_non_negative_or_none)
    total: float | None = attrs.field(default=600.0, validator=_non_negative_or_none)

    @classmethod
    def of(cls, value: float | Timeout | None) -> Timeout:
        """Return ``value`` as a Timeout: a number bounds connect, read and total alike.

        None lifts the total limit only: the connect and read limits keep their defaults, so a
        server that stops sending mid-answer still fails the attempt instead of holding it
        forever. ``Timeout(connect=None, read=None, total=None)`` lifts every limit.
        """
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(total=None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            msg = f"timeout must be a number of seconds, a Timeout or None, got {value!r}"
            raise TypeError(msg)
        return cls(connect=value, read=value, total=value)


DEFAULT_TIMEOUT = Timeout()


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        msg = f"Backoff.{attribute.name} must be >= 0, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Backoff:
    """How long to sleep between retries when the server gives no ``Retry-After``.

    The n-th retry (n from 0) sleeps ``min(maximum, initial * 2**n)`` less a random part of up to
    ``jitter`` of it, so that many clients retrying together spread out. A server hint
    (``retry-after-ms`` / ``Retry-After``) replaces this when present, up to ``max_retry_after``;
    a longer hint ends the retries instead of being cut short.
    ``Backoff(initial=0, maximum=0)`` retries at once (for tests).
    """

    initial: float = attrs.field(default=0.5, validator=_non_negative)
    maximum: float = attrs.field(default=8.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.25, validator=_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
