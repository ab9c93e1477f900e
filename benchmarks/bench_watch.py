"""Client CPU per poll while watching many jobs: ``watch`` against a raw aiohttp + orjson floor.

Each runner starts in a fresh process and polls every job until it is ``succeeded`` (three
retrieves each on the stand-in server), at most 32 requests in flight. The floor does the same
GETs with nothing but aiohttp and orjson (no records, no scheduler). Runs alternate (A B A B...);
the table gives medians and the ratio. Results also go to ``benchmarks/results/``.

    python benchmarks/bench_watch.py [--jobs 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONCURRENCY = 32


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _floor(base: str, ids: list[str]) -> int:
    import aiohttp
    import orjson

    polls = 0
    sem = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def follow(job_id: str) -> None:
            nonlocal polls
            while True:
                async with (
                    sem,
                    session.get(
                        f"{base}/fine_tuning/jobs/{job_id}", headers={"Authorization": "Bearer k"}
                    ) as resp,
                ):
                    job = orjson.loads(await resp.read())
                polls += 1
                if job["status"] == "succeeded":
                    return

        await asyncio.gather(*(follow(job_id) for job_id in ids))
    return polls


async def _watch(base: str, ids: list[str]) -> int:
    from finetune_async import AsyncClient

    polls = 0
    async with AsyncClient(api_key="k", base_url=base) as client:
        watch = client.fine_tuning.jobs.watch(ids, poll_interval=0.05, max_concurrency=CONCURRENCY)
        async for update in watch:
            polls += 1  # one update per poll here: every poll sees a new status
            assert update.error is None, update.error
    return polls


def run_one(kind: str, port: int, jobs: int, tag: str) -> dict[str, float]:
    """In a fresh process: run one runner and return its figures."""
    base = f"http://127.0.0.1:{port}/v1"
    ids = [f"ftjob-{tag}-{i}" for i in range(jobs)]
    rss_before = _rss_mb()
    import aiohttp  # noqa: F401

    import finetune_async  # noqa: F401 - import cost is outside the measured window for both

    cpu0, wall0 = _cpu(), time.perf_counter()
    polls = asyncio.run(_floor(base, ids) if kind == "floor" else _watch(base, ids))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    return {
        "polls": polls,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_us_per_poll": cpu / polls * 1e6,
        "peak_rss_mb": _rss_mb(),
        "rss_before_mb": rss_before,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "PORT", "TAG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, port, tag = args.child
        print(json.dumps(run_one(kind, int(port), args.jobs, tag)))
        return

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        results: dict[str, list[dict[str, float]]] = {"floor": [], "watch": []}
        for repeat in range(args.repeats):
            for kind in ("floor", "watch"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--jobs",
                        str(args.jobs),
                        "--child",
                        kind,
                        str(port),
                        f"{kind}{repeat}",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        server.terminate()
        server_out, _ = server.communicate(timeout=10)
    server_cpu = next(
        (line for line in server_out.splitlines() if line.startswith("server_cpu=")), "server_cpu=?"
    )

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    floor_cpu, watch_cpu = median("floor", "cpu_us_per_poll"), median("watch", "cpu_us_per_poll")
    lines = [
        (
            f"watch of {args.jobs} jobs, {args.repeats} interleaved repeats, "
            f"concurrency {CONCURRENCY}; Python {platform.python_version()}, "
            f"{os.cpu_count()} cores; {server_cpu} s (all runs)"
        ),
        "| runner | polls | client CPU per poll (us, median) | wall (s) | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in ("floor", "watch"):
        lines.append(
            f"| {kind} | {median(kind, 'polls'):.0f} | {median(kind, 'cpu_us_per_poll'):.1f} | "
            f"{median(kind, 'wall_s'):.2f} | {median(kind, 'peak_rss_mb'):.1f} |"
        )
    lines.append(
        f"ratio watch / floor (CPU per poll): {watch_cpu / floor_cpu:.2f}x (target <= 1.5x); "
        f"watcher peak RSS {median('watch', 'peak_rss_mb'):.1f} MB (target <= 100 MB)"
    )
    report = "\n".join(lines)
    print(report)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"watch-{stamp}.json").write_text(
        json.dumps({"results": results, "server": server_cpu}, indent=2)
    )
    (out_dir / f"watch-{stamp}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
