"""Fault injection and the record of what the emulator saw."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, overload

import attrs

from ._limits import REQUEST_LOG

if TYPE_CHECKING:
    import random

__all__ = ["Faults", "RequestLog", "RequestRecord", "Stats", "WebhookStats", "redact_headers"]


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
        webhook_drop_rate: The share of webhook deliveries never sent (``stats.webhooks.dropped``).
        webhook_duplicate_rate: The share of webhook deliveries sent twice (the same
            ``webhook-id``: a receiver deduplicates them).
        webhook_delay: Each webhook delivery waits a random 0 to this many real seconds before
            its first attempt, so deliveries arrive late and out of order.

    The ``webhook_*`` faults are read from the emulator-wide faults, never from a route's.
    """

    rate_429: float = attrs.field(default=0.0, validator=_fraction)
    rate_5xx: float = attrs.field(default=0.0, validator=_fraction)
    rate_drop: float = attrs.field(default=0.0, validator=_fraction)
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    retry_after: float = attrs.field(default=1.0, validator=_non_negative)
    rate_limit: float | None = attrs.field(default=None, validator=_positive_or_none)
    webhook_drop_rate: float = attrs.field(default=0.0, validator=_fraction)
    webhook_duplicate_rate: float = attrs.field(default=0.0, validator=_fraction)
    webhook_delay: float = attrs.field(default=0.0, validator=_non_negative)

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


#: What a recorded credential reads as.
REDACTED: Final = "[redacted]"
#: Headers that carry credentials: OpenAI's, Azure's and the Portkey gateway's.
_CREDENTIALS: Final = frozenset(
    {
        "authorization",
        "api-key",
        "x-portkey-api-key",
        "x-portkey-virtual-key",
        "x-portkey-config",
    }
)
_CREDENTIAL_WORDS: Final = ("key", "token", "secret", "authorization")
#: Not a credential despite its name: a random id per request, which tests compare.
_NOT_CREDENTIALS: Final = frozenset({"idempotency-key"})
# Credentials are kept only as keyed digests, under a key that never leaves this process.
_DIGEST_KEY: Final = secrets.token_bytes(16)


def is_credential(name: str) -> bool:
    """Whether header ``name`` carries a credential (and so is never recorded as sent)."""
    lowered = name.lower()
    if lowered in _NOT_CREDENTIALS:
        return False
    if lowered in _CREDENTIALS:
        return True
    # "portkey" is a gateway's name, not a key: x-portkey-provider and x-portkey-trace-id are
    # plain settings, and the gateway's credentials are named above.
    words = lowered.replace("portkey", "")
    return any(word in words for word in _CREDENTIAL_WORDS)


def _digest(value: str) -> bytes:
    return hashlib.blake2b(
        value.encode("utf-8", "surrogateescape"), key=_DIGEST_KEY, digest_size=16
    ).digest()


def redact_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, bytes]]:
    """Split request headers into what a record shows and digests of its credentials.

    Returns:
        The headers with every credential's value replaced by ``"[redacted]"``, and a keyed
        digest of each credential by lower-case name (for ``RequestRecord.sent_header``).
    """
    shown: dict[str, str] = {}
    digests: dict[str, bytes] = {}
    for name, value in headers.items():
        if is_credential(name):
            shown[name] = REDACTED
            digests[name.lower()] = _digest(value)
        else:
            shown[name] = value
    return shown, digests


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
        headers: The request headers, credentials shown as ``"[redacted]"`` (Authorization,
            api-key, the x-portkey keys and config, and any header whose name contains "key",
            "token", "secret" or "authorization", except Idempotency-Key). Check a credential
            with ``sent_header``.
    """

    started: float
    method: str
    path: str
    route: str
    outcome: int | str
    fault: str | None
    headers: dict[str, str]
    _credentials: Mapping[str, bytes] = attrs.field(factory=dict, repr=False, alias="credentials")

    def sent_header(self, name: str, value: str) -> bool:
        """Whether the request had header ``name`` (any case) with exactly ``value``.

        Credentials are compared through a keyed digest: the record never holds them.
        """
        lowered = name.lower()
        if lowered in self._credentials:
            return hmac.compare_digest(self._credentials[lowered], _digest(value))
        return any(k.lower() == lowered and v == value for k, v in self.headers.items())


class RequestLog(Sequence[RequestRecord]):
    """The last ``maxlen`` requests (a ring), oldest first; it compares equal to a list of them."""

    __slots__ = ("_ring", "appended")

    def __init__(self, maxlen: int = REQUEST_LOG) -> None:
        """Start empty, keeping at most ``maxlen`` records."""
        self._ring: deque[RequestRecord] = deque(maxlen=maxlen)
        #: How many records were ever appended (dropped ones included).
        self.appended = 0

    @property
    def maxlen(self) -> int:
        """How many records the ring keeps."""
        maxlen = self._ring.maxlen
        assert maxlen is not None  # noqa: S101 - always set in __init__
        return maxlen

    def append(self, record: RequestRecord) -> None:
        """Add ``record``, dropping the oldest one when the ring is full."""
        self._ring.append(record)
        self.appended += 1

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...
    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        """One record, or a list of them for a slice."""
        if isinstance(index, slice):
            return list(self._ring)[index]
        return self._ring[index]

    def __len__(self) -> int:
        """How many records are kept now."""
        return len(self._ring)

    def __iter__(self) -> Iterator[RequestRecord]:
        """The kept records, oldest first."""
        return iter(self._ring)

    def __reversed__(self) -> Iterator[RequestRecord]:
        """The kept records, newest first (the deque's own, not one lookup per index)."""
        return reversed(self._ring)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same records in the same order (``[] == log``)."""
        if isinstance(other, RequestLog | list | tuple):
            return list(self._ring) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        """Show the kept records."""
        return f"RequestLog({list(self._ring)!r}, maxlen={self.maxlen})"


@attrs.define
class WebhookStats:
    """Counters of the emulator's webhook deliveries.

    Attributes:
        attempts: POSTs sent (every retry and duplicate counts).
        delivered: Attempts answered 2xx.
        failed: Attempts that failed: a non-2xx answer (3xx included, never followed), a
            connection error, or no answer within ``webhook_timeout``.
        dropped: Deliveries never sent (``Faults.webhook_drop_rate``).
        gave_up: Deliveries abandoned after 72 emulated hours of failed attempts.
    """

    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    gave_up: int = 0


@attrs.define
class Stats:
    """Counters of everything the emulator answered; reset with ``Emulator.reset_stats()``.

    Attributes:
        requests: The last ``Limits.request_log`` requests (``RequestRecord``, 10,000 by
            default), in the order their handling ended; sort by ``started`` for arrival order.
        in_flight: Requests being handled now.
        max_in_flight: The most requests handled at once since the last reset.
        outcomes: How many times each outcome (status code or ``"dropped"``) was answered.
        faults: How many times each fault was injected.
        webhooks: The webhook deliveries (``WebhookStats``).
    """

    requests: RequestLog = attrs.field(factory=RequestLog)
    in_flight: int = 0
    max_in_flight: int = 0
    outcomes: Counter[int | str] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)
    webhooks: WebhookStats = attrs.field(factory=WebhookStats)

    @property
    def total(self) -> int:
        """How many requests were recorded, including those the ring no longer keeps."""
        return self.requests.appended
