"""`finetune-async track add|run|status`, run as a user runs them: subprocesses on one store.

The emulator runs on its own thread with its clock stopped (``Emulator(speed=0)``), so the test
decides when the jobs and batches end (``advance``), and counts the requests it answered. The
commands run in subprocesses, as a sidecar would. Synchronous (subprocesses and the blocking
``Client``), so in a module of its own.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import signal
import sqlite3
import subprocess
import sys
import termios
import time
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import Client
from finetune_async.cli import main
from finetune_async.emulator import Emulator

from .test_cli_webhooks import BOUND, clean_env, running
from .test_tracking_tracker import batch_input, training

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

SECRET = "whsec_" + base64.b64encode(b"the track command's test secret!").decode()
MODEL = "gpt-4o-mini-2024-07-18"
#: Emulated seconds that end every job and batch.
FOREVER = 100_000.0
ERROR_PREFIX = "finetune-async: error: "
#: The pipe size of the kill test: one page, a couple of update lines.
PIPE_PAGE = 4096
#: The tracker routes: the retrieves and the list sweeps.
TRACKER_ROUTES = frozenset(
    {
        "GET /fine_tuning/jobs/{fine_tuning_job_id}",
        "GET /fine_tuning/jobs",
        "GET /batches/{batch_id}",
        "GET /batches",
    }
)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator on its own thread, its clock stopped."""
    with Emulator(speed=0) as emulator:
        yield emulator


@pytest.fixture
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No client or webhook variable in this process's environment (for ``main`` here)."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "PORTKEY_", "AZURE_OPENAI_")):
            monkeypatch.delenv(name)


def create(emu: Emulator, jobs: int, batches: int = 0) -> tuple[list[str], list[str]]:
    """Create jobs and batches; then reset the emulator's counters."""
    with Client(base_url=emu.url, api_key="k") as client:
        training_file = client.files.create(file=("t.jsonl", training()), purpose="fine-tune")
        job_ids = [
            client.fine_tuning.jobs.create(model=MODEL, training_file=training_file.id).id
            for _ in range(jobs)
        ]
        batch_ids = []
        if batches:
            batch_file = client.files.create(file=("b.jsonl", batch_input()), purpose="batch")
            batch_ids = [
                client.batches.create(
                    input_file_id=batch_file.id,
                    endpoint="/v1/chat/completions",
                    completion_window="24h",
                ).id
                for _ in range(batches)
            ]
    emu.reset_stats()
    return job_ids, batch_ids


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "finetune_async", *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env=env or clean_env(),
        check=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def tracker_requests(emu: Emulator) -> int:
    return sum(1 for record in emu.stats.requests if record.route in TRACKER_ROUTES)


