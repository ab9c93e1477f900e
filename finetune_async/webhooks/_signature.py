"""Standard Webhooks signatures: verify, unwrap and sign. Pure: no I/O, no event loop.

The rules are the Standard Webhooks spec's (``spec/standard-webhooks.md``, "Signature scheme",
"Webhook headers" and "Verifying signatures") and docs/api.md's "Webhooks":

- A delivery carries ``webhook-id``, ``webhook-timestamp`` (integer unix seconds of this attempt)
  and ``webhook-signature``, a space-separated list of ``version,base64`` entries. Header names
  are matched case-insensitively.
- The signature is HMAC-SHA256 over ``f"{id}.{timestamp}."`` followed by the body's exact bytes
  (a ``str`` body is taken as its UTF-8 bytes), keyed with the base64 after ``whsec_``.
- Any ``v1`` entry may match any of the secrets (several secrets, for rotation); digests are
  compared in constant time. Entries of other versions (``v1a``, the asymmetric scheme) are
  skipped.
- The timestamp must be within ``tolerance`` seconds of now, both ways (too old, too new).

Stricter than the two libraries users know, on purpose (docs/compat.md, "Webhooks as OpenAI sends
them"), because each laxity below turns a sender's or a user's mistake into a silent pass or a
crash:

- A secret must be ``whsec_`` + base64. openai-python uses any other string as the raw key, so a
  truncated or mistyped secret verifies nothing it should; here it is a clear
  ``WebhookVerificationError`` (missing base64 padding is tolerated, as real secrets may lack it).
- Every entry of ``webhook-signature`` must be ``version,signature``, and a ``v1`` signature must
  be the base64 of 32 bytes. openai-python also accepts bare signatures; ``standardwebhooks``
  lets a malformed entry through as a mere mismatch, or fails with a plain ``ValueError`` on a
  malformed secret.
- ``webhook-timestamp`` must be ASCII digits (``standardwebhooks`` also takes floats), and
  ``webhook-id`` must not contain ``.``, which the spec warns would let the signed fields shift.

Every failure is a ``WebhookVerificationError`` whose message names the failed check and never
holds the secret, the signature or the body; no ``binascii``, ``UnicodeError``, ``KeyError`` or
cattrs exception escapes. Arguments of the wrong type raise ``TypeError``, and a bad
``tolerance`` or ``now`` raises ``InvalidParameterError``: those are the caller's bugs, not a bad
delivery.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from .._converter import converter
from ..errors import InvalidParameterError, WebhookVerificationError
from ..types import WebhookEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["load_keys", "parse_event", "sign", "unwrap", "verify", "verify_signature"]

_PREFIX = "whsec_"
_DIGEST_SIZE = 32  # HMAC-SHA256
# Unix seconds fit in 11 digits until the year 5138; more is garbage, and int() of a long
# digit string costs quadratic time.
_MAX_TIMESTAMP_DIGITS = 12
# What sign() accepts as a webhook-id: printable ASCII without spaces (HTTP would strip them,
# breaking the signature) and without "." (the spec's separator).
_WEBHOOK_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]+")
_EVENT_FIELDS = ("id", "type", "created_at", "data")


def verify_signature(
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    secret: str | Sequence[str],
    tolerance: float = 300,
    now: float | None = None,
) -> None:
    """Check that a webhook delivery was signed with ``secret`` and is recent.

    Args:
        body: The request body exactly as received (bytes; a ``str`` counts as its UTF-8).
        headers: The request headers, any mapping (names are matched case-insensitively).
        secret: The endpoint's secret ``whsec_…``, or several during a rotation.
        tolerance: How far, in seconds, the timestamp may be from ``now``, either way.
        now: The current unix time, for tests; default ``time.time()``.

    Raises:
        WebhookVerificationError: A header is missing or malformed, the timestamp is outside the
            tolerance, no signature matches, or a secret is malformed.
        TypeError: ``body`` is not bytes or str, or ``headers`` is not a mapping.
        InvalidParameterError: ``tolerance`` or ``now`` is not a usable number.
    """
    verify(_body_bytes(body), headers, load_keys(secret), _tolerance(tolerance), _now(now))


def unwrap(
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    secret: str | Sequence[str],
    tolerance: float = 300,
    now: float | None = None,
) -> WebhookEvent:
    """Verify a webhook delivery, then return its event as a ``WebhookEvent``.

    Takes the arguments of ``verify_signature``. An event type this SDK does not know is kept as
    its string, never refused.

    Raises:
        WebhookVerificationError: As ``verify_signature``, and for a verified body that is not
            JSON or not an event (an object with ``id``, ``type``, ``created_at`` and ``data``).
        TypeError: ``body`` is not bytes or str, or ``headers`` is not a mapping.
        InvalidParameterError: ``tolerance`` or ``now`` is not a usable number.
    """
    raw = _body_bytes(body)
    webhook_id = verify(raw, headers, load_keys(secret), _tolerance(tolerance), _now(now))
    return parse_event(raw, webhook_id)


def sign(
    body: bytes | str, *, secret: str | Sequence[str], webhook_id: str, timestamp: int
) -> dict[str, str]:
    """Sign a webhook delivery: the three headers to send with ``body``.

    With several secrets the signature header holds one ``v1`` entry per secret, in their order.

    Args:
        body: The exact body to send (a ``str`` is signed as its UTF-8).
        secret: The endpoint's secret ``whsec_…``, or several.
        webhook_id: The delivery's id, the same on every retry: printable ASCII, no spaces or ``.``.
        timestamp: This attempt's integer unix seconds.

    Returns:
        ``{"webhook-id": …, "webhook-timestamp": …, "webhook-signature": …}``.

    Raises:
        InvalidParameterError: A malformed secret, webhook id or timestamp, or a ``str`` body that
            has no UTF-8 form.
        TypeError: ``body`` is not bytes or str.
    """
    try:
        raw = _body_bytes(body)
        keys = load_keys(secret)
    except WebhookVerificationError as exc:
        param = "secret" if exc.reason == "malformed_secret" else "body"
        raise InvalidParameterError(str(exc), param=param) from None
    _check_webhook_id(webhook_id)
    stamp = str(_check_timestamp(timestamp))
    signed = f"{webhook_id}.{stamp}.".encode() + raw
    signature = " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode("ascii") for key in keys
    )
    return {"webhook-id": webhook_id, "webhook-timestamp": stamp, "webhook-signature": signature}


# --- the pieces, shared with the receiver (which loads its keys once) --------------------------


def load_keys(secret: object) -> tuple[bytes, ...]:
    """The HMAC keys of one secret or of a sequence of them.

    Raises:
        WebhookVerificationError: No secret, or one that is not ``whsec_`` + base64; the message
            says which one (by position), never what it holds.
    """
    if isinstance(secret, str):
        return (_key_of(secret),)
    if isinstance(secret, bytes | bytearray | memoryview) or not isinstance(secret, Iterable):
        raise WebhookVerificationError(
            f"the secret must be a str ('whsec_…') or a sequence of them, "
            f"not {type(secret).__name__}",
            reason="malformed_secret",
        )
    secrets = tuple(secret)
    if not secrets:
        raise WebhookVerificationError("no secret was given", reason="malformed_secret")
    keys = []
    for position, one in enumerate(secrets, 1):
        if not isinstance(one, str):
            raise WebhookVerificationError(
                f"secret {position} of {len(secrets)} is a {type(one).__name__}, not a str",
                reason="malformed_secret",
            )
        try:
            keys.append(_key_of(one))
        except WebhookVerificationError as exc:
            raise WebhookVerificationError(
                f"secret {position} of {len(secrets)}: {exc}", reason="malformed_secret"
            ) from None
    return tuple(keys)


@functools.lru_cache(maxsize=64)
def _key_of(secret: str) -> bytes:
    # Cached: decoding is a fair share of one verification's CPU, and a service verifies with
    # the same few secrets all day.
    if not secret.startswith(_PREFIX):
        raise WebhookVerificationError(
            "the secret does not start with 'whsec_' (a raw string is not taken as the key)",
            reason="malformed_secret",
        )
    encoded = secret[len(_PREFIX) :]
    encoded += "=" * (-len(encoded) % 4)  # unpadded base64 is common in secrets
    try:
        key = binascii.a2b_base64(encoded, strict_mode=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise WebhookVerificationError(
            "the secret after 'whsec_' is not base64", reason="malformed_secret"
        ) from None
    if not key:
        raise WebhookVerificationError(
            "the secret is empty after 'whsec_'", reason="malformed_secret"
        )
    return key


def verify(
    body: bytes, headers: Mapping[str, str], keys: tuple[bytes, ...], tolerance: float, now: float
) -> str:
    """Verify a delivery against already loaded keys; return its ``webhook-id``.

    The checks run cheapest first: headers, then the time window, then the HMACs.
    """
    webhook_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _signatures(_header(headers, "webhook-signature"))
    if "." in webhook_id:
        raise WebhookVerificationError(
            "the webhook-id header contains '.', the separator of the signed fields",
            reason="malformed_header",
        )
    _check_window(_timestamp(stamp), tolerance, now)
    try:
        signed = f"{webhook_id}.{stamp}.".encode() + body
    except UnicodeEncodeError:  # a caller's str header holding lone surrogates
        raise WebhookVerificationError(
            "the webhook-id header is not text that has a UTF-8 form", reason="malformed_header"
        ) from None
    for key in keys:
        expected = hmac.digest(key, signed, "sha256")
        for candidate in signatures:
            if hmac.compare_digest(expected, candidate):
                return webhook_id
    raise WebhookVerificationError(
        "no signature in the webhook-signature header matches the secret",
        reason="no_matching_signature",
    )


def parse_event(body: bytes, webhook_id: str) -> WebhookEvent:
    """Structure a verified body as a ``WebhookEvent``.

    Raises:
        WebhookVerificationError: The body is not JSON, or not an event object.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookVerificationError("the body is not JSON", reason="not_json") from None
    if type(payload) is not dict:
        raise WebhookVerificationError(
            f"the body is a JSON {_json_kind(payload)}, not an event object",
            reason="not_an_event",
        )
    for field in _EVENT_FIELDS:
        if field not in payload:
            raise WebhookVerificationError(
                f"the body is not an event: it has no {field!r} field", reason="not_an_event"
            )
    # webhook_id is the header, not a field of the body: the record keeps both.
    payload["webhook_id"] = webhook_id
    try:
        return converter.structure(payload, WebhookEvent)
    # The single structuring call site (docs/architecture.md rule 7): cattrs raises many types, none
    # of which may escape, and their messages may quote the body, so none is chained.
    except Exception:  # noqa: BLE001
        raise WebhookVerificationError(
            "the body is not an event: a field has the wrong type (id and type must be strings, "
            "created_at an integer, data an object)",
            reason="not_an_event",
        ) from None


