"""The emulator's check of a training file, run in ``validating_files``.

A compact version of the real service's checks: JSON lines, the shape each method needs, roles,
an assistant turn, at least ``MIN_EXAMPLES`` examples. It stops at the first problem, as the
service's error message names one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MIN_EXAMPLES", "TrainingFileReport", "check_training_file"]

MIN_EXAMPLES: Final = 10
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@attrs.frozen
class TrainingFileReport:
    """What the check found: the first problem (or None), the examples and a token estimate."""

    problem: str | None
    examples: int
    tokens: int


def _message_problem(messages: object, where: str, *, need_assistant: bool) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f"{where}: 'messages' must be a non-empty list"
    has_assistant = False
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"{where}: messages[{index}] must be an object"
        role = message.get("role")
        if role not in _ROLES:
            return f"{where}: messages[{index}] has an unknown role {role!r}"
        content = message.get("content")
        if role == "assistant":
            has_assistant = True
        if content in (None, "", []) and not message.get("tool_calls"):
            return f"{where}: messages[{index}] has empty content"
    if need_assistant and not has_assistant:
        return f"{where}: no assistant message to learn from"
    return None


def _example_problem(example: Any, where: str, method: str) -> str | None:
    if not isinstance(example, dict):
        return f"{where}: each line must be a JSON object"
    if method == "dpo":
        for key in ("input", "preferred_output", "non_preferred_output"):
            if key not in example:
                needed = "input, preferred_output and non_preferred_output"
                return f"{where}: missing {key!r} (DPO examples need {needed})"
        inner = example["input"]
        messages = inner.get("messages") if isinstance(inner, dict) else None
        return _message_problem(messages, where, need_assistant=False)
    return _message_problem(example.get("messages"), where, need_assistant=method == "supervised")


def check_training_file(path: Path, method: str = "supervised") -> TrainingFileReport:
    """Check a JSONL training file line by line, reading it as a stream."""
    examples = 0
    characters = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"line {number}"
            try:
                example = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return TrainingFileReport(f"{where}: not valid JSON", examples, characters // 4)
            problem = _example_problem(example, where, method)
            if problem is not None:
                return TrainingFileReport(problem, examples, characters // 4)
            examples += 1
            characters += len(raw)
    if examples < MIN_EXAMPLES:
        return TrainingFileReport(
            f"the file has {examples} examples; at least {MIN_EXAMPLES} are required",
            examples,
            characters // 4,
        )
    return TrainingFileReport(None, examples, characters // 4)
