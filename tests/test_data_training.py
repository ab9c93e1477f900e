"""``finetune_async.data.validate_training_file``: the corpus, the summary, limits and memory.

The corpus in ``tests/payloads/training/`` has good files for each method and one bad file per
rule; ``expected.json`` there holds each file's method, example count and exact problems (line,
message, severity), and the CLI and emulator tests read the same table.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from finetune_async import InvalidParameterError
from finetune_async.data import (
    MAX_EXAMPLE_TOKENS,
    MIN_EXAMPLES,
    TRAINING_METHODS,
    Problem,
    Severity,
    TrainingFileReport,
    validate_training_file,
)
from finetune_async.data._training import MAX_PROBLEMS, validate_training_stream

CORPUS = Path(__file__).parent / "payloads" / "training"
EXPECTED: dict[str, dict[str, Any]] = orjson.loads((CORPUS / "expected.json").read_bytes())
#: Bound of the memory test's subprocess, in seconds.
BOUND = 120.0


def problems_of(report: TrainingFileReport) -> list[dict[str, Any]]:
    """A report's problems as the plain dicts ``expected.json`` holds."""
    return [
        {"line": p.line, "message": p.message, "severity": str(p.severity)} for p in report.problems
    ]


def chat_line(question: str = "What is 2 plus 2?", answer: str = "Four.") -> bytes:
    """One valid supervised example as a JSON line."""
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return orjson.dumps({"messages": messages}) + b"\n"


def write(tmp_path: Path, data: bytes, name: str = "train.jsonl") -> Path:
    """Write ``data`` to a file in ``tmp_path`` and return its path."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- the corpus -----------------------------------------------------------------------------------


def test_corpus_and_table_agree() -> None:
    """Every corpus file has an entry in expected.json and every entry a file."""
    files = sorted(p.name for p in CORPUS.glob("*.jsonl"))
    assert sorted(EXPECTED) == files


def test_corpus_has_good_files_for_every_method() -> None:
    """A good file per method, without any problem."""
    good = {entry["method"] for name, entry in EXPECTED.items() if name.startswith("good_")}
    assert set(TRAINING_METHODS) == good


def test_every_bad_file_breaks_exactly_one_rule() -> None:
    """Each bad_* file has one problem, an error, and no two bad files share a message."""
    bad = {name: entry["problems"] for name, entry in EXPECTED.items() if name.startswith("bad_")}
    assert all(1 == len(problems) for problems in bad.values())
    assert all("error" == problems[0]["severity"] for problems in bad.values())
    messages = [problems[0]["message"] for problems in bad.values()]
    assert sorted(set(messages)) == sorted(messages)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str) -> None:
    """Each corpus file gets exactly the expected problems, lines and example count."""
    entry = EXPECTED[name]
    report = validate_training_file(CORPUS / name, entry["method"])
    assert entry["problems"] == problems_of(report)
    assert entry["examples"] == report.summary.examples
    assert (not any(p["severity"] == "error" for p in entry["problems"])) == report.ok
    assert str(CORPUS / name) == report.path
    assert entry["method"] == report.method


def test_good_supervised_file_with_tools_weights_and_content_parts() -> None:
    """Tool calls with null content, weight 0/1 and content parts are all accepted."""
    report = validate_training_file(CORPUS / "good_supervised.jsonl")
    assert (True, [], []) == (report.ok, report.errors, report.warnings)


def test_a_dpo_file_is_not_a_supervised_file() -> None:
    """The good DPO file checked as supervised data fails on every line, naming ``messages``."""
    report = validate_training_file(CORPUS / "good_dpo.jsonl", "supervised")
    expected = [Problem(n, 'missing "messages"') for n in range(1, 11)]
    assert expected == report.problems


def test_reinforcement_needs_the_user_last_but_supervised_needs_an_assistant() -> None:
    """The good reinforcement file (ends with the user) has no assistant to learn from."""
    report = validate_training_file(CORPUS / "good_reinforcement.jsonl", "supervised")
    assert [Problem(n, "no assistant message to learn from") for n in range(1, 11)] == (
        report.problems
    )


# --- rules in detail ------------------------------------------------------------------------------


def test_every_problem_of_a_line_is_reported(tmp_path: Path) -> None:
    """A line with several problems gets one for each, in order, on its line."""
    bad = {
        "messages": [
            {"role": "bot", "content": ""},
            {"role": "user", "content": "hi", "weight": 1},
            "nope",
        ]
    }
    path = write(tmp_path, chat_line() * 10 + orjson.dumps(bad) + b"\n")
    expected = [
        Problem(11, f'messages[0]: unknown role "bot" (expected one of {ROLES})'),
        Problem(11, "messages[0]: empty content"),
        Problem(11, 'messages[1]: "weight" is only allowed on assistant messages'),
        Problem(11, "messages[2]: must be an object, got a string"),
        Problem(11, "no assistant message to learn from"),
    ]
    assert expected == validate_training_file(path).problems


def messages_line(*messages: dict[str, Any]) -> bytes:
    """A ``{"messages": [...]}`` line (no newline)."""
    return orjson.dumps({"messages": list(messages)})


USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "yo"}
ROLES = "system, developer, user, assistant, tool, function"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(b'"text"', "expected a JSON object, got a string", id="string"),
        pytest.param(b"3.5", "expected a JSON object, got a number", id="number"),
        pytest.param(b"null", "expected a JSON object, got null", id="null"),
        pytest.param(b"true", "expected a JSON object, got a boolean", id="boolean"),
        pytest.param(
            b'{"messages": {"role": "user"}}',
            '"messages" must be a non-empty list',
            id="messages-object",
        ),
        pytest.param(
            messages_line(USER, {**ASSISTANT, "weight": True}),
            'messages[1]: "weight" must be 0 or 1, got true',
            id="weight-true",
        ),
        pytest.param(
            messages_line(USER, {**ASSISTANT, "weight": 0}),
            "no assistant message to learn from",
            id="only-weight-0",
        ),
        pytest.param(
            messages_line({**USER, "content": "  "}, ASSISTANT),
            "messages[0]: empty content",
            id="blank-content",
        ),
        pytest.param(
            messages_line(USER, {"role": "assistant"}),
            "messages[1]: empty content",
            id="no-content",
        ),
        pytest.param(
            messages_line({**USER, "content": []}, ASSISTANT),
            "messages[0]: empty content",
            id="empty-parts",
        ),
        pytest.param(
            messages_line({**USER, "content": {"text": "hi"}}, ASSISTANT),
            "messages[0]: content must be a string or a list of content parts, got an object",
            id="content-object",
        ),
        pytest.param(
            messages_line({**USER, "role": None}, ASSISTANT),
            f"messages[0]: unknown role null (expected one of {ROLES})",
            id="role-null",
        ),
        pytest.param(
            b"\xef\xbb\xbf" + chat_line().strip(),
            "invalid JSON at column 1: UTF-8 byte order mark (BOM) is not supported",
            id="bom",
        ),
    ],
)
def test_supervised_rule(tmp_path: Path, line: bytes, message: str) -> None:
    """Each supervised rule's message, on the line that breaks it (the others are fine)."""
    path = write(tmp_path, chat_line() * 10 + line + b"\n")
    assert [Problem(11, message)] == validate_training_file(path).problems


