"""A batch's life cycle, computed from the clock like a job's (see ``_jobs``).

``validating`` parses the input file: a line that is not a request object, names another
endpoint or repeats a ``custom_id`` fails the whole batch, with ``errors`` listing each bad line
(as the real service does). ``in_progress`` answers one request per ``Timing.batch_request``
seconds: a deterministic response for a well-formed body, a 400 for a body the endpoint cannot
take (those go to the error file). ``finalizing`` then writes the output and error files in
OpenAI's batch line format.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._files import FileStore, StoredFile
    from ._ids import IdFactory
    from ._jobs import Timing

__all__ = ["BATCH_ENDPOINTS", "BatchSim"]

#: The endpoints the spec allows for a batch.
BATCH_ENDPOINTS: Final = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
COMPLETION_WINDOW_SECONDS: Final = 24 * 3600
TERMINAL: Final = frozenset({"failed", "completed", "expired", "cancelled"})
MAX_REQUESTS: Final = 50_000
_EMBEDDING_SIZE: Final = 8
_OK: Final = 200


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _tokens(value: object) -> int:
    return max(1, len(orjson.dumps(value)) // 4)


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else orjson.dumps(content).decode()
    return ""


def _answer(  # noqa: PLR0911 - one early answer per malformed body
    endpoint: str, body: dict[str, Any], custom_id: str, created: int
) -> tuple[int, dict[str, Any]]:
    """Return (status, body) of one request: deterministic for a given input."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return 400, _error_body("you must provide a model parameter", "model")
    tag = _digest(custom_id + orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()).hex()[:24]
    if endpoint == "/v1/chat/completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, _error_body("'messages' must be a non-empty array", "messages")
        text = f"Emulated answer to: {_last_user_text(messages)[:200]}"
        prompt, completion = _tokens(messages), _tokens(text)
        return _OK, {
            "id": f"chatcmpl-{tag}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    if endpoint == "/v1/embeddings":
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return 400, _error_body("'input' must be a string or a non-empty array", "input")
        data = []
        for index, item in enumerate(inputs):
            digest = _digest(orjson.dumps(item).decode())
            vector = [round(b / 255.0 - 0.5, 6) for b in digest[:_EMBEDDING_SIZE]]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = _tokens(inputs)
        return _OK, {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    if endpoint == "/v1/completions":
        prompt_value = body.get("prompt")
        if prompt_value is None:
            return 400, _error_body("you must provide a prompt parameter", "prompt")
        text = f" Emulated completion of: {str(prompt_value)[:200]}"
        prompt, completion = _tokens(prompt_value), _tokens(text)
        return _OK, {
            "id": f"cmpl-{tag}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    # The other endpoints get a generic deterministic object: enough to exercise the format.
    return _OK, {
        "id": f"resp-{tag}",
        "object": "emulated.response",
        "created": created,
        "model": model,
    }


def _error_body(message: str, param: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


class BatchSim:
    """One emulated batch."""

    def __init__(
        self,
        *,
        batch_id: str,
        input_file: StoredFile,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        created_at: float,
        ids: IdFactory,
        files: FileStore,
        timing: Timing,
        on_terminal: Callable[[str, str, float], None] | None = None,
    ) -> None:
        """Create the batch in ``validating``.

        ``on_terminal(event_type, batch_id, when)`` is called once, when the batch ends (the
        webhook sender listens).
        """
        self.id = batch_id
        self.input_file = input_file
        self.endpoint = endpoint
        self.completion_window = completion_window
        self.metadata = metadata
        self.created_at = created_at
        self.expires_at = created_at + COMPLETION_WINDOW_SECONDS
        self._ids = ids
        self._files = files
        self._timing = timing
        self._on_terminal = on_terminal
        self.status = "validating"
        self.stamps: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.output_file_id: str | None = None
        self.error_file_id: str | None = None
        self.model: str | None = None
        self._requests: list[tuple[str, dict[str, Any]]] = []
        self._results: list[tuple[str, int, dict[str, Any]]] = []
        self._phase_started = created_at
        self._cancel_started: float | None = None

    # --- schedule ------------------------------------------------------------------------------

    def sync(self, now: float) -> None:
        """Move the batch through every phase due by virtual time ``now``."""
        timing = self._timing
        while self.status not in TERMINAL:
            if self.status == "cancelling":
                started = now if self._cancel_started is None else self._cancel_started
                done_at = started + timing.batch_cancel
                if now < done_at:
                    return
                self._finish(done_at, "cancelled")
            elif self.status == "validating":
                done_at = self._phase_started + timing.batch_validate
                if now < done_at:
                    return
                self._validate(done_at)
            elif self.status == "in_progress":
                self._process_until(min(now, self.expires_at))
                if len(self._results) < len(self._requests):
                    if now >= self.expires_at:
                        self._finish(self.expires_at, "expired")
                    return
                done_at = self._phase_started + len(self._requests) * timing.batch_request
                self.status = "finalizing"
                self.stamps["finalizing_at"] = int(done_at)
                self._phase_started = done_at
            elif self.status == "finalizing":
                done_at = self._phase_started + timing.batch_finalize
                if now < done_at:
                    return
                self._finish(done_at, "completed")

    def next_due(self) -> float | None:
        """When ``sync`` next moves the batch to another phase; None once it ended."""
        timing = self._timing
        if self.status == "cancelling":
            return (self._cancel_started or self._phase_started) + timing.batch_cancel
        if self.status == "validating":
            return self._phase_started + timing.batch_validate
        if self.status == "in_progress":
            done = self._phase_started + len(self._requests) * timing.batch_request
            return min(done, self.expires_at)
        if self.status == "finalizing":
            return self._phase_started + timing.batch_finalize
        return None

    def _ended(self, when: float) -> None:
        if self._on_terminal is not None:
            self._on_terminal(f"batch.{self.status}", self.id, when)

    def _validate(self, when: float) -> None:
        try:
            self._read_requests()
        except OSError:
            # The input file was deleted while the batch waited to validate it.
            self._requests.clear()
            self.errors = [
                {
                    "code": "file_not_found",
                    "message": f"The input file {self.input_file.id} no longer exists.",
                    "param": "input_file_id",
                    "line": None,
                }
            ]
        self._after_validation(when)

    def _read_requests(self) -> None:
        seen: set[str] = set()
        with self.input_file.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                problem = self._line_problem(raw, seen)
                if isinstance(problem, str):
                    self.errors.append(
                        {
                            "code": "invalid_request",
                            "message": problem,
                            "param": None,
                            "line": number,
                        }
                    )
                else:
                    self._requests.append(problem)
        if not self._requests and not self.errors:
            self.errors.append(
                {
                    "code": "empty_file",
                    "message": "The input file has no requests.",
                    "param": None,
                    "line": None,
                }
            )
        if len(self._requests) > MAX_REQUESTS:
            self.errors.append(
                {
                    "code": "too_many_requests",
                    "message": f"A batch holds at most {MAX_REQUESTS} requests.",
                    "param": None,
                    "line": None,
                }
            )

    def _after_validation(self, when: float) -> None:
        if self.errors:
            self.status = "failed"
            self.stamps["failed_at"] = int(when)
            self._ended(when)
            return
        first_model = self._requests[0][1].get("model")
        self.model = first_model if isinstance(first_model, str) else None
        self.status = "in_progress"
        self.stamps["in_progress_at"] = int(when)
        self._phase_started = when

    def _line_problem(  # noqa: PLR0911 - one return per rule
        self, raw: bytes, seen: set[str]
    ) -> str | tuple[str, dict[str, Any]]:
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "the line is not valid JSON"
        if not isinstance(line, dict):
            return "each line must be a JSON object"
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return "missing 'custom_id'"
        if custom_id in seen:
            return f"duplicate custom_id {custom_id!r}: custom ids must be unique within a batch"
        seen.add(custom_id)
        if line.get("method") != "POST":
            return f"'method' must be 'POST', got {line.get('method')!r}"
        if line.get("url") != self.endpoint:
            return f"'url' {line.get('url')!r} does not match the batch endpoint {self.endpoint!r}"
        body = line.get("body")
        if not isinstance(body, dict):
            return "'body' must be a JSON object"
        return custom_id, body

    def _process_until(self, now: float) -> None:
        due = (
            math.floor((now - self._phase_started) / self._timing.batch_request)
            if now > self._phase_started
            else 0
        )
        target = min(len(self._requests), max(0, due))
        while len(self._results) < target:
            index = len(self._results)
            custom_id, body = self._requests[index]
            # Stamped with when this request's turn came, not with when someone looked.
            answered_at = self._phase_started + (index + 1) * self._timing.batch_request
            status, answer = _answer(self.endpoint, body, custom_id, int(min(answered_at, now)))
            self._results.append((custom_id, status, answer))

    def _finish(self, when: float, status: str) -> None:
        stamp = {"completed": "completed_at", "cancelled": "cancelled_at", "expired": "expired_at"}[
            status
        ]
        self.status = status
        self.stamps[stamp] = int(when)
        output: list[bytes] = []
        failed: list[bytes] = []
        for custom_id, code, answer in self._results:
            line = {
                "id": self._ids.new("batch_req", "_"),
                "custom_id": custom_id,
                "response": {
                    "status_code": code,
                    "request_id": self._ids.request_id(),
                    "body": answer,
                },
                "error": None,
            }
            (output if code == _OK else failed).append(orjson.dumps(line))
        if status == "expired":
            for custom_id, _ in self._requests[len(self._results) :]:
                line = {
                    "id": self._ids.new("batch_req", "_"),
                    "custom_id": custom_id,
                    "response": None,
                    "error": {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the "
                        "completion window expired.",
                    },
                }
                failed.append(orjson.dumps(line))
        if output:
            self.output_file_id = self._write(output, "output", when)
        if failed:
            self.error_file_id = self._write(failed, "errors", when)
        self._ended(when)

    def _write(self, lines: list[bytes], kind: str, when: float) -> str:
        stored = self._files.add_bytes(
            file_id=self._ids.new("file"),
            filename=f"batch_{self.id}_{kind}.jsonl",
            purpose="batch_output",
            data=b"\n".join(lines) + b"\n",
            created_at=int(when),
        )
        return stored.id

    # --- transitions a user asks for -------------------------------------------------------------

    def cancel(self, now: float) -> bool:
        """Start cancelling; False when the batch already ended."""
        self.sync(now)
        if self.status in TERMINAL or self.status == "cancelling":
            return self.status == "cancelling"
        self._process_until(now)
        self.status = "cancelling"
        self._cancel_started = now
        self.stamps["cancelling_at"] = int(now)
        return True

    # --- wire shape ------------------------------------------------------------------------------

    def request_counts(self) -> dict[str, int]:
        """Return ``total`` / ``completed`` / ``failed`` as the batch stands."""
        done = sum(1 for _, code, _ in self._results if code == _OK)
        failed = len(self._results) - done
        if self.status == "expired":
            failed += len(self._requests) - len(self._results)
        return {"total": len(self._requests), "completed": done, "failed": failed}

    def to_json(self) -> dict[str, Any]:
        """Return the ``batch`` object (absent timestamps are left out, as the spec types them)."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file.id,
            "completion_window": self.completion_window,
            "status": self.status,
            "created_at": int(self.created_at),
            "expires_at": int(self.expires_at),
            "request_counts": self.request_counts(),
            "metadata": self.metadata,
            **self.stamps,
        }
        if self.model is not None:
            out["model"] = self.model
        if self.errors:
            out["errors"] = {"object": "list", "data": self.errors}
        if self.output_file_id is not None:
            out["output_file_id"] = self.output_file_id
        if self.error_file_id is not None:
            out["error_file_id"] = self.error_file_id
        if self.status == "completed":
            prompt = sum(_tokens(body) for _, body in self._requests)
            completion = sum(_tokens(answer) for _, code, answer in self._results if code == _OK)
            out["usage"] = {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            }
        return out
