"""The benchmark harness runs end to end in a tiny mode; speed is never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "benchmarks" / "run.py"

# Runs the harness as if `openai` were not installed, whatever this environment has (the test
# dependencies do not include it; the bench group does): `find_spec` is how the harness looks.
_WITHOUT_OPENAI = """
import importlib.util, runpy, sys
find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *rest: None if name == "openai" else find_spec(name, *rest)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_harness_without_openai_writes_one_row_per_runner_and_workload(tmp_path: Path) -> None:
    """Every workload x runner gives one row of positive figures, and openai's absence is noted."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable,
            "-c",
            _WITHOUT_OPENAI,
            str(HARNESS),
            "--quick",
            "--scale",
            "0.005",
            "--import-samples",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    (results,) = tmp_path.glob("bench-*.json")
    document = json.loads(results.read_text())
    rows = {(row["workload"], row["runner"]): row for row in document["rows"]}
    assert {
        ("retrieve_c64", "floor"),
        ("retrieve_c64", "finetune_async"),
        ("retrieve_c1", "floor"),
        ("retrieve_c1", "finetune_async"),
        ("retrieve_c1", "Client"),
        ("list_walk", "floor"),
        ("list_walk", "finetune_async"),
        ("list_walk", "Client"),
        ("events_walk", "floor"),
        ("events_walk", "finetune_async"),
        ("watch", "floor"),
        ("watch", "finetune_async"),
        ("import", "floor"),
        ("import", "finetune_async"),
        ("structure_page", "finetune_async"),
        ("structure_job", "finetune_async"),
    } == set(rows)
    assert len(rows) == len(document["rows"])  # one row each, no duplicates
    # Counts x0.005: 100 and 15 retrieves, a 50-job list and 50 events (each walked 5 times),
    # 50 jobs watched (3 polls).
    expected_units = {
        "retrieve_c64": 100,
        "retrieve_c1": 15,
        "list_walk": 5 * 50,
        "events_walk": 5 * 50,
        "watch": 150,
    }
    for (workload, runner), row in rows.items():
        assert row["value"] > 0, (workload, runner)
        assert 1 == row["samples"], (workload, runner)
        if workload in expected_units:
            assert expected_units[workload] == row["units"], (workload, runner)
            for key in ("cpu_us_per_unit", "wall_s", "requests_per_s", "peak_rss_mb"):
                assert row[key] > 0, (workload, runner, key)
    assert rows["import", "finetune_async"]["rss_added_mb"] > 0
    assert None is rows["retrieve_c64", "finetune_async"]["x_openai"]
    assert 1.0 == rows["retrieve_c64", "floor"]["x_floor"]
    assert any("openai is not installed" in note for note in document["notes"])
    report = results.with_suffix(".md").read_text()
    assert "| finetune_async.AsyncClient |" in report
    assert "openai.AsyncOpenAI" not in report
