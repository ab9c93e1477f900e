"""The command line on a terminal: a pseudo-terminal (``pty``) shows tables and live progress.

Each command runs with a pty as its stdin, stdout and stderr (``COLUMNS=120``, ``TERM=xterm``);
the master side is read with ``select`` until the child closes it, within a bound. ANSI escapes
are stripped before the assertions. The emulator runs on its own thread; setup goes through the
blocking ``Client``.
"""

from __future__ import annotations

import os
import re
import select
import struct
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import attrs
import orjson
import pytest

from finetune_async import Client
from finetune_async.emulator import Emulator, Timing

try:  # POSIX only
    import fcntl
    import pty
    import termios
except ImportError:  # pragma: no cover - no pseudo-terminals here
    HAVE_PTY = False
else:
    HAVE_PTY = True

pytestmark = pytest.mark.skipif(not HAVE_PTY, reason="the pty module is not available")

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from finetune_async.types import FineTuningJob

MODEL = "gpt-4o-mini-2024-07-18"
#: Bound of every terminal run of this module, in seconds.
BOUND = 60.0
COLUMNS = 120
#: CSI sequences, OSC sequences, and the two-character escapes.
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
PROGRESS = re.compile(r"^step (\d+)/(\d+) \(epoch (\d+)/(\d+)\)$")
#: Variables that change what rich believes about the terminal.
TERMINAL_VARIABLES = ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")


@attrs.frozen
class TerminalRun:
    """A finished run on a pseudo-terminal: the exit code, and the screen text without escapes."""

    returncode: int
    raw: str
    text: str


def terminal_env(url: str) -> dict[str, str]:
    """A clean environment (no clients' variables) for a 120-column xterm, on ``url``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "PORTKEY_", "AZURE_", "TTY_"))
        and key not in TERMINAL_VARIABLES
    }
    env.update(COLUMNS=str(COLUMNS), TERM="xterm", OPENAI_API_KEY="test", OPENAI_BASE_URL=url)
    return env


def run_on_terminal(*args: str, env: dict[str, str]) -> TerminalRun:
    """Run ``python -m finetune_async ARGS`` on a pty and read everything it shows."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    deadline = time.monotonic() + BOUND
    chunks: list[bytes] = []
    try:
        with subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "finetune_async", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
        ) as proc:
            os.close(slave)
            slave = -1
            try:
                while time.monotonic() < deadline:
                    ready, _, _ = select.select([master], [], [], 0.25)
                    if not ready:
                        continue
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every copy of the slave side is closed
                        break
                    if not data:
                        break
                    chunks.append(data)
                else:
                    pytest.fail(f"{args} still running after {BOUND} s")
                proc.wait(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    return TerminalRun(proc.returncode, raw, ANSI.sub("", raw).replace("\r", ""))


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the tables in ``text``, folded cells joined back together.

    Each run of ``│`` lines is taken as one row (the tables of these tests hold one job), so a
    cell that rich folded onto several lines comes back whole.
    """
    rows: list[list[str]] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("│") and stripped.endswith("│"):
            cells = [cell.strip() for cell in stripped[1:-1].split("│")]
            if current is not None and len(cells) == len(current):
                current = [a + b for a, b in zip(current, cells, strict=True)]
            else:
                if current is not None:
                    rows.append(current)
                current = cells
        elif current is not None:
            rows.append(current)
            current = None
    if current is not None:
        rows.append(current)
    return rows


def chat_jsonl(n: int) -> bytes:
    """A valid supervised training file of ``n`` examples."""
    lines = [
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {i}?"},
                    {"role": "assistant", "content": f"answer {i}."},
                ]
            }
        )
        for i in range(n)
    ]
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """An emulator at speed 20 with short validation and queue: a 24-step job takes ~4 s."""
    with Emulator(speed=20, seed=11, timing=Timing(validate=10.0, queue=10.0)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Iterator[Client]:
    """A blocking client on the emulator, for setup."""
    with Client(api_key="test", base_url=emu.url) as c:
        yield c


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for this module's files."""
    return tmp_path_factory.mktemp("pty")


def create_job(client: Client, folder: Path, suffix: str | None = None) -> FineTuningJob:
    """Upload a 12-example file and start a two-epoch job on it (24 steps of batch 1)."""
    path = folder / "train12.jsonl"
    path.write_bytes(chat_jsonl(12))
    training = client.files.create(file=path, purpose="fine-tune")
    return client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=training.id,
        suffix=suffix,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )


# --- jobs watch -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def watched(emu: Emulator, client: Client, folder: Path) -> tuple[TerminalRun, FineTuningJob]:
    """`jobs watch ID` on a terminal, from a fresh job to its end; the run and the final job."""
    job = create_job(client, folder)
    run = run_on_terminal(
        "jobs", "watch", job.id, "--poll-interval", "0.2", env=terminal_env(emu.url)
    )
    return run, client.fine_tuning.jobs.retrieve(job.id)


def board_rows(run: TerminalRun, job_id: str) -> list[list[str]]:
    """The rows of the live board (five columns, the job id first), in the order drawn."""
    return [row for row in table_rows(run.text) if 5 == len(row) and job_id == row[0]]


def test_watch_exits_0_and_draws_the_live_board(
    watched: tuple[TerminalRun, FineTuningJob],
) -> None:
    """`jobs watch` on a terminal draws the board: a title and the status/progress/loss headers."""
    run, job = watched

    assert 0 == run.returncode, run.text[-2000:]
    assert "succeeded" == job.status
    assert "fine-tuning jobs" in run.text
    for column in ("job", "status", "progress", "train loss", "model / error"):
        assert re.search(rf"┃ {re.escape(column)}\s+┃", run.text), column
    assert "Traceback" not in run.text
    assert not any(line.lstrip().startswith("{") for line in run.text.split("\n"))


