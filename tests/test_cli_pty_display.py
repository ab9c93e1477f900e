"""What the command line shows on a terminal (issue 16), run on a pseudo-terminal.

The harness of ``tests/test_cli_pty.py``: each command runs with a pty as stdin, stdout and
stderr (120 columns), the screen is read until the child closes it, and ANSI escapes are
stripped. One emulator (speed 20, short validation and queue) runs for the module.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import orjson
import pytest

from tests.test_cli_pty import (
    HAVE_PTY,
    MODEL,
    chat_jsonl,
    client,
    create_job,
    emu,
    folder,
    run_on_terminal,
    table_rows,
    terminal_env,
)

if TYPE_CHECKING:
    from pathlib import Path

    from finetune_async import Client
    from finetune_async.emulator import Emulator
    from finetune_async.types import FineTuningJob

__all__ = ["client", "emu", "folder"]  # the module fixtures of test_cli_pty, used here

pytestmark = pytest.mark.skipif(not HAVE_PTY, reason="the pty module is not available")

ERROR_PREFIX = "finetune-async: error: "
#: A POSIX TZ of UTC+05:30 (the sign is west-positive), and that offset.
TZ_NAME = "XYZ-05:30"
TZ_OFFSET = timezone(timedelta(hours=5, minutes=30))


def squeeze(text: str) -> str:
    """``text`` without any whitespace: a cell folded by the table compares whole."""
    return "".join(text.split())


def uploads(emulator: Emulator) -> int:
    """How many uploads the emulator has seen."""
    return sum(1 for r in emulator.stats.requests if r.method == "POST" and r.path == "/v1/files")


def finished_job(emulator: Emulator, client: Client, folder: Path) -> FineTuningJob:
    """A two-epoch job run to success (by moving the emulated clock)."""
    job = create_job(client, folder)
    emulator.advance(100_000)
    finished = client.fine_tuning.jobs.retrieve(job.id)
    assert "succeeded" == finished.status
    return finished


# --- 11: progress bars print no markup ------------------------------------------------------------


def test_upload_bar_prints_no_markup_and_the_name_verbatim(emu: Emulator, folder: Path) -> None:
    """The upload bar reads `uploading NAME ━━━ 1.2/1.2 kB`: no `[progress...]` tag, no escape."""
    path = folder / "up[v2].jsonl"
    path.write_bytes(chat_jsonl(12))

    run = run_on_terminal(
        "files", "upload", str(path), "--purpose", "fine-tune", env=terminal_env(emu.url)
    )

    assert 0 == run.returncode, run.text
    assert re.search(r"uploading up\[v2\]\.jsonl ━+ (\d+\.\d)/\1 kB", run.text), run.text
    assert "[" not in run.text.replace("up[v2].jsonl", ""), run.text
    assert "\\" not in run.text


def test_demo_first_screen_prints_no_markup(emu: Emulator) -> None:
    """The demo's first screen (the emulator line, the upload bar) holds no `[` markup tag."""
    run = run_on_terminal("demo", "--speed", "600", env=terminal_env(emu.url))

    assert 0 == run.returncode, run.text[-2000:]
    first_screen = run.text.split("created job", 1)[0]
    assert "uploading train.jsonl ━" in first_screen, first_screen
    assert "[" not in first_screen, first_screen


# --- 13: why a job failed, on the live board ------------------------------------------------------


def test_live_board_shows_why_a_job_failed(emu: Emulator, client: Client, folder: Path) -> None:
    """A job that fails (3 examples) ends on the board as `failed`, its reason in model / error."""
    path = folder / "short.jsonl"
    path.write_bytes(chat_jsonl(3))
    training = client.files.create(file=path, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=training.id)

    run = run_on_terminal(
        "jobs", "watch", job.id, "--poll-interval", "0.2", env=terminal_env(emu.url)
    )

    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert 1 == run.returncode, run.text
    assert failed.error is not None
    assert failed.error.code
    assert failed.error.message
    last = [row for row in table_rows(run.text) if 5 == len(row) and job.id == row[0]][-1]
    assert "failed" == last[1]
    assert squeeze(f"{failed.error.code}: {failed.error.message}") == squeeze(last[4])


# --- 9: an unknown job on the live board ----------------------------------------------------------


def test_wait_of_an_unknown_job_on_a_terminal_ends_with_the_404(emu: Emulator) -> None:
    """`jobs wait ftjob-nope` on a terminal: the board shows the error, then exit 1 at once."""
    run = run_on_terminal("jobs", "wait", "ftjob-nope", env=terminal_env(emu.url))

    assert 1 == run.returncode, run.text
    lines = run.text.strip().splitlines()
    assert lines[-1].startswith(f"{ERROR_PREFIX}Error code: 404 - No such job: 'ftjob-nope'")
    last = [row for row in table_rows(run.text) if 5 == len(row) and row[0] == "ftjob-nope"][-1]
    assert "error" == last[1]
    assert "NotFoundError" in last[4]