def test_an_assistant_calling_a_function_needs_no_content(tmp_path: Path) -> None:
    """``function_call`` (the older tool call) excuses empty assistant content too."""
    call = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "w", "arguments": "{}"},
            },
            {"role": "function", "name": "w", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ]
    }
    path = write(tmp_path, chat_line() * 10 + orjson.dumps(call) + b"\n")
    assert [] == validate_training_file(path).problems


def test_dpo_outputs_are_checked_as_messages(tmp_path: Path) -> None:
    """A DPO output message with an empty content is named by its list and index."""
    hello = {"role": "assistant", "content": "Hello!"}
    example: dict[str, Any] = {
        "input": {"messages": [{"role": "user", "content": "Hi"}]},
        "preferred_output": [hello],
        "non_preferred_output": [{"role": "assistant", "content": ""}],
    }
    good = orjson.dumps({**example, "non_preferred_output": [hello]})
    path = write(tmp_path, (good + b"\n") * 10 + orjson.dumps(example) + b"\n")
    report = validate_training_file(path, "dpo")
    assert [Problem(11, "non_preferred_output[0]: empty content")] == report.problems


def test_reinforcement_reference_fields_are_free(tmp_path: Path) -> None:
    """Top-level keys besides ``messages`` are the grader's and are not checked."""
    example = {
        "messages": [{"role": "user", "content": "2+2?"}],
        "answer": 4,
        "anything": {"nested": [None]},
    }
    path = write(tmp_path, (orjson.dumps(example) + b"\n") * 10)
    assert True is validate_training_file(path, "reinforcement").ok


# --- the whole file -------------------------------------------------------------------------------


