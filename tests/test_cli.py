"""The command line driven as a subprocess against the emulator (each command group, errors).

Every command runs as ``python -m finetune_async ...`` with a clean environment (no ``OPENAI_*``,
``PORTKEY_*`` or ``AZURE_*`` variable of the machine) against an emulator on its own thread.
Standard output is a pipe, so the output is JSON lines even without ``--json``. Setup (uploads,
jobs, batches) goes through the blocking ``Client`` to keep the subprocess count low; the
emulators with a stopped clock (``speed=0``) are moved with ``advance``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import orjson
import pytest

from finetune_async import Client, __version__
from finetune_async.emulator import Emulator
from finetune_async.types import FileObject, FineTuningJob, FineTuningJobEvent, JobUpdate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

MODEL = "gpt-4o-mini-2024-07-18"
#: Bound of every subprocess and wait of this module, in seconds.
BOUND = 60.0
#: Enough virtual seconds to end any job or batch of these tests.
FOREVER = 100_000.0
#: Virtual seconds from a job's creation to ``running`` (validate 30 + queue 60, plus one).
TO_RUNNING = 91.0
ERROR_PREFIX = "finetune-async: error: "
#: A `jobs create` that would be valid (the file need not exist: bad input stops it first).
CREATE_JOB = ("jobs", "create", "--model", MODEL, "--training-file", "file-abc")


# --- helpers --------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """The environment of the tests without any of the clients' variables."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "PORTKEY_", "AZURE_"))
    }


def cli_argv(*args: str) -> list[str]:
    """The command line of ``python -m finetune_async ARGS`` with this interpreter."""
    return [sys.executable, "-m", "finetune_async", *args]


def run_cli(
    *args: str, env: Mapping[str, str], timeout: float = BOUND
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m finetune_async ARGS`` to its end, output captured (a pipe, not a tty)."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        cli_argv(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env),
        check=False,
    )


