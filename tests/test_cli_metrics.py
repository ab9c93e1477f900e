"""`finetune-async jobs metrics ID [--plot FILE.png]` and `batches results ID`, run in-process.

One emulator at speed 200 runs on its own thread for the whole module, with one job run to
success and one batch run to completion; each test calls ``main([...])`` against it with the
connection given as flags, and reads what it printed.
"""

from __future__ import annotations

import asyncio
import io
import os
import struct
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import attrs
import orjson
import pytest

from finetune_async import Client
from finetune_async.cli import main
from finetune_async.cli._commands import COMMANDS
from finetune_async.cli._output import Output
from finetune_async.data import BatchRequest, StepMetrics, write_batch_input
from finetune_async.emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MODEL = "gpt-4o-mini-2024-07-18"
#: Bound, in seconds, of every wait of this module.
BOUND = 60.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ERROR_PREFIX = "finetune-async: error: "


@attrs.frozen
class Lab:
    """The module's emulator, a finished job, a completed batch, and the flags to reach them."""

    emu: Emulator
    job_id: str
    rows: list[StepMetrics]
    batch_id: str
    flags: tuple[str, ...]

    def seen(self) -> int:
        """How many requests the emulator has answered."""
        return len(self.emu.stats.requests)


def training_jsonl(examples: int) -> bytes:
    """A valid supervised training file."""
    lines = [
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {i}?"},
                    {"role": "assistant", "content": f"answer {i}."},
                ]
            }
        )
        for i in range(examples)
    ]
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """Run a 10-step job to success and a 3-request batch to completion, once for the module."""
    with Emulator(speed=200, seed=41) as emu, Client(api_key="test", base_url=emu.url) as client:
        uploaded = client.files.create(file=training_jsonl(10), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model=MODEL,
            training_file=uploaded.id,
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
        )
        stream = io.BytesIO()
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        requests = [BatchRequest("r-1", body), BatchRequest("r-2", body)]
        requests.append(BatchRequest("r-3", {"messages": body["messages"]}))  # no model: a 400
        write_batch_input(stream, requests)
        batch_file = client.files.create(file=stream.getvalue(), purpose="batch")
        batch = client.batches.create(input_file_id=batch_file.id, endpoint="/v1/chat/completions")
        finished = client.fine_tuning.jobs.wait(job.id, poll_interval=0.1, timeout=BOUND)
        assert "succeeded" == finished.status
        assert "completed" == client.batches.wait(batch.id, poll_interval=0.1, timeout=BOUND).status
        rows = client.fine_tuning.jobs.metrics(job.id)
        flags = ("--api-key", "test", "--base-url", emu.url)
        yield Lab(emu=emu, job_id=job.id, rows=rows, batch_id=batch.id, flags=flags)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the machine's client variables reaches the commands."""
    for key in list(os.environ):
        if key.startswith(("OPENAI_", "PORTKEY_", "AZURE_")):
            monkeypatch.delenv(key)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object."""
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines), text
    return lines


def png_size(data: bytes) -> tuple[int, int]:
    """The width and height a PNG's header chunk declares."""
    assert PNG_SIGNATURE == data[:8]
    assert b"IHDR" == data[12:16]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_metrics_json_prints_one_row_per_step(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """`jobs metrics ID --json`: one object per step with every field, the SDK's rows."""
    code = main(["jobs", "metrics", lab.job_id, *lab.flags, "--json"])

    printed = json_lines(capsys.readouterr().out)
    assert 0 == code
    assert [attrs.asdict(row) for row in lab.rows] == printed
    assert list(range(1, 11)) == [line["step"] for line in printed]


def test_plot_writes_a_png_of_the_loss_curves(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--plot FILE.png` writes a non-empty PNG with curves drawn; JSON mode prints rows only."""
    target = tmp_path / "loss.png"

    code = main(["jobs", "metrics", lab.job_id, *lab.flags, "--plot", str(target), "--json"])

    assert 0 == code
    data = target.read_bytes()
    width, height = png_size(data)
    assert width > 0
    assert height > 0
    assert len(data) > len(PNG_SIGNATURE)
    from matplotlib.image import imread

    pixels = imread(target)
    colours = {tuple(pixel) for pixel in pixels.reshape(-1, pixels.shape[-1]).tolist()}
    assert len(colours) > 10, "the image is blank: no curve, axis or text drawn"
    assert len(lab.rows) == len(json_lines(capsys.readouterr().out))


def test_plot_without_matplotlib_exits_2_before_any_request(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without matplotlib, `--plot` exits 2 saying which extra to install; nothing is sent."""
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    before = lab.seen()

    code = main(["jobs", "metrics", lab.job_id, *lab.flags, "--plot", str(tmp_path / "l.png")])

    assert 2 == code
    assert f"{ERROR_PREFIX}--plot needs matplotlib: install finetune-async[plot]\n" == (
        capsys.readouterr().err
    )
    assert before == lab.seen()
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_plot_to_a_bad_place_exits_2_before_any_request(
    lab: Lab, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A target in a missing folder, or a folder itself, exits 2 naming it; nothing is sent."""
    target = tmp_path / "missing" / "loss.png" if where == "missing-folder" else tmp_path
    before = lab.seen()

    code = main(["jobs", "metrics", lab.job_id, *lab.flags, "--plot", str(target)])

    assert 2 == code
    assert capsys.readouterr().err.startswith(f"{ERROR_PREFIX}--plot: ")
    assert before == lab.seen()


def test_metrics_of_an_unfinished_job_exit_1_with_its_status(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job with no result file yet: exit 1 and one line giving its status."""
    with Client(api_key="test", base_url=lab.emu.url) as client:
        uploaded = client.files.create(file=training_jsonl(10), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)

    code = main(["jobs", "metrics", job.id, *lab.flags])

    error = capsys.readouterr().err
    assert 1 == code
    assert 1 == len(error.splitlines())
    assert error.startswith(f"{ERROR_PREFIX}job {job.id} has no result file: it is ")


def run_handler(command: tuple[str, str], argv: list[str]) -> str:
    """Run one command's handler with terminal-style output (tables) and return what it printed."""
    from finetune_async.cli import _parser
    from finetune_async.cli._config import make_client

    args = _parser().parse_args(argv)
    stream = io.StringIO()

    async def run() -> int:
        async with make_client(args) as client:
            return await COMMANDS[command](client, args, Output(json_mode=False, stream=stream))

    assert 0 == asyncio.run(run())
    return stream.getvalue()


def test_metrics_table_shows_the_columns_with_values(lab: Lab, tmp_path: Path) -> None:
    """On a terminal: a table of the columns the file has, then where the plot went."""
    target = tmp_path / "loss.png"

    text = run_handler(
        ("jobs", "metrics"), ["jobs", "metrics", lab.job_id, *lab.flags, "--plot", str(target)]
    )

    header = text.splitlines()[1:4]
    for column in ("step", "train_loss", "valid_loss"):
        assert any(column in line for line in header), text
    assert "full_valid_loss" not in text  # no value in the emulator's file: no column
    # The console wraps long lines at its width: compare with the line breaks taken out.
    assert "".join(f"saved the loss curves to {target}".split()) in "".join(text.split())
    assert 0 < target.stat().st_size


def test_batches_results_json_prints_one_result_per_line(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """`batches results ID --json`: one typed result a line, the refused request included."""
    code = main(["batches", "results", lab.batch_id, *lab.flags, "--json"])

    printed = json_lines(capsys.readouterr().out)
    assert 0 == code
    assert {"r-1": 200, "r-2": 200, "r-3": 400} == {
        line["custom_id"]: line["status_code"] for line in printed
    }
    assert {"custom_id", "id", "status_code", "request_id", "body", "error"} == set(printed[0])


def test_batches_results_table(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal: one row per request with its status and why it failed."""
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no cell is folded
    text = run_handler(("batches", "results"), ["batches", "results", lab.batch_id, *lab.flags])

    assert "error_message" in text
    assert "you must provide a model parameter" in text
    for custom_id in ("r-1", "r-2", "r-3"):
        assert custom_id in text


def test_the_cli_imports_matplotlib_only_to_plot() -> None:
    """Importing the SDK and the command line loads no matplotlib."""
    code = (
        "import sys, finetune_async, finetune_async.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )

    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND, check=False
    )

    assert 0 == result.returncode, result.stderr
    assert "[]\n" == result.stdout
