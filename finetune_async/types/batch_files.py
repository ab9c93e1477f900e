"""Records of the Batch API's files: one request of an input file, one line of its results.

The line formats are OpenAI's (docs/api.md, "The emulator"): an input line is
``{"custom_id", "method", "url", "body"}``; an output or error line is
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from .batches import BatchError

__all__ = ["BatchRequest", "BatchResult"]

_SUCCESS: Final = range(200, 300)


@attrs.frozen
class BatchRequest:
    """One request of a batch input file.

    Attributes:
        custom_id: The caller's id of the request, unique within the batch; its result carries it.
        body: The JSON body the endpoint takes, e.g. ``{"model": ..., "messages": [...]}``.
        url: The endpoint, the same for every request of a batch (the batch's ``endpoint``).
        method: ``"POST"``, the only method the Batch API runs.
    """

    custom_id: str
    body: dict[str, Any]
    url: str = "/v1/chat/completions"
    method: str = "POST"


@attrs.frozen
class BatchResult:
    """The result of one request of a batch, from its output or error file.

    The line's ``response`` object is flattened into ``status_code``, ``request_id`` and
    ``body``; all three are None when the request never ran (``response: null``), and ``error``
    then says why (e.g. ``batch_expired``).

    Attributes:
        custom_id: The id the request was given in the input file.
        id: The service's id of this request (``batch_req_...``).
        status_code: The HTTP status the endpoint answered.
        request_id: The endpoint's request id, for support.
        body: The endpoint's JSON answer: a chat completion, or ``{"error": {...}}`` on a 4xx.
        error: Why the request did not run at all, or None.
    """

    custom_id: str
    id: str | None = None
    status_code: int | None = None
    request_id: str | None = None
    body: Any = None
    error: BatchError | None = None

    @property
    def ok(self) -> bool:
        """Whether the request ran and its endpoint answered with a 2xx status."""
        return self.error is None and self.status_code in _SUCCESS

    @property
    def error_message(self) -> str | None:
        """Why the request failed: the line's error, else the answer's ``error.message``."""
        if self.error is not None:
            return self.error.message or self.error.code or "the request did not run"
        if self.ok:
            return None
        answer = self.body.get("error") if isinstance(self.body, dict) else None
        message = answer.get("message") if isinstance(answer, dict) else None
        if isinstance(message, str):
            return message
        return f"status {self.status_code}"