def run_many(
    commands: list[tuple[str, ...]], env: Mapping[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at once (each start costs about a second); results in order."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda argv: run_cli(*argv, env=env), commands))


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Parse every line of ``stdout`` as one JSON object (no blank or decorative line)."""
    lines = stdout.splitlines()
    assert lines, "no output at all"
    parsed = []
    for line in lines:
        value = orjson.loads(line)
        assert isinstance(value, dict), f"not a JSON object: {line!r}"
        parsed.append(value)
    return parsed


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Return the single stderr line of a failed command, checking there is exactly one."""
    lines = result.stderr.strip().splitlines()
    assert 1 == len(lines), f"expected one stderr line, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    return lines[0]


def field_names(record: type) -> set[str]:
    """The field names of an attrs record (what the JSON lines carry, null included)."""
    return {field.name for field in attrs.fields(record)}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header, whatever the case of its name."""
    found = [value for key, value in headers.items() if key.lower() == name.lower()]
    return found[0] if found else None


def sent_header(record: Any, name: str, value: str) -> bool:
    """Whether a logged request had header ``name`` with ``value``.

    An emulator that redacts credentials in its log compares them with ``sent_header``.
    """
    check = getattr(record, "sent_header", None)
    if check is not None:
        return bool(check(name, value))
    return header(record.headers, name) == value


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


def batch_jsonl(n: int) -> bytes:
    """A batch input file of ``n`` chat completion requests."""
    lines = [
        orjson.dumps(
            {
                "custom_id": f"request-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            }
        )
        for i in range(n)
    ]
    return b"\n".join(lines) + b"\n"


def free_closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for(predicate: Callable[[], bool], what: str, bound: float = 10.0) -> None:
    """Poll ``predicate`` every 50 ms until true, failing after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {bound} s waiting for {what}")
        time.sleep(0.05)


@attrs.define
class Lab:
    """An emulator on its own thread, a blocking client on it, and the CLI's environment."""

    emu: Emulator
    client: Client
    env: dict[str, str]
    folder: Path

    def upload_training(self, examples: int = 10, name: str = "train.jsonl") -> FileObject:
        """Upload a chat training file of ``examples`` examples (fewer than 10 fail the job)."""
        path = self.folder / name
        path.write_bytes(chat_jsonl(examples))
        return self.client.files.create(file=path, purpose="fine-tune")

    def create_job(self, training_file: str, **metadata: str) -> FineTuningJob:
        """Create a one-epoch job on ``training_file``."""
        return self.client.fine_tuning.jobs.create(
            model=MODEL,
            training_file=training_file,
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
            metadata=metadata or None,
        )

    def upload_batch_input(self, requests: int = 3) -> FileObject:
        """Upload a batch input file of ``requests`` chat completion requests."""
        path = self.folder / "batch.jsonl"
        path.write_bytes(batch_jsonl(requests))
        return self.client.files.create(file=path, purpose="batch")

    def seen(self) -> int:
        """How many requests the emulator has seen."""
        return len(self.emu.stats.requests)


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Callable[[float], Lab]]:
    """Start labs (emulator + client) on demand; all stopped at the end of the test."""
    stack: list[tuple[Emulator, Client]] = []

    def make(speed: float) -> Lab:
        emu = Emulator(speed=speed, seed=len(stack) + 1)
        emu.__enter__()
        client = Client(api_key="test", base_url=emu.url)
        stack.append((emu, client))
        env = clean_env()
        env["OPENAI_API_KEY"] = "test"
        env["OPENAI_BASE_URL"] = emu.url
        folder = tmp_path / f"lab{len(stack)}"
        folder.mkdir()
        return Lab(emu=emu, client=client, env=env, folder=folder)

    yield make
    for emu, client in reversed(stack):
        client.close()
        emu.__exit__(None, None, None)


@pytest.fixture
def frozen(lab_factory: Callable[[float], Lab]) -> Lab:
    """A lab whose emulated clock is stopped (moved only by ``advance``)."""
    return lab_factory(0.0)


@pytest.fixture
def fast(lab_factory: Callable[[float], Lab]) -> Lab:
    """A lab at speed 200: a 10-example one-epoch job ends in under a second."""
    return lab_factory(200.0)


# --- files ----------------------------------------------------------------------------------------


def test_files_upload_prints_the_file_object(frozen: Lab) -> None:
    """`files upload PATH --purpose fine-tune --json` prints one file object line."""
    path = frozen.folder / "train.jsonl"
    path.write_bytes(chat_jsonl(10))

    result = run_cli(
        "files", "upload", str(path), "--purpose", "fine-tune", "--json", env=frozen.env
    )

    assert 0 == result.returncode, result.stderr
    [line] = json_lines(result.stdout)
    assert field_names(FileObject) == set(line)
    assert "fine-tune" == line["purpose"]
    assert path.stat().st_size == line["bytes"]
    assert "train.jsonl" == line["filename"]
    assert [line["id"]] == [f.id for f in frozen.client.files.list()]


def test_files_upload_keeps_the_file_name(frozen: Lab) -> None:
    """A file name with a space and an accent is stored as is, not percent-encoded."""
    path = frozen.folder / "my data é.jsonl"
    path.write_bytes(chat_jsonl(10))

    result = run_cli(
        "files", "upload", str(path), "--purpose", "fine-tune", "--json", env=frozen.env
    )

    assert 0 == result.returncode, result.stderr
    [line] = json_lines(result.stdout)
    assert "my data é.jsonl" == line["filename"]


def test_files_list_get_and_piped_output(frozen: Lab) -> None:
    """`files list` prints one line per file; `files get` one; piped without --json: JSON too."""
    uploaded = [frozen.upload_training(name=f"f{i}.jsonl") for i in range(3)]

    listed, got, piped = run_many(
        [
            ("files", "list", "--json"),
            ("files", "get", uploaded[1].id, "--json"),
            ("files", "list"),  # no --json: standard output is a pipe
        ],
        env=frozen.env,
    )

    assert 0 == listed.returncode, listed.stderr
    lines = json_lines(listed.stdout)
    assert sorted(f.id for f in uploaded) == sorted(line["id"] for line in lines)
    assert all(field_names(FileObject) == set(line) for line in lines)
    assert 0 == got.returncode, got.stderr
    [line] = json_lines(got.stdout)
    assert uploaded[1].id == line["id"]
    assert "f1.jsonl" == line["filename"]
    assert 0 == piped.returncode, piped.stderr
    assert lines == json_lines(piped.stdout)


def test_files_download_writes_the_same_bytes(frozen: Lab) -> None:
    """`files download ID PATH` saves the file's exact bytes and says where."""
    uploaded = frozen.upload_training(examples=12)
    target = frozen.folder / "copy.jsonl"

    result = run_cli("files", "download", uploaded.id, str(target), "--json", env=frozen.env)

    assert 0 == result.returncode, result.stderr
    assert chat_jsonl(12) == target.read_bytes()
    [line] = json_lines(result.stdout)
    assert uploaded.id == line["file_id"]
    assert str(target) == line["path"]


def test_files_delete(frozen: Lab) -> None:
    """`files delete ID` prints the deletion and the file is gone."""
    uploaded = frozen.upload_training()

    result = run_cli("files", "delete", uploaded.id, "--json", env=frozen.env)

    assert 0 == result.returncode, result.stderr
    [line] = json_lines(result.stdout)
    assert uploaded.id == line["id"]
    assert line["deleted"] is True
    assert [] == list(frozen.client.files.list())


# --- jobs -----------------------------------------------------------------------------------------


def test_jobs_create_prints_every_field(frozen: Lab) -> None:
    """`jobs create ... --json` prints the job with every FineTuningJob field, null included."""
    training = frozen.upload_training()

    result = run_cli(
        "jobs",
        "create",
        "--model",
        MODEL,
        "--training-file",
        training.id,
        "--n-epochs",
        "1",
        "--suffix",
        "x",
        "--metadata",
        "team=a",
        "--json",
        env=frozen.env,
    )

    assert 0 == result.returncode, result.stderr
    [line] = json_lines(result.stdout)
    assert field_names(FineTuningJob) == set(line)
    assert "validating_files" == line["status"]
    assert training.id == line["training_file"]
    assert {"team": "a"} == line["metadata"]
    assert 1 == line["hyperparameters"]["n_epochs"]
    assert line["fine_tuned_model"] is None
    job = frozen.client.fine_tuning.jobs.retrieve(line["id"])
    assert {"team": "a"} == job.metadata


def test_jobs_list_filters_by_metadata_and_get(frozen: Lab) -> None:
    """`jobs list --metadata team=a` prints only those jobs, a line each; `jobs get` one job."""
    training = frozen.upload_training()
    first = frozen.create_job(training.id, team="a")
    frozen.create_job(training.id, team="b")
    second = frozen.create_job(training.id, team="a")

    listed, got = run_many(
        [("jobs", "list", "--metadata", "team=a", "--json"), ("jobs", "get", first.id, "--json")],
        env=frozen.env,
    )

    assert 0 == listed.returncode, listed.stderr
    lines = json_lines(listed.stdout)
    assert [second.id, first.id] == [line["id"] for line in lines]  # newest first
    assert ["validating_files", "validating_files"] == [line["status"] for line in lines]
    assert 0 == got.returncode, got.stderr
    [line] = json_lines(got.stdout)
    assert first.id == line["id"]
    assert field_names(FineTuningJob) == set(line)


def test_jobs_events_and_checkpoints_of_a_finished_job(frozen: Lab) -> None:
    """`jobs events ID` prints events oldest first; `jobs checkpoints ID` after it succeeded."""
    job = frozen.create_job(frozen.upload_training().id)
    frozen.emu.advance(FOREVER)
    finished = frozen.client.fine_tuning.jobs.retrieve(job.id)
    assert "succeeded" == finished.status
    newest_first = list(frozen.client.fine_tuning.jobs.list_events(job.id, limit=100))
    checkpoints = list(frozen.client.fine_tuning.jobs.checkpoints.list(job.id))

    events, listed = run_many(
        [
            ("jobs", "events", job.id, "--limit", "100", "--json"),
            ("jobs", "checkpoints", job.id, "--json"),
        ],
        env=frozen.env,
    )

    assert 0 == events.returncode, events.stderr
    lines = json_lines(events.stdout)
    assert all(field_names(FineTuningJobEvent) == set(line) for line in lines)
    assert [e.id for e in reversed(newest_first)] == [line["id"] for line in lines]
    assert "Created fine-tuning job" == lines[0]["message"]
    assert "The job has successfully completed" == lines[-1]["message"]
    assert 0 == listed.returncode, listed.stderr
    lines = json_lines(listed.stdout)
    assert [c.id for c in checkpoints] == [line["id"] for line in lines]
    assert [10] == [line["step_number"] for line in lines]
    assert all(line["fine_tuning_job_id"] == job.id for line in lines)


def test_jobs_pause_resume_cancel(frozen: Lab) -> None:
    """`jobs pause`, `resume` and `cancel` exit 0 and print the job in its new status."""
    job = frozen.create_job(frozen.upload_training().id)
    frozen.emu.advance(TO_RUNNING)
    assert "running" == frozen.client.fine_tuning.jobs.retrieve(job.id).status

    statuses = []
    for action in ("pause", "resume", "cancel"):
        result = run_cli("jobs", action, job.id, "--json", env=frozen.env)
        assert 0 == result.returncode, f"{action}: {result.stderr}"
        [line] = json_lines(result.stdout)
        assert job.id == line["id"]
        statuses.append(line["status"])

    assert ["paused", "running", "cancelled"] == statuses
    assert "cancelled" == frozen.client.fine_tuning.jobs.retrieve(job.id).status


def test_jobs_wait_success_and_failure(fast: Lab) -> None:
    """`jobs wait` prints JobUpdate lines; exit 0 when the job succeeds, 1 when it fails."""
    good = fast.create_job(fast.upload_training(10).id)
    bad = fast.create_job(fast.upload_training(3, name="short.jsonl").id)

    ok, failed = run_many(
        [
            ("jobs", "wait", good.id, "--poll-interval", "0.1", "--json"),
            ("jobs", "wait", bad.id, "--poll-interval", "0.1", "--json"),
        ],
        env=fast.env,
    )

    assert 0 == ok.returncode, ok.stderr
    lines = json_lines(ok.stdout)
    assert all(field_names(JobUpdate) == set(line) for line in lines)
    assert all(line["error"] is None and line["job"]["id"] == good.id for line in lines)
    assert "succeeded" == lines[-1]["job"]["status"]
    assert lines[-1]["job"]["fine_tuned_model"].startswith("ft:")
    assert field_names(FineTuningJob) == set(lines[-1]["job"])
    assert 1 == failed.returncode, failed.stderr
    lines = json_lines(failed.stdout)
    assert all(field_names(JobUpdate) == set(line) for line in lines)
    assert "failed" == lines[-1]["job"]["status"]
    assert "invalid_training_file" == lines[-1]["job"]["error"]["code"]


def test_jobs_watch_two_jobs(fast: Lab) -> None:
    """`jobs watch ID1 ID2` follows both to the end: updates of each, exit 0 when both succeed."""
    training = fast.upload_training().id
    first, second = fast.create_job(training), fast.create_job(training)

    result = run_cli(
        "jobs", "watch", first.id, second.id, "--poll-interval", "0.1", "--json", env=fast.env
    )

    assert 0 == result.returncode, result.stderr
    lines = json_lines(result.stdout)
    assert all(field_names(JobUpdate) == set(line) for line in lines)
    last = {line["job"]["id"]: line["job"]["status"] for line in lines}
    assert {first.id: "succeeded", second.id: "succeeded"} == last
    for line in lines:
        if line["previous_status"] is not None:
            assert line["previous_status"] != line["job"]["status"], line


def test_jobs_events_follow_tails_until_terminal(frozen: Lab) -> None:
    """`jobs events --follow` prints new events as they come, oldest first, each once, then ends."""
    job = frozen.create_job(frozen.upload_training().id)
    route = "GET /fine_tuning/jobs/{fine_tuning_job_id}/events"

    def event_polls() -> int:
        return sum(1 for r in frozen.emu.stats.requests if r.route == route)

    def polls_reach(count: int) -> bool:
        return event_polls() >= count

    with subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cli_argv("jobs", "events", job.id, "-f", "--poll-interval", "0.1", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=frozen.env,
    ) as proc:
        try:
            wait_for(partial(polls_reach, 1), "the first events poll")
            for seconds in (TO_RUNNING, 5.0, 5.0):  # running, then a few steps at a time
                target = event_polls() + 2
                frozen.emu.advance(seconds)
                wait_for(partial(polls_reach, target), "two more events polls")
            assert proc.poll() is None, "the follow ended while the job was still running"
            frozen.emu.advance(FOREVER)  # the end
            stdout, stderr = proc.communicate(timeout=BOUND)
        finally:
            if proc.poll() is None:
                proc.kill()

    assert 0 == proc.returncode, stderr
    lines = json_lines(stdout)
    expected = list(reversed(list(frozen.client.fine_tuning.jobs.list_events(job.id, limit=100))))
    assert [e.id for e in expected] == [line["id"] for line in lines]
    assert "The job has successfully completed" == lines[-1]["message"]


# --- batches --------------------------------------------------------------------------------------


def test_batches_create_list_get(frozen: Lab) -> None:
    """`batches create`, `list` and `get` print batch lines with the ids the emulator holds."""
    requests = frozen.upload_batch_input()
    other = frozen.client.batches.create(input_file_id=requests.id, endpoint="/v1/chat/completions")

    result = run_cli(
        "batches",
        "create",
        "--input-file-id",
        requests.id,
        "--endpoint",
        "/v1/chat/completions",
        "--metadata",
        "run=1",
        "--json",
        env=frozen.env,
    )

    assert 0 == result.returncode, result.stderr
    [created] = json_lines(result.stdout)
    assert "validating" == created["status"]
    assert requests.id == created["input_file_id"]
    assert "/v1/chat/completions" == created["endpoint"]
    assert {"run": "1"} == created["metadata"]
    listed, got = run_many(
        [("batches", "list", "--json"), ("batches", "get", created["id"], "--json")],
        env=frozen.env,
    )
    assert 0 == listed.returncode, listed.stderr
    assert {created["id"], other.id} == {line["id"] for line in json_lines(listed.stdout)}
    assert 0 == got.returncode, got.stderr
    [line] = json_lines(got.stdout)
    assert created["id"] == line["id"]
    assert set(created) == set(line)


def test_batches_wait_and_cancel(fast: Lab, frozen: Lab) -> None:
    """`batches wait` exits 0 with the completed batch; `batches cancel` on a fresh batch."""
    done = fast.client.batches.create(
        input_file_id=fast.upload_batch_input(3).id, endpoint="/v1/chat/completions"
    )
    fresh = frozen.client.batches.create(
        input_file_id=frozen.upload_batch_input(3).id, endpoint="/v1/chat/completions"
    )

    waited, cancelled = run_many(
        [
            ("batches", "wait", done.id, "--poll-interval", "0.1", "--json"),
            # Flags win over the environment: this one goes to the frozen emulator.
            ("batches", "cancel", fresh.id, "--base-url", frozen.emu.url, "--json"),
        ],
        env=fast.env,
    )

    assert 0 == waited.returncode, waited.stderr
    [line] = json_lines(waited.stdout)
    assert done.id == line["id"]
    assert "completed" == line["status"]
    assert {"total": 3, "completed": 3, "failed": 0} == line["request_counts"]
    assert 0 == cancelled.returncode, cancelled.stderr
    [line] = json_lines(cancelled.stdout)
    assert fresh.id == line["id"]
    assert "cancelling" == line["status"]


# --- errors ---------------------------------------------------------------------------------------


def test_missing_key_exits_2_naming_the_variable(frozen: Lab) -> None:
    """No OPENAI_API_KEY and no --api-key: exit 2, one line naming OPENAI_API_KEY, no request."""
    env = clean_env()
    env["OPENAI_BASE_URL"] = frozen.emu.url
    before = frozen.seen()

    result = run_cli("jobs", "list", "--json", env=env)

    assert 2 == result.returncode
    assert "OPENAI_API_KEY" in one_line_error(result)
    assert "" == result.stdout
    assert before == frozen.seen()


def test_api_error_exits_1_with_status_and_request_id(frozen: Lab) -> None:
    """`jobs get ftjob-nope`: exit 1, one stderr line with the 404 and the request id."""
    result = run_cli("jobs", "get", "ftjob-nope", "--json", env=frozen.env)

    assert 1 == result.returncode
    line = one_line_error(result)
    assert "404" in line
    assert "request id" in line
    assert "req_" in line
    assert "" == result.stdout


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ((*CREATE_JOB, "--n-epochs", "0"), "error: --n-epochs: must be >= 1 and <= 50, got 0"),
        (("files", "upload", "{folder}/missing.jsonl", "--purpose", "fine-tune"), "missing.jsonl"),
        (
            ("batches", "create", "--input-file-id", "file-abc", "--endpoint", "/v1/foo"),
            "error: --endpoint: must be one of",
        ),
        ((*CREATE_JOB, "--metadata", "novalue"), "--metadata"),
    ],
    ids=["n-epochs-0", "missing-path", "bad-endpoint", "metadata-without-value"],
)
def test_bad_input_exits_2_before_any_request(
    frozen: Lab, argv: tuple[str, ...], named: str
) -> None:
    """Bad input: exit 2, one line naming the parameter, and nothing reaches the emulator."""
    before = frozen.seen()

    result = run_cli(*(a.format(folder=frozen.folder) for a in argv), "--json", env=frozen.env)

    assert 2 == result.returncode, result.stderr
    assert named in one_line_error(result)
    assert "" == result.stdout
    assert before == frozen.seen()