# --- 14: upload --validate of a bad file ----------------------------------------------------------


def test_upload_validate_on_a_terminal_shows_the_first_problems(
    emu: Emulator, folder: Path
) -> None:
    """1,500 bad lines: 20 problems, a count of the rest, a summary, "not uploaded", exit 2."""
    path = folder / "bad.jsonl"
    path.write_bytes(b'{"messages": [{"role": "human", "content": "x"}]}\n' * 1500)
    before = uploads(emu)

    run = run_on_terminal(
        "files", "upload", str(path), "--purpose", "fine-tune", "--validate",
        env=terminal_env(emu.url),
    )  # fmt: skip

    assert 2 == run.returncode, run.text
    lines = run.text.strip().splitlines()
    problems = [line for line in lines if re.match(rf"{re.escape(str(path))}:\d+: ", line)]
    assert 20 == len(problems), lines
    assert (
        f"{path}: ... and 2,980 more problems"
        f" (see them with `finetune-async files validate {path}`)"
    ) in lines
    assert any(
        line.endswith("3,000 errors, 0 warnings: not valid for supervised") for line in lines
    )
    assert (
        f"{ERROR_PREFIX}{path} was not uploaded: 3,000 errors in the training data"
        " (--validate --method supervised)"
    ) == lines[-1]
    assert len(lines) < 30
    assert before == uploads(emu)


# --- 15: times, checkpoint metrics, batch answers -------------------------------------------------


def test_times_are_local_iso_times_on_a_terminal(
    emu: Emulator, client: Client, folder: Path
) -> None:
    """`jobs get` and `jobs events` show local ISO 8601 times (here UTC+05:30), not integers."""
    job = finished_job(emu, client, folder)
    env = terminal_env(emu.url)
    env["TZ"] = TZ_NAME
    assert job.created_at is not None
    assert job.finished_at is not None

    got = run_on_terminal("jobs", "get", job.id, env=env)
    events = run_on_terminal("jobs", "events", job.id, "--limit", "3", env=env)

    def shown(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, tz=UTC).astimezone(TZ_OFFSET).isoformat()

    assert 0 == got.returncode, got.text
    screen = got.text.splitlines()
    assert f"created_at        {shown(job.created_at)}" in [line.rstrip() for line in screen]
    assert f"finished_at       {shown(job.finished_at)}" in [line.rstrip() for line in screen]
    assert str(job.created_at) not in got.text
    assert 0 == events.returncode, events.text
    rows = [  # one line each: no cell of these rows is folded
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in events.text.splitlines()
        if line.strip().startswith("│")
    ]
    assert 3 == len(rows), events.text
    newest = list(client.fine_tuning.jobs.list_events(job.id, limit=3))[:3]
    assert [shown(e.created_at or 0) for e in reversed(newest)] == [row[0] for row in rows]


def test_checkpoint_metrics_read_as_lines_not_json(
    emu: Emulator, client: Client, folder: Path
) -> None:
    """`jobs checkpoints` shows each metric as `name value` in the metrics cell, no JSON."""
    job = finished_job(emu, client, folder)
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))

    run = run_on_terminal("jobs", "checkpoints", job.id, env=terminal_env(emu.url))

    assert 0 == run.returncode, run.text
    assert "{" not in run.text
    assert "null" not in run.text
    for checkpoint in checkpoints:
        metrics = checkpoint.metrics
        assert metrics is not None
        assert metrics.train_loss is not None
        assert metrics.valid_loss is not None
        assert re.search(rf"│ train_loss {metrics.train_loss:.4f}\s+│", run.text), run.text
        assert re.search(rf"│ valid_loss {metrics.valid_loss:.4f}\s+│", run.text), run.text


def test_batch_results_show_the_answer_text(emu: Emulator, client: Client) -> None:
    """`batches results` on a terminal has an answer column with each answer's text."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]}
    line = (
        b'{"custom_id": "q-1", "method": "POST", "url": "/v1/chat/completions", "body": '
        + orjson.dumps(body)
        + b"}\n"
    )
    requests = client.files.create(file=line, purpose="batch")
    batch = client.batches.create(input_file_id=requests.id, endpoint="/v1/chat/completions")
    assert "completed" == client.batches.wait(batch.id, poll_interval=0.1, timeout=60).status
    [result] = list(client.batches.results(batch.id))
    answer = result.body["choices"][0]["message"]["content"]
    assert answer

    run = run_on_terminal("batches", "results", batch.id, env=terminal_env(emu.url))

    assert 0 == run.returncode, run.text
    assert re.search(r"┃ custom_id\s+┃ status_code\s+┃ ok\s+┃ answer\s+┃", run.text), run.text
    [row] = [row for row in table_rows(run.text) if row[0] == "q-1"]
    assert ["q-1", "200", "True"] == row[:3]
    assert squeeze(answer) == squeeze(row[3])