def run_args(emu: Emulator, store: Path, *more: str) -> tuple[str, ...]:
    """``track run`` with a connection option before the subcommand and one after it."""
    return (
        "--base-url",
        emu.url,
        "track",
        "run",
        "--store",
        str(store),
        "--api-key",
        "k",
        "--poll-interval",
        "0.05",
        *more,
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {BOUND} s: {what}")
        time.sleep(0.02)


def stored_updates(store: Path) -> list[tuple[str, int]]:
    """(update_id, delivered) of every update in the store, in the order recorded."""
    with contextlib.closing(sqlite3.connect(store, timeout=BOUND)) as conn:
        rows = conn.execute("SELECT update_id, delivered FROM updates ORDER BY n").fetchall()
    return [(str(update), int(done)) for update, done in rows]


# --- add, run, status ------------------------------------------------------------------------


def test_add_then_run_prints_each_update_once_and_ends(emu: Emulator, tmp_path: Path) -> None:
    """add (no key), run --json to the end: each object's first status, then its terminal one,
    once each; exit 0. status shows them all final and delivered; a second run prints nothing."""
    job_ids, batch_ids = create(emu, jobs=3, batches=1)
    store = tmp_path / "tracker.db"
    added = cli("track", "add", "--store", str(store), *job_ids)
    again = cli("track", "add", "--store", str(store), job_ids[0], "--json")
    batch = cli("track", "add", "--store", str(store), "--batch", *batch_ids, "--json")
    assert 0 == emu.stats.total  # adding sends no request

    with running(*run_args(emu, store, "--json"), env=clean_env()) as run:
        first = [orjson.loads(run.line(run.stdout, "a first status")) for _ in range(4)]
        emu.advance(FOREVER)
        last = [orjson.loads(run.line(run.stdout, "a terminal status")) for _ in range(4)]
        assert 0 == run.proc.wait(timeout=BOUND)
    status = cli("track", "status", "--store", str(store), "--json")
    rerun = cli(*run_args(emu, store, "--json"))

    assert (0, 0, 0) == (added.returncode, again.returncode, batch.returncode)
    assert [{"kind": "job", "id": i, "added": True} for i in job_ids] == json_lines(added.stdout)
    assert [{"kind": "job", "id": job_ids[0], "added": False}] == json_lines(again.stdout)
    assert [{"kind": "batch", "id": batch_ids[0], "added": True}] == json_lines(batch.stdout)
    ids = set(job_ids + batch_ids)
    assert ids == {line["id"] for line in first} == {line["id"] for line in last}
    assert all(line["previous_status"] is None and not line["terminal"] for line in first)
    assert all(line["terminal"] for line in last)
    assert {"succeeded", "completed"} == {line["status"] for line in last}
    assert 8 == len({line["update_id"] for line in first + last})
    assert ["update_id", "kind", "id", "status", "previous_status", "terminal", "record"] == list(
        last[0]
    )
    assert last[0]["id"] == last[0]["record"]["id"]
    assert run.stdout.empty()

    assert 0 == status.returncode, status.stderr
    objects = json_lines(status.stdout)
    assert [*job_ids, *batch_ids] == [item["id"] for item in objects]
    assert ["job", "job", "job", "batch"] == [item["kind"] for item in objects]
    assert all(item["terminal"] and item["delivered"] for item in objects)
    assert all(item["polls"] >= 2 and item["last_polled_at"] for item in objects)
    assert (0, "") == (rerun.returncode, rerun.stdout)


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="needs Linux's F_SETPIPE_SZ")
def test_a_run_killed_mid_write_reprints_the_update_in_flight(
    emu: Emulator, tmp_path: Path
) -> None:
    """SIGKILL while an update is being written (stdout is a one-page pipe nobody reads): the
    next run prints that update first, with the same update_id, then the rest; across both
    runs every update appears once and each job's terminal update once."""
    job_ids, _ = create(emu, jobs=8)
    store = tmp_path / "tracker.db"
    assert 0 == cli("track", "add", "--store", str(store), *job_ids).returncode
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_PAGE)  # a few lines fill it
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "finetune_async", *run_args(emu, store, "--json")],
        stdout=write_end,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    os.close(write_end)
    try:
        # The writer blocks on the full pipe (a line is written whole or not at all: each is
        # shorter than a page), with the updates it wrote delivered and the one it is writing
        # not; the tracker's loop, blocked with it, records nothing more meanwhile.
        wait_for(lambda: _full_pipe(read_end), "a full pipe")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=BOUND)
        with os.fdopen(read_end, "rb") as reader:
            killed = json_lines(reader.read().decode())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=BOUND)
    undelivered = [update for update, done in stored_updates(store) if not done]
    emu.advance(FOREVER)
    rerun = cli(*run_args(emu, store, "--json"))

    assert 0 == rerun.returncode, rerun.stderr
    printed = [line["update_id"] for line in killed]
    assert 0 < len(printed) < len(job_ids)
    in_flight = undelivered[0]
    again = json_lines(rerun.stdout)
    assert in_flight == again[0]["update_id"]
    if in_flight in printed:
        # Killed (on a loaded machine) between writing it and asking for the next: printed
        # again all the same, the at-least-once case.
        assert in_flight == printed.pop()
    every = printed + [line["update_id"] for line in again]
    assert len(every) == len(set(every))
    assert sorted(job_ids) == sorted(line["id"] for line in again if line["terminal"])
    first = {line["id"] for line in killed} | {line["id"] for line in again if not line["terminal"]}
    assert len(first) + len(job_ids) == len(every)  # at most one first status and one end each