def test_usage_error_and_version() -> None:
    """An unknown command is a usage error (exit 2); `--version` prints the version."""
    unknown, version = run_many([("nope",), ("--version",)], env=clean_env())

    assert 2 == unknown.returncode
    assert "invalid choice: 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert 0 == version.returncode, version.stderr
    assert f"finetune-async {__version__}\n" == version.stdout


def test_connection_refused_exits_1_with_one_line() -> None:
    """A base URL where nothing listens, no retries: exit 1 and one line naming the address."""
    port = free_closed_port()
    env = clean_env()

    result = run_cli(
        "jobs",
        "list",
        "--api-key",
        "test",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--max-retries",
        "0",
        env=env,
    )

    assert 1 == result.returncode
    assert f"127.0.0.1:{port}" in one_line_error(result)
    assert "" == result.stdout


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_promptly_without_traceback(frozen: Lab) -> None:
    """SIGINT during `jobs wait` (a job that never moves): exit 130 within 10 s, no traceback."""
    job = frozen.create_job(frozen.upload_training().id)
    path = f"/v1/fine_tuning/jobs/{job.id}"
    with subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cli_argv("jobs", "wait", job.id, "--poll-interval", "0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=frozen.env,
        # As in a terminal: a test run started in the background without job control inherits
        # SIGINT ignored, and Python keeps it ignored in the child.
        preexec_fn=_sigint_as_in_a_terminal,  # noqa: PLW1509 - resets one signal, nothing else
    ) as proc:
        try:
            # Interrupt once the wait is under way (the imports alone take about a second).
            wait_for(
                lambda: any(r.path == path for r in frozen.emu.stats.requests), "the first poll"
            )
            time.sleep(0.3)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=10)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()

    assert 130 == proc.returncode, stderr
    assert took < 10
    assert "Traceback" not in stderr
    assert [f"{ERROR_PREFIX}interrupted"] == stderr.strip().splitlines()
    for line in stdout.splitlines():  # what was printed before the interrupt: whole updates
        assert field_names(JobUpdate) == set(orjson.loads(line))


