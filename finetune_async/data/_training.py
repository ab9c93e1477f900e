"""Checking a JSONL training file before a fine-tuning job fails on it in ``validating_files``.

``validate_training_file`` reads the file as a stream of lines (flat memory whatever its size) and
reports every problem with its line number, plus a summary. The emulator runs the same check in
its ``validating_files`` phase, so a file gets the same verdict locally and there.

The rules, one message each (``messages[2]`` names the message a problem is about; DPO examples
say ``input.messages[0]``, ``preferred_output[0]`` or ``non_preferred_output[0]``):

Every method:
    - a blank line is skipped with a warning (it is not an example; line numbers still count it,
      so they are the file's own);
    - a line that is not valid JSON (``invalid JSON at column C: reason``; a line that is not
      UTF-8 says so);
    - a line that is valid JSON but not an object;
    - a message that is not an object, has no ``role``, or has a role other than ``system``,
      ``developer``, ``user``, ``assistant``, ``tool`` or ``function``;
    - a message whose ``content`` is missing, null, blank or an empty list, unless it is an
      assistant message carrying ``tool_calls`` or a ``function_call``;
    - a ``content`` that is neither a string nor a list of content parts;
    - a ``weight`` on a message that is not the assistant's, or a weight other than the integer
      0 or 1 (the API's ``FineTuneChatCompletionRequestAssistantMessage``);
    - an example longer than ``max_example_tokens`` (estimated): a warning, since the service
      cuts it to the model's context rather than failing;
    - no example at all, or fewer than ``MIN_EXAMPLES`` (10, the service's minimum): about the
      whole file (``line`` is None).

Supervised (the chat format): a ``messages`` key holding a non-empty list, with at least one
assistant message that is trained on (weight absent or 1): the model learns from nothing else.

DPO (the preference format): ``input`` is an object with a non-empty ``messages`` list, and
``preferred_output`` and ``non_preferred_output`` are each a non-empty list of assistant messages.

Reinforcement: a non-empty ``messages`` list whose last message is the user's (the prompt the
model answers, as OpenAI's and Azure's reinforcement fine-tuning guides require). ``messages``
and ``tools`` are reserved; every other top-level key is a reference field for the grader and is
not checked.

Token counts are rough: a quarter of the characters of the messages' text (string contents,
the ``text`` of content parts, tool and function call names and arguments), rounded up. They
show an example's size and a file's cost in order of magnitude, not a bill.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any, Final

import attrs
import orjson

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "MAX_EXAMPLE_TOKENS",
    "MAX_PROBLEMS",
    "MIN_EXAMPLES",
    "TRAINING_METHODS",
    "Problem",
    "Severity",
    "TrainingFileReport",
    "TrainingFileSummary",
    "validate_training_file",
    "validate_training_stream",
]

#: The fewest examples the service accepts in a training file.
MIN_EXAMPLES: Final = 10
#: The most tokens one example holds before the service cuts it (gpt-4o-mini's training context).
MAX_EXAMPLE_TOKENS: Final = 65_536
#: The most problems a report keeps: a file bad on every line still takes flat memory.
MAX_PROBLEMS: Final = 1000
#: The fine-tuning methods whose file format is checked.
TRAINING_METHODS: Final = ("supervised", "dpo", "reinforcement")

_ROLES: Final = ("system", "developer", "user", "assistant", "tool", "function")
_DPO_OUTPUTS: Final = ("preferred_output", "non_preferred_output")
# Big enough that reading costs few calls, small enough to be nothing next to the interpreter.
_CHUNK: Final = 1 << 20
_SHOWN: Final = 40


class Severity(StrEnum):
    """How bad a problem is: an ``error`` fails the job, a ``warning`` does not."""

    ERROR = "error"
    WARNING = "warning"


@attrs.frozen
class Problem:
    """One thing wrong with a training file.

    Attributes:
        line: The line it is on, counting from 1; None for the whole file (empty, too few
            examples).
        message: What is wrong, in words.
        severity: ``Severity.ERROR`` (the job would fail) or ``Severity.WARNING``.
    """

    line: int | None
    message: str
    severity: Severity = Severity.ERROR

    def render(self, path: str) -> str:
        """Return ``PATH:LINE: message`` (``PATH: message`` for the whole file), as compilers do."""
        where = path if self.line is None else f"{path}:{self.line}"
        return f"{where}: {self.message}"


@attrs.frozen
class TrainingFileSummary:
    """What a training file holds, counted while it was checked.

    Attributes:
        examples: Non-blank lines: each is one example, valid or not.
        lines: Every line read, blank ones included.
        estimated_tokens: A rough token count of every example (characters / 4).
        longest_example_tokens: The rough token count of the longest example.
        longest_example_line: The line of the longest example, or None when there is none.
        error_count: Errors found, the ones beyond ``MAX_PROBLEMS`` included.
        warning_count: Warnings found, likewise.
    """

    examples: int
    lines: int
    estimated_tokens: int
    longest_example_tokens: int
    longest_example_line: int | None
    error_count: int
    warning_count: int


@attrs.frozen
class TrainingFileReport:
    """The verdict on a training file: every problem (the first ``MAX_PROBLEMS``) and a summary.

    Attributes:
        path: The file's path as given (or the upload's name when checked from memory).
        method: The fine-tuning method whose format was checked.
        problems: In line order, then the problems about the whole file; past ``MAX_PROBLEMS``
            a last whole-file problem says how many more were found.
        summary: The counts (``TrainingFileSummary``).
    """

    path: str
    method: str
    problems: list[Problem]
    summary: TrainingFileSummary

    @property
    def ok(self) -> bool:
        """True when the file has no error (warnings allowed): a job would get past validation."""
        return self.summary.error_count == 0

    @property
    def errors(self) -> list[Problem]:
        """The problems that fail a job."""
        return [p for p in self.problems if p.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """The problems worth a look that do not fail a job."""
        return [p for p in self.problems if p.severity == Severity.WARNING]

    def rendered(self, *, limit: int | None = None) -> list[str]:
        """Return the problems as ``PATH:LINE: message`` lines, the first ``limit`` of them."""
        shown = self.problems if limit is None else self.problems[:limit]
        return [problem.render(self.path) for problem in shown]


# --- one example ---------------------------------------------------------------------------------


def _show(value: object) -> str:
    """A value as JSON, cut short: what a message quotes of the user's data."""
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _calls_a_tool(message: dict[str, Any]) -> bool:
    return bool(message.get("tool_calls") or message.get("function_call"))


