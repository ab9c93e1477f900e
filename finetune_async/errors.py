"""Every exception finetune_async raises.

The tree::

    FinetuneError
    ├── APIError                     a request was attempted
    │   ├── APIConnectionError       no usable HTTP response (refused, reset, dropped)
    │   │   └── APITimeoutError      a per-attempt or total timeout expired
    │   ├── APIStatusError           the server answered with a 4xx / 5xx status
    │   │   ├── BadRequestError              400
    │   │   ├── AuthenticationError          401
    │   │   ├── PermissionDeniedError        403
    │   │   ├── NotFoundError                404
    │   │   ├── ConflictError                409
    │   │   ├── UnprocessableEntityError     422
    │   │   ├── RateLimitError               429
    │   │   └── InternalServerError          >= 500
    │   └── APIResponseValidationError  a 2xx answer that is not the promised shape
    ├── InvalidParameterError        bad input caught before any request (also a ValueError)
    │   └── TrainingFileError        a training file that failed files.create(validate=...);
    │                                defined in finetune_async.data, beside its report
    ├── WaitTimeoutError             a wait for a terminal status ran out of time
    ├── WebhookVerificationError     a webhook delivery that failed verification or is not an
    │                                event (also a ValueError)
    └── StoreError                   a tracker's store that cannot be used; defined in
                                     finetune_async.tracking, beside the stores

This module is a leaf: it imports nothing of the package, because every layer raises from it
(docs/architecture.md). ``TrainingFileError`` carries a ``finetune_async.data`` report, so it is
defined there and re-exported from ``finetune_async``.

Class names and the ``status_code`` / ``request_id`` / ``body`` attributes follow the official
``openai`` SDK, so code ported from it keeps its ``except`` clauses. No aiohttp or cattrs exception
crosses the public boundary: the transport and the converter call sites translate them here.

``outcome_unknown`` is true on an error raised for a request that is not safe to repeat (create,
cancel, pause, resume) when the server may already have acted on it: such a request is never
retried blindly, because a second job or a second cancel is worse than an error (docs/compat.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "FinetuneError",
    "InternalServerError",
    "InvalidParameterError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "WaitTimeoutError",
    "WebhookVerificationError",
]

OUTCOME_UNKNOWN_HINT = (
    "the outcome is unknown: the server may have carried it out, so it was not retried "
    "(a blind retry could duplicate it); check its state before trying again"
)


class FinetuneError(Exception):
    """The base of every exception raised by finetune_async."""


class APIError(FinetuneError):
    """A request to the API was attempted and did not give a usable result.

    Attributes:
        message: What went wrong, in words.
        method: The HTTP method of the request, e.g. ``"POST"``.
        url: The URL of the request.
        outcome_unknown: True when the server may have carried out a request that is not safe to
            repeat; it was not retried.
    """

    message: str
    method: str | None
    url: str | None
    outcome_unknown: bool

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url
        self.outcome_unknown = outcome_unknown


class APIConnectionError(APIError):
    """No usable HTTP response arrived: the connection failed, was reset or was dropped.

    Attributes:
        may_have_reached_server: False only when the request certainly never left (for example the
            connection was refused); then repeating it is always safe.
    """

    may_have_reached_server: bool

    def __init__(
        self,
        message: str = "Connection error.",
        *,
        method: str | None = None,
        url: str | None = None,
        may_have_reached_server: bool = True,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, method=method, url=url, outcome_unknown=outcome_unknown)
        self.may_have_reached_server = may_have_reached_server


class APITimeoutError(APIConnectionError):
    """A per-attempt timeout or the call's total timeout expired."""

    def __init__(
        self,
        message: str = "Request timed out.",
        *,
        method: str | None = None,
        url: str | None = None,
        may_have_reached_server: bool = True,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(
            message,
            method=method,
            url=url,
            may_have_reached_server=may_have_reached_server,
            outcome_unknown=outcome_unknown,
        )


class APIStatusError(APIError):
    """The server answered with an error status (4xx or 5xx).

    Attributes:
        status_code: The HTTP status.
        request_id: The server's ``x-request-id`` (or the provider's equivalent), for support.
        headers: The response headers.
        body: The response body: parsed JSON when it was JSON, else the text.
        error: The parsed error object (OpenAI's ``body["error"]``, Portkey's body), or None.
        code: ``error["code"]`` when present.
        param: ``error["param"]`` when present.
        type: ``error["type"]`` when present.
    """

    status_code: int
    request_id: str | None
    headers: Mapping[str, str]
    body: object
    error: Mapping[str, Any] | None
    code: str | None
    param: str | None
    type: str | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: object = None,
        error: Mapping[str, Any] | None = None,
        method: str | None = None,
        url: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, method=method, url=url, outcome_unknown=outcome_unknown)
        self.status_code = status_code
        self.request_id = request_id
        self.headers = headers if headers is not None else {}
        self.body = body
        self.error = error
        self.code = _str_or_none(error, "code")
        self.param = _str_or_none(error, "param")
        self.type = _str_or_none(error, "type")

    def __str__(self) -> str:
        text = f"Error code: {self.status_code} - {self.message}"
        if self.request_id:
            text += f" (request id: {self.request_id})"
        return text


class BadRequestError(APIStatusError):
    """400: the server rejected the request as malformed or invalid."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""


class NotFoundError(APIStatusError):
    """404: no such job, file, checkpoint or model (or the wrong base URL)."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the resource's current state."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests (or tokens); back off and try later."""


class InternalServerError(APIStatusError):
    """A 5xx status: the server (or a gateway in front of it) failed."""


class APIResponseValidationError(APIError):
    """A successful answer whose body is not the shape the API promises.

    Attributes:
        status_code: The HTTP status of the answer.
        request_id: The server's request id, if it sent one.
        body: The raw body (bytes decoded as text where possible).
    """

    status_code: int
    request_id: str | None
    body: object

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: object = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body


class InvalidParameterError(FinetuneError, ValueError):
    """Bad input caught before any request was sent.

    Attributes:
        param: The dotted name of the offending parameter, e.g.
            ``"method.dpo.hyperparameters.beta"``.
    """

    param: str | None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class WaitTimeoutError(FinetuneError, TimeoutError):
    """A wait for a terminal status ran out of time; the last object seen is attached.

    Attributes:
        last: The last object seen before the time ran out, or None.
    """

    last: object

    def __init__(self, message: str, *, last: object = None) -> None:
        super().__init__(message)
        self.last = last


class WebhookVerificationError(FinetuneError, ValueError):
    """A webhook delivery failed verification, or its verified body is not an event.

    The message says which check failed (a missing header, a malformed timestamp, signature or
    secret, a timestamp outside the tolerance, no matching signature, a body that is not JSON or
    not an event). It never holds the secret, the signature or the body, so it is safe to log and
    to send back to the sender.

    Attributes:
        reason: The failed check as a short code: ``"missing_header"``, ``"malformed_header"``,
            ``"malformed_timestamp"``, ``"malformed_signature"``, ``"timestamp_too_old"``,
            ``"timestamp_too_new"``, ``"no_matching_signature"``, ``"malformed_secret"``,
            ``"malformed_body"``, ``"not_json"`` or ``"not_an_event"``.
    """

    reason: str | None

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


def _str_or_none(error: Mapping[str, Any] | None, key: str) -> str | None:
    if error is None:
        return None
    value = error.get(key)
    return None if value is None else str(value)
