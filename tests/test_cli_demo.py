"""``finetune-async demo`` runs a whole workflow on its embedded emulator and exits 0.

The demo needs no key and no network. Both runs (piped without ``--json``, and with ``--json``)
start together in a module fixture, since each mostly waits on the emulated clock; every line of
their output must be a JSON object.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Any

import attrs
import orjson
import pytest

#: The issue's bound: the demo ends in under a minute.
BOUND = 60.0
MODES = {"piped": (), "json": ("--json",)}


@attrs.frozen
class DemoRun:
    """One finished demo: its exit code, output and wall-clock duration."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


def clean_env() -> dict[str, str]:
    """The environment without any of the clients' variables (the demo needs none)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "PORTKEY_", "AZURE_"))
    }


@pytest.fixture(scope="module")
def runs() -> dict[str, DemoRun]:
    """Run the demo in both output modes at once, each to its end within the bound."""
    started = time.monotonic()
    finished: dict[str, DemoRun] = {}
    with contextlib.ExitStack() as stack:
        procs = {
            mode: stack.enter_context(
                subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    [sys.executable, "-m", "finetune_async", "demo", *flags],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=clean_env(),
                )
            )
            for mode, flags in MODES.items()
        }
        try:
            for mode, proc in procs.items():
                left = max(1.0, BOUND - (time.monotonic() - started))
                stdout, stderr = proc.communicate(timeout=left)
                seconds = time.monotonic() - started
                finished[mode] = DemoRun(proc.returncode, stdout, stderr, seconds)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
    return finished


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Parse every line as one JSON object."""
    lines = stdout.splitlines()
    assert lines, "the demo printed nothing"
    parsed = []
    for line in lines:
        value = orjson.loads(line)
        assert isinstance(value, dict), f"not a JSON object: {line!r}"
        parsed.append(value)
    return parsed


@pytest.mark.parametrize("mode", list(MODES))
def test_demo_exits_0_within_a_minute(runs: dict[str, DemoRun], mode: str) -> None:
    """The demo exits 0, without a traceback, in under a minute."""
    run = runs[mode]

    assert 0 == run.returncode, run.stderr
    assert "Traceback" not in run.stderr
    assert run.seconds < BOUND


@pytest.mark.parametrize("mode", list(MODES))
def test_demo_prints_json_lines_of_the_whole_workflow(runs: dict[str, DemoRun], mode: str) -> None:
    """Every line is JSON: the `ft:` model, 5 batch results, and last, the demo finished."""
    lines = json_lines(runs[mode].stdout)

    assert lines[-1]["message"].startswith("demo finished")
    assert lines[-1]["ok"] is True
    models = [line["model"] for line in lines if "model" in line and "message" in line]
    assert 1 == len(models), models
    assert models[0].startswith("ft:gpt-4o-mini-2024-07-18:")
    assert f"fine-tuned model: {models[0]}" in [line.get("message") for line in lines]
    updates = [line for line in lines if {"job", "previous_status", "error"} == set(line)]
    assert updates, "no job update line"
    assert "succeeded" == updates[-1]["job"]["status"]
    assert models[0] == updates[-1]["job"]["fine_tuned_model"]
    results = [line for line in lines if "custom_id" in line]
    assert [f"question-{i}" for i in range(1, 6)] == [line["custom_id"] for line in results]
    assert all(isinstance(line["answer"], str) and line["answer"] for line in results)
