"""``finetune-async files validate`` and ``files upload --validate``.

``files validate`` is local: it needs no key and sends nothing, so most tests call ``main`` in
this process (standard output is captured, not a terminal, so the output is JSON lines); one runs
the real command in a subprocess with a clean environment. ``files upload --validate`` runs
against an emulator on its own thread, whose request log shows a refused file was never sent.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async.cli import main
from finetune_async.cli._commands import show_training_report
from finetune_async.cli._output import Output
from finetune_async.data import validate_training_file
from finetune_async.emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Iterator

CORPUS = Path(__file__).parent / "payloads" / "training"
EXPECTED: dict[str, dict[str, Any]] = orjson.loads((CORPUS / "expected.json").read_bytes())
#: Bound of the subprocess, in seconds.
BOUND = 60.0
ERROR_PREFIX = "finetune-async: error: "


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as one JSON object."""
    return [orjson.loads(line) for line in text.splitlines()]


def upload_requests(emu: Emulator) -> list[str]:
    """The uploads the emulator has seen, as ``METHOD path``."""
    return [f"{r.method} {r.path}" for r in emu.stats.requests if r.path == "/v1/files"]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator on its own thread, clock stopped."""
    with Emulator(speed=0) as running:
        yield running


# --- files validate ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_corpus_file(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """One JSON line per expected problem, then the summary line; exit 1 exactly on errors."""
    entry = EXPECTED[name]
    path = os.fspath(CORPUS / name)
    code = main(["files", "validate", path, "--method", entry["method"]])
    lines = json_lines(capsys.readouterr().out)
    assert entry["problems"] == lines[:-1]
    summary = lines[-1]
    has_errors = any(p["severity"] == "error" for p in entry["problems"])
    assert (1 if has_errors else 0) == code
    assert (path, entry["method"], not has_errors) == (
        summary["path"],
        summary["method"],
        summary["ok"],
    )
    assert entry["examples"] == summary["summary"]["examples"]


def test_validate_summary_line_has_every_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The last JSON line carries the report's summary with its field names."""
    path = CORPUS / "good_supervised.jsonl"
    assert 0 == main(["files", "validate", os.fspath(path), "--json"])
    report = validate_training_file(path)
    expected = {
        "path": os.fspath(path),
        "method": "supervised",
        "ok": True,
        "summary": {
            "examples": report.summary.examples,
            "lines": report.summary.lines,
            "estimated_tokens": report.summary.estimated_tokens,
            "longest_example_tokens": report.summary.longest_example_tokens,
            "longest_example_line": report.summary.longest_example_line,
            "error_count": 0,
            "warning_count": 0,
        },
    }
    assert [expected] == json_lines(capsys.readouterr().out)


def test_validate_human_output(tmp_path: Path) -> None:
    """People get ``PATH:LINE: message`` lines, whole-file ones as ``PATH: message``, a summary."""
    good = orjson.dumps(
        {"messages": [{"role": "user", "content": "abcd"}, {"role": "assistant", "content": "ef"}]}
    )
    bad = orjson.dumps(
        {"messages": [{"role": "human", "content": "abcd"}, {"role": "assistant", "content": "ab"}]}
    )
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join([good, good, good, bad, b"", good]) + b"\n")
    stream = io.StringIO()
    code = show_training_report(
        validate_training_file(path), Output(json_mode=False, stream=stream)
    )
    expected = [
        (
            f'{path}:4: messages[0]: unknown role "human" (expected one of system, developer, user,'
            " assistant, tool, function)"
        ),
        f"{path}:5: blank line, skipped",
        f"{path}: the file has 5 examples; at least 10 are required",
        (
            f"{path}: 5 examples, ~10 tokens (longest: line 1, ~2); 2 errors, 1 warning: not valid"
            " for supervised"
        ),
    ]
    assert (1, expected) == (code, stream.getvalue().splitlines())