def test_one_example_is_counted_in_the_singular(tmp_path: Path) -> None:
    """One example: ``1 example``, not ``1 examples``."""
    report = validate_training_file(write(tmp_path, chat_line()))
    expected = [Problem(None, f"the file has 1 example; at least {MIN_EXAMPLES} are required")]
    assert expected == report.problems


def test_only_blank_lines_is_no_examples(tmp_path: Path) -> None:
    """Blank lines are warnings, and a file of nothing else has no examples."""
    report = validate_training_file(write(tmp_path, b"\n  \n\r\n"))
    expected = [
        Problem(1, "blank line, skipped", Severity.WARNING),
        Problem(2, "blank line, skipped", Severity.WARNING),
        Problem(3, "blank line, skipped", Severity.WARNING),
        Problem(None, "the file has no examples"),
    ]
    assert expected == report.problems
    assert (0, 3) == (report.summary.examples, report.summary.lines)


def test_crlf_and_a_missing_last_newline_are_fine(tmp_path: Path) -> None:
    """Windows line ends and no newline after the last line change nothing."""
    data = chat_line().replace(b"\n", b"\r\n") * 9 + chat_line().rstrip(b"\n")
    report = validate_training_file(write(tmp_path, data))
    assert ([], 10, 10) == (report.problems, report.summary.examples, report.summary.lines)


def test_summary_counts_examples_and_estimates_tokens(tmp_path: Path) -> None:
    """Tokens are a quarter of the text's characters, rounded up, per example; the longest wins."""
    short = chat_line("abcd", "efgh")  # 8 characters: 2 tokens
    long = chat_line("a" * 37, "b" * 10)  # 47 characters: 12 tokens
    report = validate_training_file(write(tmp_path, short * 4 + long + short * 5))
    summary = report.summary
    assert (10, 10) == (summary.examples, summary.lines)
    assert 9 * 2 + 12 == summary.estimated_tokens
    assert (12, 5) == (summary.longest_example_tokens, summary.longest_example_line)
    assert (0, 0) == (summary.error_count, summary.warning_count)


def test_tokens_count_content_parts_and_tool_calls(tmp_path: Path) -> None:
    """The text of content parts and tool call names and arguments count; images do not."""
    example = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "abcd"},
                    {"type": "image_url", "image_url": {"url": "https://x/" + "y" * 100}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "ab", "arguments": "cd"}}
                ],
            },
        ]
    }
    path = write(tmp_path, (orjson.dumps(example) + b"\n") * 10)
    report = validate_training_file(path)
    assert (2, 20) == (report.summary.longest_example_tokens, report.summary.estimated_tokens)


def test_an_example_too_long_is_a_warning(tmp_path: Path) -> None:
    """An example over ``max_example_tokens`` is warned about; the file is still ok."""
    path = write(tmp_path, chat_line() * 3 + chat_line("x" * 400) + chat_line() * 6)
    report = validate_training_file(path, max_example_tokens=100)
    expected = [
        Problem(
            4,
            "about 102 tokens, more than the 100 an example holds; the service will cut it short",
            Severity.WARNING,
        )
    ]
    assert (True, expected) == (report.ok, report.problems)


def test_default_limits() -> None:
    """The service's numbers: 10 examples at least, 65,536 tokens an example, 1,000 kept."""
    assert (10, 65_536, 1000) == (MIN_EXAMPLES, MAX_EXAMPLE_TOKENS, MAX_PROBLEMS)


def test_problems_beyond_the_cap_are_counted_not_kept(tmp_path: Path) -> None:
    """A file bad on every line keeps the first 1,000 problems and says how many more."""
    path = write(tmp_path, b"[]\n" * (MAX_PROBLEMS + 500))
    report = validate_training_file(path)
    assert MAX_PROBLEMS + 1 == len(report.problems)
    assert Problem(1, "expected a JSON object, got an array") == report.problems[0]
    assert Problem(MAX_PROBLEMS, "expected a JSON object, got an array") == report.problems[-2]
    assert (
        Problem(None, "500 more problems not listed (a report keeps 1,000)")
        == (report.problems[-1])
    )
    assert (MAX_PROBLEMS + 500, False) == (report.summary.error_count, report.ok)


def test_dropped_warnings_stay_warnings(tmp_path: Path) -> None:
    """When only warnings are dropped, the note is a warning and the file is still ok."""
    path = write(tmp_path, chat_line() * 10 + b"\n" * (MAX_PROBLEMS + 2))
    report = validate_training_file(path)
    note = Problem(None, "2 more problems not listed (a report keeps 1,000)", Severity.WARNING)
    assert (note, True) == (report.problems[-1], report.ok)
    assert MAX_PROBLEMS + 2 == report.summary.warning_count