def _body_bytes(body: object) -> bytes:
    if type(body) is bytes:
        return body
    if isinstance(body, str):
        try:
            return body.encode()
        except UnicodeEncodeError:
            raise WebhookVerificationError(
                "the body is a str with no UTF-8 form (lone surrogates): pass the raw bytes",
                reason="malformed_body",
            ) from None
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    msg = f"body must be the raw bytes (or a str), not {type(body).__name__}"
    raise TypeError(msg)


def _header(headers: Mapping[str, str], name: str) -> str:
    """One header's value, the name matched case-insensitively."""
    try:
        value: Any = headers.get(name)  # CIMultiDict, Starlette's Headers, lower-case dicts
    except AttributeError:
        msg = f"headers must be a mapping, not {type(headers).__name__}"
        raise TypeError(msg) from None
    if value is None:
        value = _scan(headers, name)
    if type(value) is not str:
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("latin-1")  # HTTP's own reading of header bytes
        elif isinstance(value, str):
            value = str(value)
        else:
            raise WebhookVerificationError(
                f"the {name} header is a {type(value).__name__}, not text",
                reason="malformed_header",
            )
    if not value:
        raise WebhookVerificationError(f"the {name} header is empty", reason="missing_header")
    return value  # type: ignore[no-any-return]


def _scan(headers: Mapping[Any, Any], name: str) -> object:
    """Find ``name`` among keys of any case (a plain dict), or bytes keys (raw ASGI headers)."""
    for key, value in headers.items():
        text = key.decode("latin-1") if isinstance(key, bytes) else key
        if isinstance(text, str) and text.lower() == name:
            return value
    raise WebhookVerificationError(f"the {name} header is missing", reason="missing_header")