def test_watch_shows_step_epoch_progress_and_train_loss(
    watched: tuple[TerminalRun, FineTuningJob], client: Client
) -> None:
    """The board's progress reads `step N/24 (epoch k/2)`, rising, with that step's train loss."""
    run, job = watched
    rows = board_rows(run, job.id)
    losses = {
        event.data["step"]: event.data["train_loss"]
        for event in client.fine_tuning.jobs.list_events(job.id, limit=100)
        if isinstance(event.data, dict) and "step" in event.data
    }

    shown = [(PROGRESS.match(row[2]), row[3]) for row in rows if row[2]]
    assert shown, "no progress text on the board"
    steps = []
    for match, loss in shown:
        assert match is not None, f"unexpected progress text in {rows}"
        step, total, epoch, epochs = (int(part) for part in match.groups())
        assert (24, 2) == (total, epochs)
        assert (step + 11) // 12 == epoch  # 12 steps an epoch
        assert f"{losses[step]:.4f}" == loss
        steps.append(step)
    assert sorted(steps) == steps
    assert len(set(steps)) >= 2, f"the board never moved: {steps}"


def test_watch_ends_with_succeeded_and_the_model(
    watched: tuple[TerminalRun, FineTuningJob],
) -> None:
    """The board's last row says `succeeded` and names the `ft:` model."""
    run, job = watched
    last = board_rows(run, job.id)[-1]

    assert job.fine_tuned_model is not None
    assert job.fine_tuned_model.startswith("ft:")
    assert "succeeded" == last[1]
    assert job.fine_tuned_model == last[4]
    assert re.fullmatch(r"\d+\.\d{4}", last[3]), last


# --- tables ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listed(emu: Emulator, client: Client, folder: Path) -> tuple[TerminalRun, FineTuningJob]:
    """`jobs list` on a terminal after a job with the suffix "x" succeeded; the run and the job."""
    job = create_job(client, folder, suffix="x")
    emu.advance(100_000)
    finished = client.fine_tuning.jobs.retrieve(job.id)
    assert "succeeded" == finished.status
    return run_on_terminal("jobs", "list", "--max", "1", env=terminal_env(emu.url)), finished


def test_jobs_list_prints_a_table_not_json(listed: tuple[TerminalRun, FineTuningJob]) -> None:
    """`jobs list` on a terminal draws a box table with the column headers, and no JSON."""
    run, job = listed
    [row] = table_rows(run.text)

    assert 0 == run.returncode, run.text
    assert "━" in run.text
    assert "┃" in run.text
    assert re.search(r"┃ id\s+┃ status\s+┃ model\s+┃ fine_tuned_model\s+┃", run.text), run.text
    assert [job.id, "succeeded", MODEL] == row[:3]
    assert not any(line.lstrip().startswith("{") for line in run.text.split("\n"))


def test_jobs_list_shows_the_model_name_verbatim(listed: tuple[TerminalRun, FineTuningJob]) -> None:
    """A model name holding `:x:` is shown as is on a terminal (not as an emoji)."""
    run, job = listed
    [row] = table_rows(run.text)

    assert job.fine_tuned_model is not None
    assert ":x:" in job.fine_tuned_model
    assert job.fine_tuned_model == row[3]


# --- transfers ------------------------------------------------------------------------------------


def test_files_upload_shows_a_progress_bar(emu: Emulator, folder: Path) -> None:
    """`files upload` on a terminal shows an `uploading NAME` bar that reaches the file size."""
    path = folder / "upload.jsonl"
    path.write_bytes(chat_jsonl(12))

    run = run_on_terminal(
        "files", "upload", str(path), "--purpose", "fine-tune", env=terminal_env(emu.url)
    )

    assert 0 == run.returncode, run.text
    assert "uploading upload.jsonl" in run.text
    assert re.search(r"uploading upload\.jsonl ━+ (\d+\.\d)/\1 kB", run.text), run.text
    assert re.search(r"filename\s+upload\.jsonl", run.text), run.text
    assert not any(line.lstrip().startswith("{") for line in run.text.split("\n"))


@pytest.fixture(scope="module")
def downloaded(emu: Emulator, client: Client, folder: Path) -> tuple[TerminalRun, str, Path]:
    """`files download ID PATH` on a terminal, into a folder named `out[v2]`; run, id, target."""
    source = folder / "source.jsonl"
    source.write_bytes(chat_jsonl(40))
    uploaded = client.files.create(file=source, purpose="fine-tune")
    target = folder / "out[v2]" / "copy.jsonl"
    target.parent.mkdir()
    run = run_on_terminal("files", "download", uploaded.id, str(target), env=terminal_env(emu.url))
    return run, uploaded.id, target


def test_files_download_shows_a_progress_bar(
    downloaded: tuple[TerminalRun, str, Path], folder: Path
) -> None:
    """`files download` on a terminal shows a `downloading ID` bar that reaches the file size."""
    run, file_id, target = downloaded

    assert 0 == run.returncode, run.text
    assert (folder / "source.jsonl").read_bytes() == target.read_bytes()
    assert re.search(rf"downloading {file_id} ━+ (\d+\.\d)/\1 kB", run.text), run.text
    assert f"saved {file_id} to " in run.text
    assert not any(line.lstrip().startswith("{") for line in run.text.split("\n"))


def test_files_download_names_the_target_path_verbatim(
    downloaded: tuple[TerminalRun, str, Path],
) -> None:
    """The `saved ID to PATH` line shows a path holding `[v2]` as is (not read as markup)."""
    run, file_id, target = downloaded

    assert 0 == run.returncode, run.text
    assert f"saved {file_id} to {target}" in run.text.replace("\n", "")
