"""The pure core: URLs, requests, status to error, retry decisions and back-off, page cursors.

Nothing here does I/O or needs an event loop, so all of it is tested with plain function calls
(the shape of ``gidgethub.sansio``). The client's retry loop asks these functions what to do; the
transport only moves bytes.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Protocol
from urllib.parse import quote, urlencode

import attrs
import orjson

from . import errors

if TYPE_CHECKING:
    from ._config import Backoff

__all__ = [
    "Request",
    "Response",
    "error_from_response",
    "join_url",
    "new_idempotency_key",
    "next_cursor",
    "path_segment",
    "retry_delay",
    "retry_verdict",
]

#: Methods whose retry can never change server state.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})

#: Statuses worth another try: timeout, lock conflict, rate limit and server errors (as openai).
_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})

_STATUS_ERRORS: Final[Mapping[int, type[errors.APIStatusError]]] = {
    400: errors.BadRequestError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    422: errors.UnprocessableEntityError,
    429: errors.RateLimitError,
}

_REQUEST_ID_HEADERS: Final = ("x-request-id", "apim-request-id", "x-ms-request-id")

_FIRST_REDIRECT: Final = 300
_FIRST_ERROR: Final = 400
_NOT_FOUND: Final = 404
_SERVER_ERROR: Final = 500
_TOO_MANY_REQUESTS: Final = 429
_REQUEST_TIMEOUT: Final = 408
_MESSAGE_LIMIT: Final = 500  # characters of a non-JSON error body kept in the message


HeaderMap = Mapping[str, str]
"""Response headers; the transport gives aiohttp's case-insensitive ``CIMultiDictProxy``."""


@attrs.frozen
class Upload:
    """A ``multipart/form-data`` body with one file part, streamed from its source.

    Attributes:
        fields: The plain form fields, e.g. ``(("purpose", "fine-tune"),)``.
        file_field: The name of the file part (``"file"``).
        filename: The file name sent with the part.
        open: Opens the source afresh, positioned at its start; called once per attempt.
        owns_source: Whether the transport closes what ``open`` returned (False for a file
            object the caller passed in).
    """

    fields: tuple[tuple[str, str], ...]
    file_field: str
    filename: str
    open: Callable[[], BinaryIO]
    owns_source: bool = True


class DownloadSink(Protocol):
    """Where a streamed download goes; it knows how much it already holds (for ``Range``)."""

    @property
    def offset(self) -> int:
        """Bytes already written."""
        ...

    def write(self, chunk: bytes) -> None:
        """Append a chunk."""
        ...

    def restart(self) -> None:
        """Drop what was written (the server answered the whole file again)."""
        ...


@attrs.frozen
class Request:
    """A request ready for the wire.

    Attributes:
        method: HTTP method, upper case.
        url: The absolute URL, path and query already percent-encoded.
        headers: Every header to send.
        body: The body bytes, or None for no body.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | Upload | None = None

    @property
    def is_safe(self) -> bool:
        """Whether repeating this request can never change the server's state."""
        return self.method in SAFE_METHODS


@attrs.frozen
class Response:
    """A response as the transport read it."""

    status: int
    headers: HeaderMap
    body: bytes


def join_url(base_url: str, path: str) -> str:
    """Join a base URL that may carry a path (``…/v1``, ``…/openai``) and an API path.

    aiohttp's own ``base_url`` drops the base's path, so this is done by hand (docs/architecture.md
    rule 2). A query in the base URL (``…/openai?api-version=…``) stays after the joined path.
    """
    if "?" in base_url:
        base, _, query = base_url.partition("?")
        return base.rstrip("/") + "/" + path.lstrip("/") + "?" + query
    return base_url.rstrip("/") + "/" + path.lstrip("/")


# The characters quote(..., safe=":") leaves as they are.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~:-]+")


def path_segment(value: str) -> str:
    """Percent-encode an id for use as one path segment.

    Ids are opaque (``ftjob-…``, UUIDs, ARNs with ``/``): everything but the unreserved characters
    and ``:`` is encoded. ``:`` stays, so model ids such as ``ft:gpt-4o-mini:org::id`` read as
    they are; it is legal inside a path segment (RFC 3986 ``pchar``). The dot segments ``.`` and
    ``..`` are encoded too, or a proxy would resolve ``jobs/../cancel`` to another path.
    """
    if value in {".", ".."}:
        return value.replace(".", "%2E")
    if _PLAIN_SEGMENT.fullmatch(value):
        return value  # the usual ``ftjob-…`` id: nothing to encode, and quote() costs a few µs
    return quote(value, safe=":")