# --- providers ------------------------------------------------------------------------------------


def test_portkey_options_reach_the_emulator_as_portkey_headers(frozen: Lab) -> None:
    """`--portkey-provider openai --portkey-base-url URL --provider-api-key`: Portkey headers."""
    job = frozen.create_job(frozen.upload_training().id)

    result = run_cli(
        "jobs",
        "list",
        "--portkey-provider",
        "openai",
        "--portkey-base-url",
        frozen.emu.url,
        "--provider-api-key",
        "test",
        "--json",
        env=clean_env(),
    )

    assert 0 == result.returncode, result.stderr
    assert [job.id] == [line["id"] for line in json_lines(result.stdout)]
    last = frozen.emu.stats.requests[-1]
    assert "/v1/fine_tuning/jobs" == last.path
    assert "openai" == header(last.headers, "x-portkey-provider")
    assert sent_header(last, "authorization", "Bearer test")


def test_azure_options_send_an_api_key_header_to_openai_paths(frozen: Lab) -> None:
    """The `--azure-*` options: a request to /openai/... with an `api-key` header."""
    before = frozen.seen()

    result = run_cli(
        "jobs",
        "list",
        "--azure-endpoint",
        f"http://127.0.0.1:{frozen.emu.port}",
        "--azure-api-key",
        "k",
        "--azure-api-version",
        "2025-04-01-preview",
        "--max-retries",
        "0",
        env=clean_env(),
    )

    # The emulator wants a Bearer key, so it answers this request 401: an API error, exit 1.
    assert 1 == result.returncode
    assert "request id" in one_line_error(result)
    assert before + 1 == frozen.seen()
    last = frozen.emu.stats.requests[-1]
    assert "/openai/fine_tuning/jobs" == last.path
    assert sent_header(last, "api-key", "k")
    assert header(last.headers, "authorization") is None


# --- packaging ------------------------------------------------------------------------------------


def test_the_sdk_never_imports_rich() -> None:
    """Importing the SDK and the emulator loads no `rich` (the UI library is the CLI's alone)."""
    code = (
        "import sys, finetune_async, finetune_async.emulator\n"
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))\n"
    )

    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env=clean_env(),
        check=False,
    )

    assert 0 == result.returncode, result.stderr
    assert "[]\n" == result.stdout
