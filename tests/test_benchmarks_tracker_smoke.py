"""The tracker benchmark runs end to end in a tiny mode; speed is never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "benchmarks" / "bench_tracker.py"
JOBS = 100


def test_tracker_benchmark_follows_every_job_to_its_end_in_each_mode(tmp_path: Path) -> None:
    """100 jobs over a 2-second hour: every one ends, sweeps take one page, webhooks arrive."""
    out = tmp_path / "tracker.json"
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable,
            str(HARNESS),
            "--jobs",
            str(JOBS),
            "--hour-seconds",
            "2",
            "--modes",
            "sweeps,webhooks,watch",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {row["mode"]: row for row in report["rows"]}
    assert {"sweeps", "webhooks", "watch"} == set(rows)
    for mode, row in rows.items():
        assert JOBS == row["ended"], mode  # every job followed to its terminal status
        assert row["requests"] > 0, mode
        assert row["cpu_s"] > 0, mode
        assert row["peak_rss_mb"] > 0, mode
    # Pull with sweeps: the first round over 100 dense live jobs is one page, no retrieve.
    assert 1 == rows["sweeps"]["first_round_requests"]
    assert 0 == rows["sweeps"]["retrieves"]
    assert rows["sweeps"]["store_mb"] > 0
    # The server POSTed one signed webhook per job, and the tracker took every one.
    assert JOBS == rows["webhooks"]["webhooks_sent"]
    assert JOBS == rows["webhooks"]["webhooks"]
    assert 0 == rows["watch"]["list_pages"]
    assert any(line.startswith("sweeps: 1 requests") for line in report["targets"])
    assert "| webhooks |" in done.stdout