def _timestamp(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise WebhookVerificationError(
            "the webhook-timestamp header is not integer unix seconds",
            reason="malformed_timestamp",
        )
    return int(text)


def _check_window(timestamp: int, tolerance: float, now: float) -> None:
    age = now - timestamp
    if age > tolerance:
        raise WebhookVerificationError(
            f"the webhook-timestamp is {math.ceil(age)} s old, beyond the tolerance of "
            f"{tolerance:g} s",
            reason="timestamp_too_old",
        )
    if -age > tolerance:
        raise WebhookVerificationError(
            f"the webhook-timestamp is {math.ceil(-age)} s in the future, beyond the tolerance of "
            f"{tolerance:g} s",
            reason="timestamp_too_new",
        )


def _signatures(header: str) -> list[bytes]:
    """The ``v1`` digests of a ``webhook-signature`` header; other versions are skipped."""
    digests = []
    for position, entry in enumerate(header.split(), 1):
        version, comma, value = entry.partition(",")
        if not (comma and version and value):
            raise WebhookVerificationError(
                f"entry {position} of the webhook-signature header is not 'version,signature' "
                "(bare signatures are refused)",
                reason="malformed_signature",
            )
        if version != "v1":
            continue
        try:
            digest = binascii.a2b_base64(value, strict_mode=True)
        except ValueError:
            raise WebhookVerificationError(
                f"entry {position} of the webhook-signature header is not base64",
                reason="malformed_signature",
            ) from None
        if len(digest) != _DIGEST_SIZE:
            raise WebhookVerificationError(
                f"entry {position} of the webhook-signature header is not an HMAC-SHA256 "
                f"({len(digest)} bytes, not {_DIGEST_SIZE})",
                reason="malformed_signature",
            )
        digests.append(digest)
    if not digests:
        raise WebhookVerificationError(
            "the webhook-signature header holds no v1 (HMAC-SHA256) signature",
            reason="no_matching_signature",
        )
    return digests


def _check_webhook_id(value: object) -> None:
    if not isinstance(value, str) or not _WEBHOOK_ID.fullmatch(value):
        raise InvalidParameterError(
            "webhook_id: must be printable ASCII without spaces or '.'", param="webhook_id"
        )


def _check_timestamp(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(
            "timestamp: must be integer unix seconds (an int >= 0)", param="timestamp"
        )
    return value


def _tolerance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidParameterError(
            f"tolerance: must be a number of seconds >= 0, got {value!r}", param="tolerance"
        )
    return value


def _now(value: object) -> float:
    if value is None:
        return time.time()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(
            f"now: must be unix seconds (a number) or None, got {value!r}", param="now"
        )
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"