def _full_pipe(fd: int) -> bool:
    """Whether the one-page pipe is more than half full and nothing came in a quarter second."""
    before = _pipe_bytes(fd)
    time.sleep(0.25)
    return before > PIPE_PAGE // 2 and before == _pipe_bytes(fd)


def _pipe_bytes(fd: int) -> int:
    buffer = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buffer)
    return int.from_bytes(buffer, sys.byteorder)


def test_webhooks_to_run_end_it_with_few_requests(emu: Emulator, tmp_path: Path) -> None:
    """--webhook-port serves the receiver (URL on stderr); the emulator pushes each job's end
    there, and each push costs one retrieve: no polling in between (reconcile every hour)."""
    job_ids, _ = create(emu, jobs=3)
    store = tmp_path / "tracker.db"
    assert 0 == cli("track", "add", "--store", str(store), *job_ids).returncode
    args = run_args(emu, store, "--webhook-port", "0", "--reconcile-interval", "3600")
    with running(*args, env=clean_env(OPENAI_WEBHOOK_SECRET=SECRET)) as run:
        shown = run.err_line("the receiver's URL")
        url = shown.split(" on ")[1].split(" ")[0]
        emu.add_webhook(url, SECRET)
        first = [orjson.loads(run.line(run.stdout, "a first status")) for _ in range(3)]
        before = tracker_requests(emu)
        time.sleep(0.3)  # six polls' worth without webhooks (--poll-interval 0.05)
        idle = tracker_requests(emu) - before
        emu.advance(FOREVER)
        last = [orjson.loads(run.line(run.stdout, "a terminal status")) for _ in range(3)]
        assert 0 == run.proc.wait(timeout=BOUND)

    assert shown.startswith("finetune-async track: receiving webhooks on http://127.0.0.1:")
    assert url.endswith("/webhooks")
    assert set(job_ids) == {line["id"] for line in first} == {line["id"] for line in last}
    assert all(line["status"] == "succeeded" for line in last)
    assert 3 == emu.stats.webhooks.delivered
    # The first refresh (a sweep or three retrieves), then one retrieve per webhook.
    assert before <= len(job_ids)
    assert 0 == idle
    assert len(job_ids) == tracker_requests(emu) - before


