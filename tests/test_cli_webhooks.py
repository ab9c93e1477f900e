"""`finetune-async webhooks listen` and `emulator --webhook-url`, run as a user runs them.

The flow end to end: the emulator and the listener each in a subprocess, a job created through
the SDK at a high speed, and the listener printing the succeeded event. Then the listener alone,
fed deliveries signed here: a refused one is reported on stderr, a reader that goes away ends it
quietly, and bad flags exit 2 naming the flag. Last, the emulator on its own thread (``with
Emulator()``), advanced from the caller's. Synchronous (subprocesses and the blocking ``Client``),
so in a module of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import io
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from finetune_async import Client
from finetune_async.cli._output import Output
from finetune_async.cli._webhooks import _Printer
from finetune_async.emulator import Emulator
from finetune_async.types import WebhookEvent, WebhookEventData
from finetune_async.webhooks import sign, verify_signature

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SECRET = "whsec_" + base64.b64encode(b"cli webhooks test key, 32 bytes.").decode()
MODEL = "gpt-4o-mini-2024-07-18"
#: Bound of every subprocess and wait of this module, in real seconds (a loaded machine).
BOUND = 60.0
ERROR_PREFIX = "finetune-async: error: "


def clean_env(**extra: str) -> dict[str, str]:
    """The test environment without any client variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PORTKEY_"))}
    return {**env, **extra}


class Running:
    """A CLI subprocess whose stdout and stderr lines are read on threads, with a bounded wait."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "finetune_async", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        self.err_lines: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                lines.put(line.rstrip("\n"))

    def line(self, lines: queue.Queue[str], what: str, bound: float = BOUND) -> str:
        try:
            return lines.get(timeout=bound)
        except queue.Empty:
            pytest.fail(f"no {what} within {bound} s")

    def err_line(self, what: str) -> str:
        line = self.line(self.stderr, what)
        self.err_lines.append(line)
        return line

    def interrupt(self) -> int:
        """Ctrl-C, and the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=BOUND)

    def kill(self) -> None:
        """End the process if it still runs, and close its pipes once read to the end."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=BOUND)
        for pump in self._pumps:
            pump.join(timeout=BOUND)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def running(*args: str, env: dict[str, str]) -> Iterator[Running]:
    proc = Running(*args, env=env)
    try:
        yield proc
    finally:
        proc.kill()


def listening_port(listener: Running) -> int:
    line = listener.err_line("listening line")
    assert "finetune-async webhooks listening on http://127.0.0.1:" in line, line
    return int(line.split("127.0.0.1:")[1].split("/")[0])


def post(port: int, body: bytes, headers: dict[str, str]) -> int:
    """POST one delivery to the listener; its status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=BOUND) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def delivery(event_id: str, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "batch.completed",
            "created_at": int(time.time()),
            "data": {"id": "batch_abc"},
        }
    )
    headers = sign(body, secret=secret, webhook_id="wh_" + event_id, timestamp=int(time.time()))
    return body, {**headers, "content-type": "application/json"}


def training_file(folder: Path) -> Path:
    path = folder / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(10)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


# --- the whole flow -----------------------------------------------------------------------------


def test_emulator_pushes_a_succeeded_job_to_webhooks_listen(tmp_path: Path) -> None:
    """emulator --webhook-url -> webhooks listen --json: the job's succeeded event is printed."""
    env = clean_env()
    with (
        running("webhooks", "listen", "--port", "0", "--secret", SECRET, "--json", env=env) as lst,
    ):
        port = listening_port(lst)
        url = f"http://127.0.0.1:{port}/"
        emulator_args = ("emulator", "--port", "0", "--speed", "2000")
        with running(
            *emulator_args, "--webhook-url", url, "--webhook-secret", SECRET, env=env
        ) as emu:
            first = emu.line(emu.stdout, "the emulator's listening line")
            base_url = first.rsplit(" ", 1)[-1]
            assert f"finetune-async emulator sends webhooks to {url}" == emu.line(
                emu.stdout, "the webhook line"
            )
            with Client(base_url=base_url, api_key="test") as client:
                uploaded = client.files.create(file=training_file(tmp_path), purpose="fine-tune")
                job = client.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
            event = orjson.loads(lst.line(lst.stdout, "the succeeded event"))
            assert 0 == emu.interrupt()
        assert 0 == lst.interrupt()

    assert "fine_tuning.job.succeeded" == event["type"]
    assert job.id == event["data"]["id"]
    assert event["id"].startswith("evt_")
    assert event["webhook_id"].startswith("wh_")
    assert lst.stdout.empty()


def test_emulator_without_a_secret_prints_the_generated_one() -> None:
    """No --webhook-secret (nor $OPENAI_WEBHOOK_SECRET): one is generated and shown once."""
    with running(
        "emulator", "--port", "0", "--webhook-url", "http://127.0.0.1:9/", env=clean_env()
    ) as emu:
        emu.line(emu.stdout, "the listening line")
        emu.line(emu.stdout, "the webhook line")
        shown = emu.line(emu.stdout, "the secret line")
        assert 0 == emu.interrupt()

    secret = shown.split(" signs them with ")[1].split(" ")[0]
    assert 32 == len(base64.b64decode(secret.removeprefix("whsec_")))
    assert "webhooks listen --secret" in shown


# --- the listener alone ---------------------------------------------------------------------------


