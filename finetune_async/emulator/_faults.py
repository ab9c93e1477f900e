"""Fault injection and the record of what the emulator saw."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import random

__all__ = ["Faults", "RequestRecord", "Stats"]


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"Faults.{attribute.name} is a fraction of requests from 0 to 1, got {value!r}"
        raise ValueError(msg)


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        msg = f"Faults.{attribute.name} must be >= 0, got {value!r}"
        raise ValueError(msg)


def _positive_or_none(
    _: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        msg = f"Faults.{attribute.name} is requests per second (> 0) or None, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Faults:
    """What goes wrong, and how often. Rates are fractions of requests (0 to 1).

    Attributes:
        rate_429: Answer 429 with ``Retry-After: retry_after`` (and ``retry-after-ms``).
        rate_5xx: Answer 500 with an OpenAI error body.
        rate_drop: Close the connection without answering, after reading the request.
        latency: Extra seconds (real time) before every answer.
        retry_after: The seconds sent in ``Retry-After`` on injected and rate-limit 429s.
        rate_limit: At most this many requests per real second (a token bucket of that size);
            beyond it, 429 with ``Retry-After``. None: no limit.
    """

    rate_429: float = attrs.field(default=0.0, validator=_fraction)
    rate_5xx: float = attrs.field(default=0.0, validator=_fraction)
    rate_drop: float = attrs.field(default=0.0, validator=_fraction)
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    retry_after: float = attrs.field(default=1.0, validator=_non_negative)
    rate_limit: float | None = attrs.field(default=None, validator=_positive_or_none)

    def pick(self, rng: random.Random) -> str | None:
        """Draw the fault for one request: ``"drop"``, ``"429"``, ``"5xx"`` or None."""
        draw = rng.random()
        for name, rate in (
            ("drop", self.rate_drop),
            ("429", self.rate_429),
            ("5xx", self.rate_5xx),
        ):
            if draw < rate:
                return name
            draw -= rate
        return None


class TokenBucket:
    """A ``rate`` requests-per-second limiter with a burst of ``rate`` (at least one request)."""

    __slots__ = ("_capacity", "_stamp", "_tokens", "rate")

    def __init__(self, rate: float) -> None:
        """Start full."""
        self.rate = rate
        # A rate below 1/s still lets one request through, then one per 1/rate seconds.
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """Take one token; False when the bucket is empty."""
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@attrs.frozen
class RequestRecord:
    """One request as the emulator saw it.

    Attributes:
        started: ``time.monotonic()`` when it arrived.
        method: The HTTP method.
        path: The path, ``/v1`` included, without the query.
        route: The route template, e.g. ``GET /fine_tuning/jobs/{fine_tuning_job_id}``.
        outcome: The status answered, or ``"dropped"``.
        fault: The injected fault (``"429"``, ``"5xx"``, ``"drop"``, ``"rate_limit"``) or None.
        headers: The request headers.
    """

    started: float
    method: str
    path: str
    route: str
    outcome: int | str
    fault: str | None
    headers: dict[str, str]


@attrs.define
class Stats:
    """Counters of everything the emulator answered; reset with ``Emulator.reset_stats()``.

    Attributes:
        requests: Every request (``RequestRecord``), in the order their handling ended; sort by
            ``started`` for arrival order.
        in_flight: Requests being handled now.
        max_in_flight: The most requests handled at once since the last reset.
        outcomes: How many times each outcome (status code or ``"dropped"``) was answered.
        faults: How many times each fault was injected.
    """

    requests: list[RequestRecord] = attrs.field(factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    outcomes: Counter[int | str] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)

    @property
    def total(self) -> int:
        """How many requests arrived."""
        return len(self.requests)
