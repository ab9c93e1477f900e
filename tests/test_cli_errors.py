"""The command line's errors, exit codes and pipes, run as a user does (issue 16).

Each command runs as ``python -m finetune_async ...`` in a subprocess with a clean environment,
against an emulator on its own thread (the labs of ``tests/test_cli.py``) or a small aiohttp.web
server of the test's own. Standard output is a pipe: JSON lines.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import threading
import time
from typing import IO, TYPE_CHECKING, Self

import orjson
import pytest
from aiohttp import web

from finetune_async.emulator import Emulator
from tests.test_cli import (
    BOUND,
    ERROR_PREFIX,
    FOREVER,
    MODEL,
    Lab,
    chat_jsonl,
    clean_env,
    cli_argv,
    fast,
    frozen,
    json_lines,
    lab_factory,
    one_line_error,
    run_cli,
    run_many,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from finetune_async.types import FineTuningJob

__all__ = ["fast", "frozen", "lab_factory"]  # the labs of test_cli, used here as fixtures

CONNECTION_FLAGS = (
    "--api-key",
    "--base-url",
    "--organization",
    "--project",
    "--request-timeout",
    "--max-retries",
    "--portkey-provider",
    "--azure-endpoint",
)


def job_polls(lab: Lab, job_id: str) -> int:
    """How many times the emulator was asked for job ``job_id``."""
    path = f"/v1/fine_tuning/jobs/{job_id}"
    return sum(1 for r in lab.emu.stats.requests if r.path == path)


def uploads(lab: Lab) -> int:
    """How many uploads the emulator has seen."""
    return sum(1 for r in lab.emu.stats.requests if r.method == "POST" and r.path == "/v1/files")


def long_job(lab: Lab) -> FineTuningJob:
    """A finished job of 600 steps: 616 events, more than a page of the API (100) can hold."""
    training = lab.client.files.create(file=chat_jsonl(60), purpose="fine-tune")
    job = lab.client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=training.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 10}}},
    )
    lab.emu.advance(FOREVER)
    finished = lab.client.fine_tuning.jobs.retrieve(job.id)
    assert "succeeded" == finished.status
    return finished


# --- 9: wait and watch end at once on a permanent error ------------------------------------------


def test_wait_and_watch_of_an_unknown_job_end_at_once_with_the_404(frozen: Lab) -> None:
    """`jobs wait` / `jobs watch` of an id that does not exist: exit 1 on the first 404.

    With or without `--timeout`, each unknown id is asked once, and the one error line is the
    API's message, not "not final".
    """
    job = frozen.create_job(frozen.upload_training().id)

    waited, timed, watched = run_many(
        [
            ("jobs", "wait", "ftjob-nope1", "--poll-interval", "0.1"),
            ("jobs", "wait", "ftjob-nope2", "--poll-interval", "0.1", "--timeout", "300"),
            ("jobs", "watch", job.id, "ftjob-nope3", "--poll-interval", "0.1", "--json"),
        ],
        env=frozen.env,
    )

    for number, result in enumerate((waited, timed, watched), start=1):
        assert 1 == result.returncode, result.stderr
        line = one_line_error(result)
        assert f"Error code: 404 - No such job: 'ftjob-nope{number}'" in line
        assert "request id: req_" in line
        assert "not final" not in line
        assert 1 == job_polls(frozen, f"ftjob-nope{number}")
    assert "" == waited.stdout
    # The known job's updates may come first; the error is never printed as an update.
    updates = [orjson.loads(text) for text in watched.stdout.splitlines()]
    assert all(update["job"]["id"] == job.id for update in updates), updates


def test_wait_with_a_refused_key_ends_at_once_with_the_401() -> None:
    """A key the server refuses (401) ends `jobs wait` at once: exit 1 and the API's message."""
    with Emulator(speed=0, api_key="right") as emu:
        env = clean_env()
        env.update(OPENAI_API_KEY="wrong", OPENAI_BASE_URL=emu.url)

        result = run_cli("jobs", "wait", "ftjob-abc", "--poll-interval", "0.1", env=env)

        polls = sum(1 for r in emu.stats.requests if r.path == "/v1/fine_tuning/jobs/ftjob-abc")
    assert 1 == result.returncode, result.stderr
    assert "Error code: 401" in one_line_error(result)
    assert 1 == polls