def test_listen_takes_the_secret_from_the_environment_and_reports_refusals() -> None:
    """$OPENAI_WEBHOOK_SECRET is the secret; a delivery signed otherwise is 400, told on stderr."""
    env = clean_env(OPENAI_WEBHOOK_SECRET=SECRET)
    with running("webhooks", "listen", "--port", "0", env=env) as lst:
        port = listening_port(lst)
        other = "whsec_" + base64.b64encode(b"z" * 32).decode()
        assert 400 == post(port, *delivery("evt_bad", other))
        refused = lst.err_line("the refusal")
        assert 200 == post(port, *delivery("evt_good"))
        printed = orjson.loads(lst.line(lst.stdout, "the event"))  # a pipe: JSON lines
        assert 0 == lst.interrupt()

    assert refused.startswith("finetune-async: refused POST /: 400 ")
    assert "--secret" in refused
    assert "evt_good" == printed["id"]
    assert lst.stdout.empty()


def test_listen_ends_quietly_when_its_reader_goes_away() -> None:
    """`listen | head -1`: the next event finds no reader; exit 0, no traceback, answered 500."""
    # Its own pipes, read here (closing a pipe that a pump thread reads is not safe).
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune_async", "webhooks", "listen", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(OPENAI_WEBHOOK_SECRET=SECRET),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        assert select.select([proc.stderr], [], [], BOUND)[0], "no listening line"
        line = proc.stderr.readline().decode()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        assert 200 == post(port, *delivery("evt_1"))
        assert select.select([proc.stdout], [], [], BOUND)[0], "no event line"
        assert b"evt_1" in proc.stdout.readline()
        proc.stdout.close()
        with contextlib.suppress(OSError):
            assert 500 == post(port, *delivery("evt_2"))
        code = proc.wait(timeout=BOUND)
        rest = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=BOUND)
        proc.stderr.close()

    assert 0 == code
    assert "Traceback" not in rest
    assert "" == rest.strip()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("webhooks", "listen", "--port", "0"), {}, "--secret: no webhook secret"),
        (("webhooks", "listen", "--port", "0", "--secret", "nope"), {}, "--secret"),
        (("webhooks", "listen"), {}, "--port"),
        (
            ("emulator", "--port", "0", "--webhook-secret", SECRET),
            {},
            "--webhook-secret needs --webhook-url",
        ),
        (("emulator", "--port", "0", "--webhook-url", "ftp://x/"), {}, "--webhook-url"),
        (
            ("emulator", "--port", "0", "--webhook-url", "http://x/", "--webhook-secret", "no"),
            {},
            "--webhook-secret",
        ),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    """A missing or malformed secret or URL: one line on stderr naming the flag, exit 2."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "finetune_async", *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env=clean_env(**env),
        check=False,
    )
    assert 2 == result.returncode, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "" == result.stdout


def test_listen_on_a_busy_port_exits_1_naming_the_flags() -> None:
    """An address in use: one line naming --host and --port, exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "finetune_async", "webhooks", "listen", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=BOUND,
            env=clean_env(OPENAI_WEBHOOK_SECRET=SECRET),
            check=False,
        )

    assert 1 == result.returncode
    lines = result.stderr.strip().splitlines()
    assert 1 == len(lines), result.stderr
    assert lines[0].startswith(ERROR_PREFIX + f"cannot listen on 127.0.0.1:{port} (--host, --port)")


def test_a_terminal_gets_one_row_per_event_under_one_header() -> None:
    """Without JSON: a header once, then one row per event (time, type, object id, event id)."""
    stream = io.StringIO()
    printer = _Printer(Output(json_mode=False, stream=stream), asyncio.Event())
    for n in (1, 2):
        event = WebhookEvent(
            id=f"evt_{n}",
            type="fine_tuning.job.succeeded",
            created_at=1_700_000_000,
            data=WebhookEventData(id=f"ftjob-{n}", raw={"id": f"ftjob-{n}"}),
            webhook_id=f"wh_{n}",
        )
        asyncio.run(printer(event))

    header, first, second = stream.getvalue().splitlines()
    assert header.split() == ["created", "type", "object", "event"]
    assert ["fine_tuning.job.succeeded", "ftjob-1", "evt_1"] == first.split()[1:]
    assert "evt_2" == second.split()[-1]


# --- the emulator on its own thread -----------------------------------------------------------


def test_a_threaded_emulator_pushes_when_another_thread_advances(tmp_path: Path) -> None:
    """`with Emulator()` runs on its own thread: add_webhook and advance from the caller's."""
    seen: list[tuple[bytes, dict[str, str]]] = []

    class Record(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            seen.append((self.rfile.read(length), dict(self.headers)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Emulator(speed=0) as emu, Client(base_url=emu.url, api_key="test") as client:
            endpoint = emu.add_webhook(f"http://127.0.0.1:{server.server_address[1]}/")
            uploaded = client.files.create(file=training_file(tmp_path), purpose="fine-tune")
            job = client.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
            emu.advance(100_000.0)
            deadline = time.monotonic() + BOUND
            while not seen and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        server.shutdown()
        server.server_close()

    assert seen, "no delivery"
    body, headers = seen[0]
    assert isinstance(endpoint.secret, str)
    verify_signature(body, headers, secret=endpoint.secret)
    assert job.id == orjson.loads(body)["data"]["id"]