def encode_query(params: Iterable[tuple[str, Any]]) -> str:
    """Encode query pairs, leaving out None values; booleans become ``true`` / ``false``."""
    pairs = [
        (key, ("true" if value else "false") if isinstance(value, bool) else str(value))
        for key, value in params
        if value is not None
    ]
    return urlencode(pairs)


def build_url(base_url: str, path: str, query: Iterable[tuple[str, Any]] = ()) -> str:
    """Return the absolute URL of ``path`` under ``base_url`` with the query appended."""
    url = join_url(base_url, path)
    encoded = encode_query(query) if query else ""
    if encoded:
        url += ("&" if "?" in url else "?") + encoded
    return url


def new_idempotency_key() -> str:
    """Return a fresh ``Idempotency-Key`` value; one per logical POST, kept across its retries."""
    return f"finetune-async-{uuid.uuid4()}"


# --- credentials -------------------------------------------------------------------------------

#: Header names that carry a credential whatever their spelling of "key": the bearer token,
#: Azure's ``api-key``, and Portkey's JSON config (it may hold a provider key).
_CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "x-portkey-config", "cookie"}
)
#: Not a secret although it ends in "-key": kept readable in logs.
_PUBLIC_KEY_HEADERS: Final = frozenset({"idempotency-key"})
_REDACTED: Final = "***"
#: Shorter values are not scrubbed out of text: "***" for every "a" would help nobody.
_MIN_SECRET_LENGTH: Final = 4


def is_credential_header(name: str) -> bool:
    """Whether a header carries a credential (``Authorization``, ``api-key``, ``x-portkey-*-key``).

    Any name ending in ``-key`` or holding ``token``, ``secret`` or ``auth`` counts, so that a
    gateway's new key header is masked before anyone lists it here.
    """
    lowered = name.lower()
    if lowered in _PUBLIC_KEY_HEADERS:
        return False
    return (
        lowered in _CREDENTIAL_HEADERS
        or lowered.endswith("-key")
        or any(part in lowered for part in ("token", "secret", "auth"))
    )


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return ``headers`` with every credential's value replaced by ``***``."""
    return {
        name: _REDACTED if is_credential_header(name) else value for name, value in headers.items()
    }


