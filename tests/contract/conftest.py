"""The contract servers: Stoplight Prism on the official spec, and Portkey's open-source gateway.

Both come from npm, pinned in ``package.json`` and ``package-lock.json`` beside this file and
installed by ``npm ci --prefix tests/contract`` (``.ci/run`` does it). Each server is started once
per run, on a free 127.0.0.1 port, in a process group of its own; the fixtures are package-scoped,
so the group is killed as soon as the run leaves this package, not at the end of the whole suite.

Without node (or without the installed packages) on a developer's machine these tests are skipped
with the reason; under ``CI=true`` that is a failure instead, so CI can never pass by skipping the
contract.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, NoReturn

import pytest

from tests.conftest import SPEC_PATH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# The shared checks live in a helper module: let pytest explain its failed asserts too.
pytest.register_assert_rewrite("tests.contract.operations")

CONTRACT_DIR: Final = Path(__file__).resolve().parent
NODE_MODULES: Final = CONTRACT_DIR / "node_modules"
PRISM_PACKAGE: Final = "@stoplight/prism-cli"
GATEWAY_PACKAGE: Final = "@portkey-ai/gateway"
PRISM_JS: Final = NODE_MODULES / PRISM_PACKAGE / "dist" / "index.js"
GATEWAY_JS: Final = NODE_MODULES / GATEWAY_PACKAGE / "build" / "start-server.js"

#: Prism's modes: the spec's examples, and random schema-valid answers for each seed.
PRISM_SEEDS: Final = (1, 2, 3)
PRISM_MODES: Final = ("static", *(f"dynamic-{seed}" for seed in PRISM_SEEDS))

#: Bounds on a server's start (Prism takes about 2 s alone, more when several start at once on a
#: busy two-core machine) and on its stop.
READY_TIMEOUT: Final = 90.0
STOP_TIMEOUT: Final = 10.0
_PORT_ATTEMPTS: Final = 3

#: How long each server took to answer its first request, for the closing summary.
STARTUP_SECONDS: dict[str, float] = {}


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where a contract test may never be skipped."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test on a developer's machine; fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the contract tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def _pinned_versions() -> dict[str, str]:
    manifest = json.loads((CONTRACT_DIR / "package.json").read_text(encoding="utf-8"))
    return dict(manifest["dependencies"])


def node_for(package: str, script: Path) -> str:
    """Return the node executable, once ``package`` is installed at its pinned version."""
    node = shutil.which("node")
    if node is None:
        unavailable(
            "node is not installed: the contract tests run Prism and the Portkey gateway on "
            "Node.js 20+ (then run `npm ci --prefix tests/contract`)"
        )
    if not script.is_file():
        unavailable(f"{package} is not installed: run `npm ci --prefix tests/contract`")
    installed = json.loads((NODE_MODULES / package / "package.json").read_text(encoding="utf-8"))[
        "version"
    ]
    pinned = _pinned_versions()[package]
    if installed != pinned:
        # Never skip here: the tests would be checking a server other than the pinned one.
        pytest.fail(
            f"{package} {installed} is installed but {pinned} is pinned: "
            "run `npm ci --prefix tests/contract`",
            pytrace=False,
        )
    return node


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_http(port: int) -> bool:
    """Whether something answers ``GET /`` on the port with any HTTP status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


class NodeServer:
    """One node process serving HTTP, started on a free port in a process group of its own."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], log_path: Path) -> None:
        """Describe the server; ``argv`` builds its command line for a port."""
        self.name = name
        self._argv = argv
        self.log_path = log_path
        self.port = 0
        self.startup_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._launched = 0.0

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``, no path."""
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        """Start the process on a fresh free port; ``wait_ready`` waits for it."""
        self.port = _free_port()
        self._log = self.log_path.open("ab")
        self._launched = time.monotonic()
        self._process = subprocess.Popen(  # noqa: S603 - node and our own arguments
            self._argv(self.port),
            cwd=CONTRACT_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole in stop()
        )

    def wait_ready(self, deadline: float) -> None:
        """Return once the server answers HTTP; relaunch it if another process took its port.

        Raises:
            RuntimeError: It exited, or did not answer before ``deadline`` (``time.monotonic``).
        """
        for _ in range(_PORT_ATTEMPTS):
            process = self._process
            assert process is not None, "launch() first"
            while process.poll() is None:
                if _answers_http(self.port):
                    self.startup_seconds = time.monotonic() - self._launched
                    STARTUP_SECONDS[self.name] = self.startup_seconds
                    return
                if time.monotonic() > deadline:
                    self.stop()
                    msg = f"{self.name} did not answer within {READY_TIMEOUT} s:\n{self.tail()}"
                    raise RuntimeError(msg)
                time.sleep(0.1)
            if "EADDRINUSE" not in self.log():
                break
            # The free port was taken between the probe and the server's bind: try another.
            self.stop()
            self.launch()
        self.stop()
        msg = f"{self.name} exited before answering:\n{self.tail()}"
        raise RuntimeError(msg)

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_size(self) -> int:
        """The log's length in bytes, to read only what comes after it."""
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        """What the server wrote after ``offset`` bytes."""
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")

    def tail(self, lines: int = 30) -> str:
        """The log's last lines, for a failure message."""
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the process group (SIGKILL after ``STOP_TIMEOUT``); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, sig)


def start_all(servers: list[NodeServer]) -> None:
    """Launch every server at once, then wait for each (they start in parallel)."""
    for server in servers:
        server.launch()
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        for server in servers:
            server.wait_ready(deadline)
    except BaseException:
        for server in servers:
            server.stop()
        raise


def prism_argv(node: str, seed: int | None) -> Callable[[int], list[str]]:
    """Prism's command line: ``--errors`` turns every request violation into an error answer."""

    def argv(port: int) -> list[str]:
        dynamic = [] if seed is None else ["--dynamic", "--seed", str(seed)]
        return [
            node,
            str(PRISM_JS),
            "mock",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--errors",
            *dynamic,
            str(SPEC_PATH),
        ]

    return argv


@pytest.fixture(scope="package")
def prism_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NodeServer]]:
    """Prism on the spec, static and dynamic (one per seed), by mode name (``PRISM_MODES``)."""
    node = node_for(PRISM_PACKAGE, PRISM_JS)
    logs = tmp_path_factory.mktemp("prism")
    seeds: dict[str, int | None] = {"static": None}
    seeds.update({f"dynamic-{seed}": seed for seed in PRISM_SEEDS})
    servers = {
        mode: NodeServer(f"prism {mode}", prism_argv(node, seed), logs / f"{mode}.log")
        for mode, seed in seeds.items()
    }
    start_all(list(servers.values()))
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeServer]:
    """The Portkey gateway, ``--headless`` (it ignores ``PORT`` and listens on every interface)."""
    node = node_for(GATEWAY_PACKAGE, GATEWAY_JS)
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    server = NodeServer(
        "portkey gateway", lambda port: [node, str(GATEWAY_JS), f"--port={port}", "--headless"], log
    )
    start_all([server])
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's OPENAI_* / PORTKEY_* / AZURE_* variables out of every contract test."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "PORTKEY_", "AZURE_")):
            monkeypatch.delenv(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how long each contract server took to start, when any was started."""
    if STARTUP_SECONDS:
        started = ", ".join(f"{name} {secs:.1f} s" for name, secs in STARTUP_SECONDS.items())
        terminalreporter.write_line(f"contract servers started in: {started}")