def _content_problems(message: dict[str, Any], where: str) -> Iterator[str]:
    content = message.get("content")
    empty = content is None or content == [] or (isinstance(content, str) and not content.strip())
    if empty:
        # An assistant turn that only calls a tool has nothing else to say.
        if not (message.get("role") == "assistant" and _calls_a_tool(message)):
            yield f"{where}: empty content"
    elif not isinstance(content, str | list):
        kind = _json_type(content)
        yield f"{where}: content must be a string or a list of content parts, got {kind}"


def _weight_problems(message: dict[str, Any], where: str) -> Iterator[str]:
    if "weight" not in message:
        return
    weight = message["weight"]
    if message.get("role") != "assistant":
        yield f'{where}: "weight" is only allowed on assistant messages'
    elif type(weight) is not int or weight not in {0, 1}:
        yield f'{where}: "weight" must be 0 or 1, got {_show(weight)}'


def _message_problems(message: object, where: str, *, assistant: bool = False) -> Iterator[str]:
    """Problems of one chat message; ``assistant`` when only an assistant message will do."""
    if not isinstance(message, dict):
        yield f"{where}: must be an object, got {_json_type(message)}"
        return
    role = message.get("role")
    if "role" not in message:
        yield f'{where}: missing "role"'
    elif role not in _ROLES:
        yield f"{where}: unknown role {_show(role)} (expected one of {', '.join(_ROLES)})"
    elif assistant and role != "assistant":
        yield f"{where}: must be an assistant message, got role {_show(role)}"
    yield from _content_problems(message, where)
    yield from _weight_problems(message, where)


def _non_empty_list(value: object) -> list[Any] | None:
    return value if isinstance(value, list) and value else None


def _is_trained_assistant(message: object) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and message.get("weight", 1) != 0
    )


def _chat_problems(example: dict[str, Any], method: str) -> Iterator[str]:
    if "messages" not in example:
        yield 'missing "messages"'
        return
    messages = _non_empty_list(example["messages"])
    if messages is None:
        yield '"messages" must be a non-empty list'
        return
    for index, message in enumerate(messages):
        yield from _message_problems(message, f"messages[{index}]")
    if method == "supervised" and not any(map(_is_trained_assistant, messages)):
        yield "no assistant message to learn from"
    last = messages[-1]
    if method == "reinforcement" and isinstance(last, dict) and last.get("role") != "user":
        yield (
            f"messages[{len(messages) - 1}]: the last message must be the user's prompt,"
            f" got role {_show(last.get('role'))}"
        )