# --- 10: a reader that stops early ----------------------------------------------------------------


def run_without_reader(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI with standard output a pipe whose reader is already gone (`| true`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # before the child starts: its every write fails with EPIPE
    try:
        return subprocess.run(  # noqa: S603 - our own interpreter and arguments
            cli_argv(*args),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=BOUND,
            env=env,
            check=False,
        )
    finally:
        os.close(write_end)


def test_output_to_a_closed_pipe_exits_0_quietly(frozen: Lab) -> None:
    """`events`, `list`, `metrics` and `files list` into a pipe nobody reads: exit 0, no message.

    No "[Errno 32] Broken pipe", and no "Exception ignored" from the flush at exit.
    """
    job = long_job(frozen)
    commands = [
        ("jobs", "events", job.id, "--limit", "50"),
        ("jobs", "list"),
        ("jobs", "metrics", job.id),
        ("files", "list"),
        ("jobs", "checkpoints", job.id, "--json"),
    ]

    results = [run_without_reader(*argv, env=frozen.env) for argv in commands]

    for argv, result in zip(commands, results, strict=True):
        assert (0, "") == (result.returncode, result.stderr), argv


def read_line(stream: IO[bytes], bound: float = BOUND) -> bytes:
    """Read one line from a pipe, byte by byte (nothing is read past it), within ``bound``."""
    deadline = time.monotonic() + bound
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            pytest.fail(f"no line within {bound} s (so far: {line!r})")
        byte = os.read(stream.fileno(), 1)
        if not byte:
            pytest.fail(f"the output ended before a whole line: {line!r}")
        line += byte
    return line


def test_head_of_a_follow_exits_0_quietly(frozen: Lab) -> None:
    """`jobs events -f | head -1`: once the reader has its line and is gone, exit 0, nothing said.

    The reader closes after the first line; then the job moves on, and the next events are
    written to a pipe nobody reads.
    """
    job = frozen.create_job(frozen.upload_training().id)
    route = "GET /fine_tuning/jobs/{fine_tuning_job_id}/events"

    def event_polls() -> int:
        return sum(1 for r in frozen.emu.stats.requests if r.route == route)

    with subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cli_argv("jobs", "events", job.id, "-f", "--poll-interval", "0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=frozen.env,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = read_line(proc.stdout)  # `head -1`
            proc.stdout.close()
            wait_for(lambda: event_polls() >= 1, "the first events poll")
            frozen.emu.advance(FOREVER)  # many new events, then the end
            stderr = proc.communicate(timeout=BOUND)[1]
        finally:
            if proc.poll() is None:
                proc.kill()

    assert "Created fine-tuning job" == orjson.loads(first)["message"]
    assert (0, b"") == (proc.returncode, stderr)


# --- 12: connection options before the subcommand -------------------------------------------------


def test_connection_options_before_the_subcommand(frozen: Lab) -> None:
    """`finetune-async --base-url URL --api-key K files upload ...` works without any variable."""
    path = frozen.folder / "train.jsonl"
    path.write_bytes(chat_jsonl(10))
    flags = ("--base-url", frozen.emu.url, "--api-key", "test", "--max-retries", "0")

    before = run_cli(
        *flags, "files", "upload", str(path), "--purpose", "fine-tune", "--json", env=clean_env()
    )
    # Both places at once: the one after the subcommand wins.
    mixed = run_cli("--base-url", "http://127.0.0.1:9/v1", "files", "list", *flags, env=clean_env())

    assert 0 == before.returncode, before.stderr
    [uploaded] = json_lines(before.stdout)
    assert [uploaded["id"]] == [f.id for f in frozen.client.files.list()]
    assert 0 == mixed.returncode, mixed.stderr
    assert [uploaded["id"]] == [line["id"] for line in json_lines(mixed.stdout)]


def test_top_level_help_lists_the_connection_options() -> None:
    """`finetune-async --help` lists the connection options and says where they go."""
    result = run_cli("--help", env=clean_env())

    assert 0 == result.returncode, result.stderr
    for flag in CONNECTION_FLAGS:
        assert flag in result.stdout, flag
    assert "before or after the subcommand" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    "argv",
    [
        ("--api-key", "k", "emulator", "--port", "0"),
        ("--base-url", "http://127.0.0.1:9/v1", "files", "validate", "x.jsonl"),
        ("--azure", "demo"),
    ],
    ids=["emulator", "files-validate", "demo"],
)
def test_connection_option_on_a_local_command_is_a_usage_error(argv: tuple[str, ...]) -> None:
    """A connection option before a command that talks to no API: exit 2 naming the option."""
    result = run_cli(*argv, env=clean_env())

    assert 2 == result.returncode, result.stderr
    assert f"error: {argv[0]} is a connection option of the API commands" in result.stderr
    assert "" == result.stdout


# --- 14: upload --validate of a bad file ----------------------------------------------------------


def test_upload_validate_of_a_bad_file_exits_2_with_json(frozen: Lab) -> None:
    """`files upload BAD --validate --json`: problems on stdout, one stderr line, exit 2.

    Nothing is uploaded.
    """
    path = frozen.folder / "bad.jsonl"
    path.write_bytes(chat_jsonl(10).replace(b'"assistant"', b'"robot"'))

    result = run_cli(
        "files", "upload", str(path), "--purpose", "fine-tune", "--validate", "--json",
        env=frozen.env,
    )  # fmt: skip

    assert 2 == result.returncode, result.stderr
    assert (
        f"{ERROR_PREFIX}{path} was not uploaded: 20 errors in the training data"
        " (--validate --method supervised)"
    ) == one_line_error(result)
    lines = json_lines(result.stdout)
    assert 20 == len(lines[:-1])
    assert all(line["severity"] == "error" for line in lines[:-1])
    assert {"path": str(path), "ok": False} == {k: lines[-1][k] for k in ("path", "ok")}
    assert 0 == uploads(frozen)


# --- 15: the smaller points -----------------------------------------------------------------------


def test_events_limit_above_a_page_is_read_in_pages(frozen: Lab) -> None:
    """`jobs events --limit 500` prints the newest 500 events, oldest first: no server 400."""
    job = long_job(frozen)
    newest = list(frozen.client.fine_tuning.jobs.list_events(job.id, limit=100))[:500]

    result = run_cli("jobs", "events", job.id, "--limit", "500", env=frozen.env)

    assert 0 == result.returncode, result.stderr
    assert [e.id for e in reversed(newest)] == [line["id"] for line in json_lines(result.stdout)]


def test_events_limit_above_what_there_is_prints_them_all(frozen: Lab) -> None:
    """`--limit 150` of a job with fewer events prints every one, oldest first."""
    job = frozen.create_job(frozen.upload_training().id)
    frozen.emu.advance(FOREVER)
    every = list(frozen.client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert len(every) < 150

    result = run_cli("jobs", "events", job.id, "--limit", "150", env=frozen.env)

    assert 0 == result.returncode, result.stderr
    assert [e.id for e in reversed(every)] == [line["id"] for line in json_lines(result.stdout)]


@pytest.mark.parametrize("where", ["flag", "variable"])
def test_an_empty_key_is_refused_before_any_request(frozen: Lab, where: str) -> None:
    """`--api-key ''` or `OPENAI_API_KEY=`: exit 2, "no API key" naming the flag, not a 401."""
    env = dict(frozen.env)
    extra: tuple[str, ...] = ()
    if where == "flag":
        extra = ("--api-key", "")
    else:
        env["OPENAI_API_KEY"] = ""
    before = frozen.seen()

    result = run_cli("jobs", "list", *extra, env=env)

    assert 2 == result.returncode, result.stderr
    source = "--api-key" if where == "flag" else "OPENAI_API_KEY"
    assert (
        f"{ERROR_PREFIX}no API key: {source} is empty; pass --api-key KEY or set OPENAI_API_KEY"
    ) == one_line_error(result)
    assert before == frozen.seen()


def test_a_missing_key_names_the_flag_not_the_keyword(frozen: Lab) -> None:
    """No key anywhere: the line says `--api-key` and OPENAI_API_KEY, never `api_key=`."""
    env = clean_env()
    env["OPENAI_BASE_URL"] = frozen.emu.url

    result = run_cli("jobs", "list", env=env)

    assert 2 == result.returncode
    line = one_line_error(result)
    assert f"{ERROR_PREFIX}no API key: pass --api-key KEY or set OPENAI_API_KEY" == line
    assert "api_key=" not in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("emulator", "--port", "abc"), "argument --port: expected a port from 0 to 65535"),
        (("emulator", "--port", "99999"), "argument --port: expected a port from 0 to 65535"),
        (("emulator", "--speed", "-1"), "argument --speed: expected a number >= 0"),
        (("emulator", "--rate-429", "2"), "argument --rate-429: expected a fraction from 0 to 1"),
        (("emulator", "--latency", "nan"), "argument --latency: expected a number >= 0"),
        (("emulator", "--rate-limit", "0"), "argument --rate-limit: expected a number > 0"),
        (("jobs", "wait", "ftjob-a", "--poll-interval", "-1"), "argument --poll-interval"),
        (("jobs", "list", "--limit", "0"), "argument --limit: expected an integer >= 1"),
        (("files", "list", "--request-timeout", "0"), "argument --request-timeout"),
        (("jobs", "create", "--model", MODEL, "--training-file", "f", "--n-epochs", "x"),
         'argument --n-epochs: expected "auto" or a number, got \'x\''),
    ],
    ids=[
        "port-abc",
        "port-99999",
        "speed",
        "rate-429",
        "latency-nan",
        "rate-limit",
        "poll-interval",
        "limit",
        "request-timeout",
        "n-epochs",
    ],
)  # fmt: skip
def test_bad_values_are_usage_errors(frozen: Lab, argv: tuple[str, ...], expected: str) -> None:
    """A bad value, the emulator's included, exits 2 with argparse's line naming the flag."""
    before = frozen.seen()

    result = run_cli(*argv, env=frozen.env, timeout=BOUND)

    assert 2 == result.returncode, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "_number" not in result.stderr
    assert before == frozen.seen()