def test_whole_file_problems_are_kept_past_the_cap(tmp_path: Path) -> None:
    """Too few examples is reported even when the line problems filled the report."""
    path = write(tmp_path, b"\n" * (MAX_PROBLEMS + 5) + chat_line())
    report = validate_training_file(path)
    assert (
        Problem(None, "the file has 1 example; at least 10 are required") == (report.problems[-2])
    )
    assert "5 more problems not listed (a report keeps 1,000)" == report.problems[-1].message


def test_a_line_longer_than_a_read_chunk(tmp_path: Path) -> None:
    """A 3 MB example spanning several reads is one example, with its line number."""
    huge = chat_line("q" * 3_000_000)
    path = write(tmp_path, chat_line() * 5 + huge + chat_line() * 4 + huge)
    report = validate_training_file(path, max_example_tokens=1_000_000)
    assert ([], 11) == (report.problems, report.summary.examples)
    assert (6, 750_002) == (
        report.summary.longest_example_line,
        report.summary.longest_example_tokens,
    )


# --- how it is called -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sft", "", None, "DPO"])
def test_unknown_method_is_raised(method: Any) -> None:
    """A method that is not one of the three is a bad argument, raised (not a bad file)."""
    with pytest.raises(InvalidParameterError) as caught:
        validate_training_file(CORPUS / "good_supervised.jsonl", method)
    assert "method" == caught.value.param
    assert str(caught.value).startswith(
        "method: must be one of 'supervised', 'dpo', 'reinforcement', got "
    )


def test_a_missing_file_is_raised(tmp_path: Path) -> None:
    """A file that cannot be read raises OSError: there is no file to report on."""
    with pytest.raises(FileNotFoundError):
        validate_training_file(tmp_path / "absent.jsonl")


def test_stream_gives_the_file_verdict() -> None:
    """The same data from memory gets the same problems and summary, under the given name."""
    path = CORPUS / "bad_unknown_role.jsonl"
    from_file = validate_training_file(path)
    from_memory = validate_training_stream(io.BytesIO(path.read_bytes()), name="upload")
    assert (from_file.problems, from_file.summary) == (from_memory.problems, from_memory.summary)
    assert "upload" == from_memory.path


def test_problems_render_as_compiler_lines() -> None:
    """``PATH:LINE: message``, and ``PATH: message`` for the whole file."""
    report = validate_training_file(CORPUS / "bad_too_few.jsonl")
    assert [f"{report.path}: the file has 5 examples; at least 10 are required"] == (
        report.rendered()
    )
    assert "f.jsonl:3: bad" == Problem(3, "bad").render("f.jsonl")
    assert ["f.jsonl:1: a"] == TrainingFileReport(
        "f.jsonl", "supervised", [Problem(1, "a"), Problem(2, "b")], report.summary
    ).rendered(limit=1)


def test_errors_and_warnings_are_split() -> None:
    """``errors`` and ``warnings`` partition the problems; ``ok`` is about errors only."""
    report = validate_training_file(CORPUS / "warn_blank_line.jsonl")
    assert ([], report.problems, True) == (report.errors, report.warnings, report.ok)


# --- a big file, with flat memory -----------------------------------------------------------------

MEASURE = textwrap.dedent(
    """
    import resource, sys, time
    import orjson
    from finetune_async.data import validate_training_file

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = validate_training_file(sys.argv[1])
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(orjson.dumps({
        "growth_kib": after - before,
        "seconds": elapsed,
        "examples": report.summary.examples,
        "problems": len(report.problems),
        "ok": report.ok,
    }).decode())
    """
)


def test_a_300_mb_file_is_checked_with_flat_memory(tmp_path: Path) -> None:
    """300 MB of examples are read as a stream: peak RSS grows by less than 50 MB."""
    lines = [
        chat_line(f"question {i}: " + "lorem ipsum dolor sit amet " * 40, "answer " * 60)
        for i in range(4)
    ]
    block = b"".join(lines) * 2000
    path = tmp_path / "big.jsonl"
    size = 0
    with path.open("wb") as handle:
        while size < 300 * 1024 * 1024:
            handle.write(block)
            size += len(block)
    examples = size // len(block) * 8000
    # ru_maxrss is the whole process's peak, so measure in a fresh one (KiB on Linux).
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", MEASURE, os.fspath(path)],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=True,
    )
    measured = orjson.loads(result.stdout)
    assert (examples, 0, True) == (measured["examples"], measured["problems"], measured["ok"])
    assert measured["growth_kib"] < 50 * 1024, measured