def test_validate_human_summary_of_a_good_file() -> None:
    """A file with only warnings is valid: exit 0, warnings counted."""
    report = validate_training_file(CORPUS / "warn_blank_line.jsonl")
    stream = io.StringIO()
    code = show_training_report(report, Output(json_mode=False, stream=stream))
    expected = [
        f"{report.path}:6: blank line, skipped",
        (
            f"{report.path}: 10 examples, ~183 tokens (longest: line 7, ~20); 0 errors, 1 warning:"
            " valid for supervised"
        ),
    ]
    assert (0, expected) == (code, stream.getvalue().splitlines())


def test_validate_needs_no_key_in_a_real_process() -> None:
    """The installed command, without any API variable, checks a file and exits 1 on errors."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "PORTKEY_", "AZURE_"))
    }
    path = os.fspath(CORPUS / "bad_dpo_output_role.jsonl")
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "finetune_async", "files", "validate", path, "--method", "dpo"],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env=env,
        check=False,
    )
    assert (1, "") == (result.returncode, result.stderr)
    assert EXPECTED["bad_dpo_output_role.jsonl"]["problems"] == json_lines(result.stdout)[:-1]


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A path that is not a file is bad input: exit 2 and one error line."""
    missing = tmp_path / "absent.jsonl"
    assert 2 == main(["files", "validate", os.fspath(missing)])
    captured = capsys.readouterr()
    assert ("", f"{ERROR_PREFIX}no such file: {missing}\n") == (captured.out, captured.err)


def test_validate_unknown_method(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown ``--method`` is a usage error (exit 2) naming the choices."""
    with pytest.raises(SystemExit) as caught:
        main(["files", "validate", os.fspath(CORPUS / "good_dpo.jsonl"), "--method", "sft"])
    assert 2 == caught.value.code
    assert "invalid choice: 'sft'" in capsys.readouterr().err


# --- files upload --validate ---------------------------------------------------------------------


def upload_argv(emu: Emulator, path: Path, *extra: str) -> list[str]:
    """``files upload PATH`` against ``emu``."""
    return ["files", "upload", os.fspath(path), "--api-key", "test", "--base-url", emu.url, *extra]


def test_upload_validate_refuses_a_bad_file(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad file is shown problem by problem, exit 2 (bad input), and never sent."""
    path = CORPUS / "bad_missing_assistant.jsonl"
    code = main(upload_argv(emu, path, "--purpose", "fine-tune", "--validate"))
    lines = json_lines(capsys.readouterr().out)
    assert 2 == code
    assert EXPECTED[path.name]["problems"] == lines[:-1]
    assert [] == upload_requests(emu)


def test_upload_validate_uses_the_method(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """``--method dpo`` checks the DPO format: a good DPO file is uploaded."""
    path = CORPUS / "good_dpo.jsonl"
    code = main(upload_argv(emu, path, "--purpose", "fine-tune", "--validate", "--method", "dpo"))
    (uploaded,) = json_lines(capsys.readouterr().out)
    assert (0, "good_dpo.jsonl", path.stat().st_size) == (
        code,
        uploaded["filename"],
        uploaded["bytes"],
    )
    assert ["POST /v1/files"] == upload_requests(emu)


def test_upload_validate_is_for_training_files(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--validate`` on a batch upload is bad input: exit 2, nothing sent."""
    path = CORPUS / "good_supervised.jsonl"
    assert 2 == main(upload_argv(emu, path, "--purpose", "batch", "--validate"))
    expected = f"{ERROR_PREFIX}--validate: only a fine-tune upload is training data, not 'batch'\n"
    assert expected == capsys.readouterr().err
    assert [] == upload_requests(emu)


def test_upload_without_validate_sends_a_bad_file(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--validate`` nothing is checked: the server gets the file, as before."""
    path = CORPUS / "bad_missing_assistant.jsonl"
    assert 0 == main(upload_argv(emu, path, "--purpose", "fine-tune"))
    assert "bad_missing_assistant.jsonl" == json_lines(capsys.readouterr().out)[0]["filename"]
    assert ["POST /v1/files"] == upload_requests(emu)