def secrets_of(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Return the credential values in ``headers`` and the tokens of ``Bearer …``, longest first."""
    found: set[str] = set()
    for name, value in headers.items():
        if not is_credential_header(name) or len(value) < _MIN_SECRET_LENGTH:
            continue
        found.add(value)
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in {"bearer", "basic"} and len(token) >= _MIN_SECRET_LENGTH:
            found.add(token)
    # Longest first: a token inside its "Bearer …" value is replaced with the whole value.
    return tuple(sorted(found, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``.

    The last line of defence for messages that quote a server's bytes: a server (or a proxy)
    that echoes the request's headers must not make the key appear in an exception.
    """
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


# --- responses to errors -----------------------------------------------------------------------


def request_id_of(headers: HeaderMap) -> str | None:
    """Return the server's request id, from ``x-request-id`` or a provider's equivalent."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _decode_body(body: bytes) -> object:
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


def _error_object(body: object) -> Mapping[str, Any] | None:
    """Find the error object in the shapes servers send (docs/compat.md)."""
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error")
    if isinstance(inner, Mapping):
        return inner  # OpenAI, Azure (with innererror), OpenAI through Portkey
    if isinstance(inner, str):
        return {"message": inner}
    if "message" in body:
        return body  # Portkey's own {"status": "failure", "message": ...}
    return None


def _message_of(status: int, body: object, error: Mapping[str, Any] | None) -> str:
    if error is not None and error.get("message"):
        return str(error["message"])
    if isinstance(body, str) and body.strip():
        text = body.strip()
        return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "…"
    if body is not None:
        return orjson.dumps(body).decode()[:_MESSAGE_LIMIT]
    return f"HTTP {status} with no body"


def error_from_response(
    response: Response,
    *,
    method: str | None = None,
    url: str | None = None,
    outcome_unknown: bool = False,
) -> errors.APIStatusError:
    """Turn an error response into the matching ``APIStatusError`` subclass."""
    body = _decode_body(response.body)
    error = _error_object(body)
    message = _message_of(response.status, body, error)
    if outcome_unknown:
        where = f"{method} {url}: " if method and url else ""
        message = f"{where}{message}; {errors.OUTCOME_UNKNOWN_HINT}"
    if response.status >= _SERVER_ERROR:
        cls: type[errors.APIStatusError] = errors.InternalServerError
    else:
        cls = _STATUS_ERRORS.get(response.status, errors.APIStatusError)
    return cls(
        message,
        status_code=response.status,
        request_id=request_id_of(response.headers),
        headers=response.headers,
        body=body,
        error=error,
        method=method,
        url=url,
        outcome_unknown=outcome_unknown,
    )


# --- retry decisions ---------------------------------------------------------------------------


@attrs.frozen
class RetryVerdict:
    """What to do after a failed attempt.

    Attributes:
        retry: Whether to send the request again (attempts left permitting).
        outcome_unknown: The request is not safe to repeat and the server may have acted on it.
    """

    retry: bool
    outcome_unknown: bool = False


def retry_verdict(request: Request, status: int, headers: HeaderMap) -> RetryVerdict:
    """Decide whether an error status is worth another attempt of ``request``.

    A safe request (GET, DELETE) is retried on 408, 409, 429 and 5xx, and on anything the server
    marks ``x-should-retry: true``; ``x-should-retry: false`` stops it.

    A request that is not safe to repeat (create, cancel, pause, resume, upload) is treated by
    what the status proves. After a 5xx or a 408 the server may have acted on it, so its outcome
    is unknown and it is never sent again, whatever ``x-should-retry`` says: docs/api.md promises
    that a 5xx on a create raises with the outcome unknown, and a second job is worse than an
    error.
    Any other status is a refusal, which proves nothing was done: such an answer is retried on a
    429 or when the server says ``x-should-retry: true``, with the same ``Idempotency-Key``
    (docs/compat.md, "Retries, rate limits and duplicates").
    """
    should = (headers.get("x-should-retry") or "").lower()
    if request.is_safe:
        retryable = status in _RETRYABLE_STATUS or status >= _SERVER_ERROR
        return RetryVerdict(retry=should == "true" or (retryable and should != "false"))
    if status >= _SERVER_ERROR or status == _REQUEST_TIMEOUT:
        return RetryVerdict(retry=False, outcome_unknown=True)
    if should == "true":
        return RetryVerdict(retry=True)
    return RetryVerdict(retry=status == _TOO_MANY_REQUESTS and should != "false")


def redirect_error(response: Response, *, method: str, url: str) -> errors.APIStatusError:
    """Turn a 3xx answer into an error: an API client never follows a redirect.

    Following one would send the credentials (aiohttp strips only ``Authorization``, not
    ``api-key`` or the ``x-portkey-*`` keys) and, on a 307 / 308, a create's body to another
    origin; a 302 would turn a create into a GET. openai-python and the Standard Webhooks spec
    treat a 3xx as an answer too. The error names the ``Location`` so the base URL can be fixed.
    """
    location = response.headers.get("Location")
    try:
        phrase = f" {HTTPStatus(response.status).phrase}"
    except ValueError:
        phrase = ""
    target = f" to {location[:_MESSAGE_LIMIT]}" if location else " without a Location"
    message = (
        f"{method} {url}: the server answered {response.status}{phrase}, a redirect{target}; "
        "redirects are not followed (they could carry the API key or a create elsewhere): "
        "point base_url at the URL that answers"
    )
    return errors.APIStatusError(
        message,
        status_code=response.status,
        request_id=request_id_of(response.headers),
        headers=response.headers,
        body=_decode_body(response.body),
        method=method,
        url=url,
    )


def is_redirect(status: int) -> bool:
    """Whether a status is a 3xx, which the client reports instead of following."""
    return _FIRST_REDIRECT <= status < _FIRST_ERROR


def deleted_on_retry(request: Request, status: int, *, earlier_may_have_landed: bool) -> bool:
    """Whether a 404 answers a DELETE whose earlier attempt may already have deleted the object.

    A DELETE retried after a cut or a 5xx gets a 404 when its first attempt did the work; the
    delete succeeded, so the call returns the deleted record instead of a misleading NotFound.
    """
    return request.method == "DELETE" and status == _NOT_FOUND and earlier_may_have_landed


def connection_error_verdict(request: Request, exc: errors.APIConnectionError) -> RetryVerdict:
    """Decide whether a connection failure of ``request`` is worth another attempt."""
    if request.is_safe or not exc.may_have_reached_server:
        return RetryVerdict(retry=True)
    return RetryVerdict(retry=False, outcome_unknown=True)


def parse_retry_after(headers: HeaderMap, now: float | None = None) -> float | None:
    """Return the server's requested wait in seconds, or None when it gave none (or nonsense).

    ``retry-after-ms`` is read first (OpenAI's own, finer header), then ``Retry-After`` as seconds
    or as an HTTP date.
    """
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            pass
        else:
            if math.isfinite(value) and value >= 0:
                return value
    header = headers.get("retry-after")
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            # RFC 9110: HTTP dates are GMT; the asctime form parses without a zone.
            when = when.replace(tzinfo=dt.UTC)
        now = time.time() if now is None else now
        return max(0.0, when.timestamp() - now)
    return value if math.isfinite(value) and value >= 0 else None


def backoff_delay(attempt: int, backoff: Backoff, rng: random.Random | None = None) -> float:
    """Return the sleep before retry number ``attempt`` (from 0) when the server gave no hint."""
    base = min(backoff.maximum, backoff.initial * (2.0**attempt))
    jitter = (rng or random).random() * backoff.jitter * base
    return max(0.0, base - jitter)


def retry_delay(
    attempt: int,
    headers: HeaderMap | None,
    backoff: Backoff,
    *,
    now: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Return how long to sleep before retry number ``attempt``, or None to stop retrying.

    A server hint wins over the back-off; a hint longer than ``backoff.max_retry_after`` stops the
    retries, because retrying sooner than asked would only be refused again.
    """
    hint = parse_retry_after(headers, now) if headers is not None else None
    # A hint of 0 (or a date in the past) is no hint: retrying at once would only hammer a
    # server that is refusing us, so the back-off decides (openai-python reads it the same way).
    if hint is not None and hint > 0:
        return hint if hint <= backoff.max_retry_after else None
    return backoff_delay(attempt, backoff, rng)


# --- pagination --------------------------------------------------------------------------------


class HasId(Protocol):
    """Anything with an ``id``: every paginated item."""

    @property
    def id(self) -> str: ...


def with_range(request: Request, offset: int) -> Request:
    """Return ``request`` asking for the bytes from ``offset`` on (a resumed download)."""
    if offset <= 0:
        return request
    return attrs.evolve(request, headers={**request.headers, "Range": f"bytes={offset}-"})


def next_cursor(data: list[Any], has_more: bool | None, last_id: str | None) -> str | None:
    """Return the ``after`` cursor of the next page, or None when this page is the last.

    The last page is the one with ``has_more`` false or absent, or with no items (a server that
    says ``has_more: true`` with an empty page would otherwise loop forever).
    """
    if not has_more or not data:
        return None
    if last_id:
        return last_id
    last: HasId = data[-1]
    return last.id


# --- the transport seam ------------------------------------------------------------------------


@attrs.frozen
class AttemptTimeout:
    """The limits of one attempt: times in seconds, and the size of the answer (None: no limit).

    Attributes:
        connect: Getting a connection.
        read: The longest wait for the next bytes of the answer.
        total: The whole attempt.
        max_body: The most bytes a JSON answer may declare or decode to; downloads have none.
    """

    connect: float | None
    read: float | None
    total: float | None
    max_body: int | None = None


class Transport(Protocol):
    """What the client needs from a transport: send one request, and close.

    ``send`` raises ``APIConnectionError`` / ``APITimeoutError`` (never a library's own exception)
    and returns any status, error statuses included; the client decides what they mean.
    """

    async def send(self, request: Request, limits: AttemptTimeout) -> Response:
        """Send ``request`` once and read the whole answer."""
        ...

    async def stream(
        self, request: Request, limits: AttemptTimeout, sink: DownloadSink
    ) -> Response:
        """Send ``request``; a 2xx body goes to ``sink`` in chunks, any other is read whole.

        A 206 answer appends to what the sink holds; any other 2xx restarts it.
        """
        ...

    async def aclose(self) -> None:
        """Release the connections."""
        ...