def _dpo_problems(example: dict[str, Any]) -> Iterator[str]:
    inner = example.get("input")
    if "input" not in example:
        yield 'missing "input"'
    elif not isinstance(inner, dict) or _non_empty_list(inner.get("messages")) is None:
        yield '"input" must be an object with a non-empty "messages" list'
    else:
        for index, message in enumerate(inner["messages"]):
            yield from _message_problems(message, f"input.messages[{index}]")
    for key in _DPO_OUTPUTS:
        if key not in example:
            yield f'missing "{key}"'
            continue
        output = _non_empty_list(example[key])
        if output is None:
            yield f'"{key}" must be a non-empty list of assistant messages'
            continue
        for index, message in enumerate(output):
            yield from _message_problems(message, f"{key}[{index}]", assistant=True)


def _example_problems(example: dict[str, Any], method: str) -> Iterator[str]:
    if method == "dpo":
        return _dpo_problems(example)
    return _chat_problems(example, method)


def _text_length(value: object) -> int:
    return len(value) if isinstance(value, str) else 0


def _message_characters(message: object) -> int:
    if not isinstance(message, dict):
        return 0
    content = message.get("content")
    count = _text_length(content)
    if isinstance(content, list):
        count += sum(_text_length(p.get("text")) for p in content if isinstance(p, dict))
    calls = message.get("tool_calls")
    functions = (
        [c.get("function") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    )
    functions.append(message.get("function_call"))
    for function in functions:
        if isinstance(function, dict):
            count += _text_length(function.get("name")) + _text_length(function.get("arguments"))
    return count


def _example_messages(example: dict[str, Any], method: str) -> Iterator[object]:
    if method != "dpo":
        messages = example.get("messages")
        yield from messages if isinstance(messages, list) else ()
        return
    inner = example.get("input")
    messages = inner.get("messages") if isinstance(inner, dict) else None
    yield from messages if isinstance(messages, list) else ()
    for key in _DPO_OUTPUTS:
        output = example.get(key)
        yield from output if isinstance(output, list) else ()


def _estimated_tokens(example: dict[str, Any], method: str) -> int:
    characters = sum(map(_message_characters, _example_messages(example, method)))
    return -(-characters // 4)


def _parse_problem(error: orjson.JSONDecodeError) -> str:
    if "UTF-8" in error.msg and "not valid" in error.msg:
        return "invalid JSON: the line is not valid UTF-8 text"
    return f"invalid JSON at column {error.colno}: {error.msg}"


# --- the file ------------------------------------------------------------------------------------


def _lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of a binary stream, without their newline, read a chunk at a time.

    Works on any object with ``read(n)`` (a raw file object too, whose line iteration reads byte
    by byte). JSON strings cannot hold a raw newline, so splitting on it never cuts an example.
    """
    pending: list[bytes] = []
    while chunk := handle.read(_CHUNK):
        if b"\n" not in chunk:
            # A line longer than a chunk: join its pieces once, when it ends.
            pending.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if pending:
            lines[0] = b"".join([*pending, lines[0]])
            pending.clear()
        pending.append(lines.pop())
        yield from lines
    tail = b"".join(pending)
    if tail:
        yield tail


@attrs.define
class _Tally:
    """The counters and the kept problems of a check in progress."""

    problems: list[Problem] = attrs.field(factory=list)
    errors: int = 0
    warnings: int = 0
    examples: int = 0
    lines: int = 0
    tokens: int = 0
    longest: int = 0
    longest_line: int | None = None
    dropped: int = 0
    dropped_errors: int = 0

    def add(self, line: int | None, message: str, severity: Severity = Severity.ERROR) -> None:
        error = severity == Severity.ERROR
        self.errors += error
        self.warnings += not error
        # Problems about the whole file are few and always kept.
        if len(self.problems) < MAX_PROBLEMS or line is None:
            self.problems.append(Problem(line, message, severity))
        else:
            self.dropped_errors += error
            self.dropped += 1

    def note_dropped(self) -> None:
        """Say how many problems were left out, as an error if any of them is one."""
        if self.dropped:
            severity = Severity.ERROR if self.dropped_errors else Severity.WARNING
            message = f"{self.dropped:,} more problems not listed (a report keeps {MAX_PROBLEMS:,})"
            self.problems.append(Problem(None, message, severity))

    def count(self, line: int, tokens: int) -> None:
        self.tokens += tokens
        if tokens > self.longest:
            self.longest, self.longest_line = tokens, line


def _check_method(method: object) -> str:
    if not isinstance(method, str) or method not in TRAINING_METHODS:
        msg = f"method: must be one of {', '.join(map(repr, TRAINING_METHODS))}, got {method!r}"
        raise InvalidParameterError(msg, param="method")
    return method


def _check_line(tally: _Tally, number: int, raw: bytes, method: str, max_tokens: int) -> None:
    tally.examples += 1
    try:
        example = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        tally.add(number, _parse_problem(error))
        return
    if not isinstance(example, dict):
        tally.add(number, f"expected a JSON object, got {_json_type(example)}")
        return
    for message in _example_problems(example, method):
        tally.add(number, message)
    tokens = _estimated_tokens(example, method)
    tally.count(number, tokens)
    if tokens > max_tokens:
        tally.add(
            number,
            f"about {tokens:,} tokens, more than the {max_tokens:,} an example holds;"
            " the service will cut it short",
            Severity.WARNING,
        )


def validate_training_stream(
    handle: IO[bytes],
    *,
    name: str,
    method: str = "supervised",
    max_example_tokens: int = MAX_EXAMPLE_TOKENS,
) -> TrainingFileReport:
    """Check training data read from a binary stream (``read(n)`` is all it uses).

    The same check as ``validate_training_file``, for data that is not a file on disk (bytes,
    an open file object); the stream is read to its end and not closed.

    Args:
        handle: The data, read from its current position.
        name: What the report calls the data (its ``path``).
        method: ``"supervised"``, ``"dpo"`` or ``"reinforcement"``.
        max_example_tokens: Warn about examples estimated longer than this.

    Raises:
        InvalidParameterError: An unknown method.
    """
    method = _check_method(method)
    tally = _Tally()
    for number, raw in enumerate(_lines(handle), start=1):
        tally.lines = number
        if not raw or raw.isspace():
            tally.add(number, "blank line, skipped", Severity.WARNING)
            continue
        _check_line(tally, number, raw, method, max_example_tokens)
    if tally.examples == 0:
        tally.add(None, "the file has no examples")
    elif tally.examples < MIN_EXAMPLES:
        plural = "" if tally.examples == 1 else "s"
        tally.add(
            None,
            f"the file has {tally.examples} example{plural}; at least {MIN_EXAMPLES} are required",
        )
    tally.note_dropped()
    summary = TrainingFileSummary(
        examples=tally.examples,
        lines=tally.lines,
        estimated_tokens=tally.tokens,
        longest_example_tokens=tally.longest,
        longest_example_line=tally.longest_line,
        error_count=tally.errors,
        warning_count=tally.warnings,
    )
    return TrainingFileReport(path=name, method=method, problems=tally.problems, summary=summary)


def validate_training_file(
    path: str | os.PathLike[str],
    method: str = "supervised",
    *,
    max_example_tokens: int = MAX_EXAMPLE_TOKENS,
) -> TrainingFileReport:
    """Check a JSONL training file for ``method``, line by line, with flat memory.

    Every problem is reported with its line (see the module's documentation for the rules);
    a bad file is reported, not raised: look at ``report.ok`` and ``report.problems``.

    Args:
        path: The JSONL file.
        method: ``"supervised"`` (the chat format), ``"dpo"`` or ``"reinforcement"``.
        max_example_tokens: Warn about examples estimated longer than this.

    Returns:
        The ``TrainingFileReport``: the problems (at most ``MAX_PROBLEMS`` kept) and a summary.

    Raises:
        InvalidParameterError: An unknown method.
        OSError: The file cannot be read (missing, a folder, no permission).
    """
    method = _check_method(method)
    with open(path, "rb") as handle:  # noqa: PTH123 - str and PathLike alike
        return validate_training_stream(
            handle, name=os.fspath(path), method=method, max_example_tokens=max_example_tokens
        )


class TrainingFileError(InvalidParameterError):
    """A training file that ``files.create(..., validate=...)`` found bad: nothing was uploaded.

    The message lists the first problems as ``PATH:LINE: message``. It is defined here, beside
    its report, so that ``finetune_async.errors`` stays a leaf; ``finetune_async`` re-exports it.

    Attributes:
        report: The whole ``TrainingFileReport``: every problem, and the summary.
    """

    report: TrainingFileReport

    def __init__(self, message: str, *, report: TrainingFileReport, param: str = "file") -> None:
        super().__init__(message, param=param)
        self.report = report