@pytest.mark.parametrize(
    ("command", "default"), [("jobs wait", "10"), ("jobs watch", "10"), ("jobs events", "5"),
                             ("batches wait", "10")],
)  # fmt: skip
def test_poll_interval_help_gives_the_unit_and_default(command: str, default: str) -> None:
    """`--help` of every polling command explains `--poll-interval` and shows its default."""
    result = run_cli(*command.split(), "--help", env=clean_env())

    assert 0 == result.returncode, result.stderr
    text = " ".join(result.stdout.split())
    assert f"--poll-interval SECONDS seconds between polls (default {default})" in text


class BareServer:
    """An aiohttp.web server on its own thread and loop that answers every path 404, as text."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        async def not_found(_: web.Request) -> web.Response:
            return web.Response(status=404, text="404: Not Found")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", not_found)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(BOUND), "the server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(BOUND)


@pytest.fixture
def bare() -> Iterator[BareServer]:
    """A server that answers a bare 404 to every path."""
    with BareServer() as server:
        yield server


def test_a_base_url_without_v1_gets_a_hint(frozen: Lab, bare: BareServer) -> None:
    """A 404 from a base URL not ending in /v1 asks "is the base URL ... missing /v1?".

    Both OpenAI's own "Invalid URL" answer (the emulator) and a bare page from another server
    get it; a real 404 (an unknown job, with /v1) does not.
    """
    emulator_root = frozen.emu.url.removesuffix("/v1")
    env = clean_env()
    env["OPENAI_API_KEY"] = "test"

    invalid, page, real = run_many(
        [
            ("jobs", "list", "--base-url", emulator_root),
            ("files", "list", "--base-url", bare.url, "--max-retries", "0"),
            ("jobs", "get", "ftjob-nope", "--base-url", frozen.emu.url),
        ],
        env=env,
    )

    assert 1 == invalid.returncode
    line = one_line_error(invalid)
    assert "404 - Invalid URL (GET /fine_tuning/jobs)" in line
    assert f"is the base URL {emulator_root} missing /v1?" in line
    assert 1 == page.returncode
    line = one_line_error(page)
    assert "404" in line
    assert f"is the base URL {bare.url} missing /v1?" in line
    assert 1 == real.returncode
    assert "missing /v1" not in one_line_error(real)


def test_json_output_keeps_raw_timestamps(frozen: Lab) -> None:
    """`--json` (and a pipe) keep the API's integer timestamps; only a terminal shows times."""
    job = frozen.create_job(frozen.upload_training().id)

    result = run_cli("jobs", "get", job.id, env=frozen.env)

    assert 0 == result.returncode, result.stderr
    [line] = json_lines(result.stdout)
    assert job.created_at == line["created_at"]
    assert isinstance(line["created_at"], int)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ("jobs", "create", "--model", MODEL, "--training-file", "f", "--method", "dpo",
             "--beta", "5"),
            "--beta: must be > 0 and <= 2, got 5",
        ),
        (
            ("jobs", "create", "--model", MODEL, "--training-file", "f", "--seed", "-1"),
            "--seed: must be an integer from 0 to 2147483647, got -1",
        ),
        (
            ("batches", "create", "--input-file-id", "f", "--endpoint", "/v1/chat/completions",
             "--completion-window", "48h"),
            "--completion-window: must be one of '24h', got '48h'",
        ),
        (("jobs", "list", "--azure"), "--azure needs --azure-endpoint (or AZURE_OPENAI_ENDPOINT)"),
        (
            ("jobs", "list", "--azure-endpoint", "http://127.0.0.1:9"),
            "--azure needs --azure-api-version (or OPENAI_API_VERSION), e.g. 2025-04-01-preview",
        ),
        (
            ("jobs", "list", "--portkey"),
            (
                "--portkey needs --portkey-virtual-key (or PORTKEY_VIRTUAL_KEY), --portkey-provider"
                " or --portkey-config"
            ),
        ),
    ],
    ids=["beta", "seed", "completion-window", "azure-endpoint", "azure-version", "portkey"],
)  # fmt: skip
def test_messages_name_the_flags_typed(frozen: Lab, argv: tuple[str, ...], expected: str) -> None:
    """The client's checks are reworded with the flags: exit 2, nothing sent."""
    env = clean_env()
    env.update(OPENAI_API_KEY="test", OPENAI_BASE_URL=frozen.emu.url)
    before = frozen.seen()

    result = run_cli(*argv, env=env)

    assert 2 == result.returncode, result.stderr
    assert f"{ERROR_PREFIX}{expected}" == one_line_error(result)
    assert before == frozen.seen()


def test_wait_timeout_names_the_flag_and_the_status(frozen: Lab) -> None:
    """`jobs wait --timeout` of a job that does not move: exit 1, the flag and the last status."""
    job = frozen.create_job(frozen.upload_training().id)

    result = run_cli(
        "jobs", "wait", job.id, "--poll-interval", "0.1", "--timeout", "0.5", env=frozen.env
    )

    assert 1 == result.returncode, result.stderr
    assert (
        f"{ERROR_PREFIX}gave up after --timeout 0.5 s; not final yet: {job.id} (validating_files)"
    ) == one_line_error(result)