def test_a_reader_that_goes_away_ends_run_quietly(emu: Emulator, tmp_path: Path) -> None:
    """`track run | head -1`: the next write finds no reader; exit 0, nothing on stderr, and
    the update that could not be printed stays undelivered (status shows it)."""
    job_ids, _ = create(emu, jobs=2)
    store = tmp_path / "tracker.db"
    assert 0 == cli("track", "add", "--store", str(store), *job_ids).returncode
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "finetune_async", *run_args(emu, store)],  # a pipe: JSON lines
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        wait_for(lambda: len(stored_updates(store)) == len(job_ids), "the first statuses")
        line = orjson.loads(proc.stdout.readline())
        proc.stdout.close()
        emu.advance(FOREVER)
        code = proc.wait(timeout=BOUND)
        rest = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=BOUND)
        proc.stderr.close()
    status = json_lines(cli("track", "status", "--store", str(store)).stdout)

    assert (0, "") == (code, rest)
    assert line["id"] in job_ids
    assert any(not item["delivered"] for item in status)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("run-missing", "--store: no tracker store at "),
        ("status-missing", "--store: no tracker store at "),
        ("run-corrupt", "--store: cannot use "),
        ("status-corrupt", "--store: cannot use "),
        ("add-corrupt", "--store: cannot use "),
        ("add-no-folder", "--store: cannot create the tracker's store "),
        ("port-no-secret", "--webhook-port needs the endpoint's secret"),
        ("secret-no-port", "--webhook-secret needs --webhook-port"),
        ("bad-secret", "--webhook-secret: "),
        ("empty-id", "ID: every id must be a non-empty string"),
    ],
)
@pytest.mark.usefixtures("no_client_env")
def test_bad_input_exits_2_naming_the_flag_before_any_request(
    emu: Emulator,
    tmp_path: Path,
    case: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing or corrupt store, a webhook port without a secret...: one line naming the
    flag, exit 2, and the emulator saw no request. Two cases run in a subprocess, as a user
    runs them; the others call ``main`` in this process (the same code, without the start-up)."""
    store = tmp_path / "tracker.db"
    if "corrupt" in case:
        store.write_bytes(b"not a database, but the bytes of something else entirely" * 100)
    elif case.split("-", maxsplit=1)[0] in ("port", "secret", "bad"):
        assert 0 == main(["track", "add", "--store", str(store), "ftjob-abc"])
        capsys.readouterr()
    argv = {
        "run-missing": run_args(emu, store),
        "status-missing": ("track", "status", "--store", str(store)),
        "run-corrupt": run_args(emu, store),
        "status-corrupt": ("track", "status", "--store", str(store)),
        "add-corrupt": ("track", "add", "--store", str(store), "ftjob-abc"),
        "add-no-folder": ("track", "add", "--store", str(tmp_path / "no" / "t.db"), "ftjob-a"),
        "port-no-secret": run_args(emu, store, "--webhook-port", "0"),
        "secret-no-port": run_args(emu, store, "--webhook-secret", SECRET),
        "bad-secret": run_args(emu, store, "--webhook-port", "0", "--webhook-secret", "nope"),
        "empty-id": ("track", "add", "--store", str(store), ""),
    }[case]
    if case in ("run-corrupt", "port-no-secret"):
        result = cli(*argv)
        code, out, err = result.returncode, result.stdout, result.stderr
    else:
        code = main(list(argv))
        out, err = capsys.readouterr()

    assert 2 == code, err
    assert err.startswith(ERROR_PREFIX + expected), err
    assert 1 == len(err.splitlines())
    assert "" == out
    assert 0 == emu.stats.total


def test_a_connection_option_on_add_is_a_usage_error(tmp_path: Path) -> None:
    """add and status take no connection option: exit 2 naming it (they need no key)."""
    result = cli("--api-key", "k", "track", "add", "--store", str(tmp_path / "t.db"), "ftjob-a")

    assert 2 == result.returncode
    assert "--api-key is a connection option" in result.stderr
    assert "`track add` takes none" in result.stderr
    assert not (tmp_path / "t.db").exists()


def test_status_of_a_store_that_tracks_nothing(tmp_path: Path) -> None:
    """status --json of an empty store prints nothing and exits 0; add creates the store."""
    store = tmp_path / "t.db"
    added = cli("track", "add", "--store", str(store), "ftjob-a", "--json")
    with contextlib.closing(sqlite3.connect(store)) as conn:
        conn.execute("DELETE FROM objects")
        conn.commit()
    status = cli("track", "status", "--store", str(store), "--json")

    assert 0 == added.returncode
    assert (0, "") == (status.returncode, status.stdout)


def test_ctrl_c_exits_130_and_leaves_the_store_usable(emu: Emulator, tmp_path: Path) -> None:
    """Ctrl-C during --follow: exit 130, one line; the next run goes on from the store."""
    job_ids, _ = create(emu, jobs=1)
    store = tmp_path / "tracker.db"
    assert 0 == cli("track", "add", "--store", str(store), *job_ids).returncode
    with running(*run_args(emu, store, "--follow", "--json"), env=clean_env()) as run:
        first = orjson.loads(run.line(run.stdout, "the first status"))
        code = run.interrupt()
        error = run.err_line("the interrupted line")
    emu.advance(FOREVER)
    rerun = cli(*run_args(emu, store, "--json"))

    assert 130 == code
    assert ERROR_PREFIX + "interrupted" == error
    assert 0 == rerun.returncode, rerun.stderr
    again = json_lines(rerun.stdout)
    if len(again) > 1:
        # Interrupted (on a loaded machine) between printing it and asking for the next: it
        # is printed again, with the same update_id.
        assert first == again.pop(0)
    assert [(first["id"], True)] == [(line["id"], line["terminal"]) for line in again]


# --- on a terminal ------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals of Linux")
def test_on_a_terminal_add_says_so_and_run_and_status_draw_tables(
    emu: Emulator, tmp_path: Path
) -> None:
    """On a pty: add prints a sentence, run a live table of the changes, status a table."""
    from .test_cli_pty import run_on_terminal, terminal_env

    job_ids, _ = create(emu, jobs=2)
    store = str(tmp_path / "tracker.db")
    env = terminal_env(emu.url)
    added = run_on_terminal("track", "add", "--store", store, *job_ids, env=env)
    again = run_on_terminal("track", "add", "--store", store, job_ids[0], env=env)
    emu.advance(FOREVER)
    run = run_on_terminal("track", "run", "--store", store, "--poll-interval", "0.05", env=env)
    status = run_on_terminal("track", "status", "--store", store, env=env)

    assert (0, 0, 0, 0) == (added.returncode, again.returncode, run.returncode, status.returncode)
    assert f"tracking 2 jobs: {', '.join(job_ids)}" in added.text
    assert f"already tracked: {job_ids[0]}" in again.text
    for job_id in job_ids:
        assert re.search(rf"│ job\s+│ {job_id}\s+│ succeeded \(final\)\s+│ -\s+│", run.text)
        assert re.search(
            rf"│ job\s+│ {job_id}\s+│ succeeded\s+│ True\s+│ True\s+│ 1\s+│", status.text
        )
    assert "{" not in run.text + status.text  # no JSON on a terminal


def test_an_id_that_cannot_be_read_is_said_on_stderr(emu: Emulator, tmp_path: Path) -> None:
    """A mistyped id (404 at every read): one stderr line naming it, while the real job's
    updates still come on stdout; the run keeps trying (it may be an outage) until Ctrl-C."""
    job_ids, _ = create(emu, jobs=1)
    store = tmp_path / "tracker.db"
    assert 0 == cli("track", "add", "--store", str(store), "ftjob-nope", *job_ids).returncode
    emu.advance(FOREVER)
    with running(*run_args(emu, store, "--refresh", "retrieve"), env=clean_env()) as run:
        warning = run.err_line("the warning")
        line = orjson.loads(run.line(run.stdout, "the job's update"))
        assert 130 == run.interrupt()

    assert warning.startswith("finetune-async: tracker: job ftjob-nope could not be read: ")
    assert "404" in warning
    assert (job_ids[0], "succeeded") == (line["id"], line["status"])


def test_ids_added_while_run_follows_are_picked_up(emu: Emulator, tmp_path: Path) -> None:
    """`track add` from another process while `track run --follow` runs: the next refresh
    takes the new id (no restart), and its updates come on the same stream."""
    job_ids, _ = create(emu, jobs=2)
    store = tmp_path / "tracker.db"
    assert 0 == cli("track", "add", "--store", str(store), job_ids[0]).returncode
    with running(*run_args(emu, store, "--follow", "--json"), env=clean_env()) as run:
        first = orjson.loads(run.line(run.stdout, "the first job's status"))
        assert 0 == cli("track", "add", "--store", str(store), job_ids[1]).returncode
        second = orjson.loads(run.line(run.stdout, "the added job's status"))
        emu.advance(FOREVER)
        ends = [orjson.loads(run.line(run.stdout, "an end")) for _ in range(2)]
        assert 130 == run.interrupt()

    assert [job_ids[0], job_ids[1]] == [first["id"], second["id"]]
    assert set(job_ids) == {line["id"] for line in ends if line["terminal"]}
