"""A blocking ``Client`` used before ``os.fork()`` works in the child, and still in the parent.

The child gets a portal, loop and session of its own at its first call; it never uses nor
finalizes the parent's (docs/architecture.md rule 11): a finalized session would unregister the
parent's sockets from the epoll instance both processes share, and the parent's next call would
time out. Real forks, against the emulator on a thread of the test process: ``os.fork`` in a
fresh interpreter whose child exits normally (threading's exit hook, then interpreter
finalization), and a ``multiprocessing`` "fork" context from the test process itself. Every wait
is bounded; a child that hangs is killed and fails the test.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from finetune_async import Client
from finetune_async.emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.connection import Connection

MODEL = "gpt-4o-mini-2024-07-18"
#: Bound of every wait for a child, in seconds.
BOUND = 20.0
#: Python 3.12+ warns when a process with threads forks (the emulator and the portal are threads).
FORK_WITH_THREADS = "ignore:.*fork\\(\\) may lead to deadlocks:DeprecationWarning"

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings(FORK_WITH_THREADS),
]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """An emulator on a thread of the test process (a forked child inherits none of it)."""
    with Emulator(speed=0, seed=7) as running:
        yield running


# The parent uses a client (and a derived one) so that their portal, loop and session exist,
# forks, waits for the child with a deadline (killing it if it hangs), then calls again. A read
# timeout bounds the parent's last call: a broken epoll registration makes it time out.
FORK_SCRIPT = """
    import os, sys, time, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, Python 3.12+
    from finetune_async import Client

    url, child_calls = sys.argv[1], sys.argv[2] == "call"
    client = Client(base_url=url, api_key="test", max_retries=0, timeout=10)
    derived = client.with_options(max_retries=0)
    print("parent", client.models.retrieve("{model}").id, flush=True)
    print("derived", derived.models.retrieve("{model}").id, flush=True)
    pid = os.fork()
    if pid == 0:
        if child_calls:
            print("child", client.models.retrieve("{model}").id, flush=True)
            print("child-derived", derived.models.retrieve("{model}").id, flush=True)
        sys.exit(0)  # a normal exit: threading's exit hook, then finalization
    deadline = time.monotonic() + {bound}
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("child-hung", flush=True)
            sys.exit(3)
        time.sleep(0.01)
    print("child-exit", os.waitstatus_to_exitcode(status), flush=True)
    print("parent-after", client.models.retrieve("{model}").id, flush=True)
    print("derived-after", derived.models.retrieve("{model}").id, flush=True)
    client.close()
"""


@pytest.mark.parametrize("child", ["call", "exit"], ids=["child-calls", "child-only-exits"])
def test_os_fork_child_and_parent_both_complete_calls(emu: Emulator, child: str) -> None:
    """After os.fork the child's calls succeed, its exit does not hang, the parent still works."""
    script = textwrap.dedent(FORK_SCRIPT).format(model=MODEL, bound=BOUND)
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script, emu.url, child],
        capture_output=True,
        text=True,
        timeout=3 * BOUND,
        check=False,
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    child_lines = [f"child {MODEL}", f"child-derived {MODEL}"] if child == "call" else []
    assert [
        f"parent {MODEL}",
        f"derived {MODEL}",
        *child_lines,
        "child-exit 0",
        f"parent-after {MODEL}",
        f"derived-after {MODEL}",
    ] == done.stdout.splitlines(), done.stderr
    assert "Traceback" not in done.stderr


def _child_work(client: Client, calls: bool, report: Connection) -> None:
    """In the forked child: call the client (or not), report, and return (the child then exits)."""
    report.send(client.models.retrieve(MODEL).id if calls else "exiting")
    report.close()


@pytest.mark.parametrize("child", ["call", "exit"], ids=["child-calls", "child-only-exits"])
def test_multiprocessing_fork_child(emu: Emulator, child: str) -> None:
    """A multiprocessing "fork" child calls and exits; its join returns; the parent still works."""
    context = multiprocessing.get_context("fork")
    with Client(base_url=emu.url, api_key="test", max_retries=0, timeout=10) as client:
        assert MODEL == client.models.retrieve(MODEL).id  # the portal, loop and session exist
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_child_work, args=(client, child == "call", writer))
        process.start()
        writer.close()
        try:
            process.join(BOUND)
            hung = process.is_alive()
        finally:
            if process.is_alive():
                process.kill()
                process.join(BOUND)
        assert not hung, "the fork child hung (in its call or in threading._shutdown)"
        assert 0 == process.exitcode
        assert reader.poll(BOUND)
        assert (MODEL if child == "call" else "exiting") == reader.recv()
        reader.close()
        # The parent's pool, loop and thread were not touched by the child.
        assert MODEL == client.models.retrieve(MODEL).id
        assert MODEL == client.models.retrieve(MODEL).id
