"""The tracker benchmark (issue 18): 10,000 live jobs followed for a simulated hour, per mode.

    .venv/bin/python benchmarks/bench_tracker.py [--jobs 10000] [--hour-seconds 150]
        [--poll-interval 60] [--reconcile-interval 1200] [--modes retrieve,sweeps,...] [--quick]

How an hour is simulated. The stand-in server (``server.py``, its own process) starts a
simulation (``/_bench/sim/start``): ``--jobs`` jobs, all ``running``, each ending at its own
moment spread at random over ``--hour-seconds`` real seconds, which stand for one hour. The
tracker's intervals are divided by the same factor (3600 / ``--hour-seconds``): a simulated
``--poll-interval`` of 60 s is 2.5 s of real time when the hour lasts 150 s. While the simulation
runs, the job list is those jobs (newest first: the dense case) and each retrieve or list page
answers the status of that moment; with webhooks, the server POSTs each job's end to the
tracker's ``serve_webhooks`` URL, signed with ``finetune_async.webhooks.sign``.

Modes (each in a fresh process, so its CPU and peak RSS are its own):

- ``retrieve``: ``Tracker(refresh="retrieve")``, pull only: one retrieve per live job per round;
- ``sweeps``: ``Tracker(refresh="list")``, pull only: list sweeps, 100 jobs a page;
- ``webhooks``: ``Tracker(webhook_secret=..., refresh="auto")``: the pushes, then one retrieve
  each, and a reconcile round every ``--reconcile-interval``;
- ``webhooks-retrieve``: the same, with the reconcile rounds made of retrieves;
- ``watch``: ``client.fine_tuning.jobs.watch`` over the same jobs (the baseline of the CPU
  target);
- ``openai``: the plain loop users write today: every poll interval, ``AsyncOpenAI().fine_tuning
  .jobs.retrieve`` for each live job, 16 in flight. It costs ~8x the CPU of a tracker round, so
  it runs only its first ``--openai-rounds`` rounds (3): its CPU per read is measured there, and
  over an hour it sends what ``retrieve`` sends (the same loop, over the same live jobs).

Client CPU is user + sys of the child process inside the measured window (adding the jobs to
the tracker, the rounds and the webhooks received, to the last terminal update), peak RSS its
``ru_maxrss``; requests are counted by the server. Nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
API_KEY = "sk-bench"
#: A webhook secret for the benchmark only.
SECRET = "whsec_YmVuY2htYXJrIGtleSBvZiB0aGlydHktdHdvIGJ5dGU="
MODES = ("retrieve", "sweeps", "webhooks", "webhooks-retrieve", "watch", "openai")
#: Requests in flight at once, every mode alike (the tracker's default).
CONCURRENCY = 16
_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _get_json(url: str) -> Any:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as answer:
        return json.loads(answer.read())


# --- the child: one mode, measured ---------------------------------------------------------------


class _Rounds:
    """Counts the tracker's refresh rounds, with the requests and CPU of each.

    Instrumentation only: it wraps the tracker's private ``_refresh`` and ``_flush_polls`` (the
    store write of the round's reads) and changes nothing they do.
    """

    def __init__(self, tracker: Any) -> None:
        self.rounds: list[dict[str, float]] = []
        self._tracker = tracker
        refresh, flush = tracker._refresh, tracker._flush_polls  # noqa: SLF001 - counted only

        async def counted_refresh(lives: list[Any]) -> None:
            before, cpu0 = tracker.stats.requests, _cpu()
            await refresh(lives)
            self.rounds.append(
                {
                    "live": len(lives),
                    "requests": tracker.stats.requests - before,
                    "cpu_s": _cpu() - cpu0,
                }
            )

        async def counted_flush() -> None:
            cpu0 = _cpu()
            await flush()
            if self.rounds:
                self.rounds[-1]["cpu_s"] += _cpu() - cpu0

        tracker._refresh, tracker._flush_polls = counted_refresh, counted_flush  # noqa: SLF001


async def _tracker_mode(args: argparse.Namespace, ids: list[str], factor: float) -> dict[str, Any]:
    from finetune_async import AsyncClient
    from finetune_async.tracking import Tracker

    webhooks = args.mode.startswith("webhooks")
    refresh = {"retrieve": "retrieve", "sweeps": "list", "webhooks": "auto"}.get(
        args.mode, "retrieve"
    )
    store = Path(args.store)
    client = AsyncClient(api_key=API_KEY, base_url=args.base, max_retries=0)
    tracker = Tracker(
        client,
        store=store,
        poll_interval=args.poll_interval / factor,
        reconcile_interval=args.reconcile_interval / factor,
        webhook_secret=SECRET if webhooks else None,
        refresh=refresh,
        max_concurrency=CONCURRENCY,
        recheck_delay=5.0 / factor,
    )
    rounds = _Rounds(tracker)
    ended = 0
    async with client, tracker:
        url = (await tracker.serve_webhooks()).url if webhooks else None
        _start_simulation(args, url)
        cpu0, wall0, main0 = _cpu(), time.perf_counter(), time.thread_time()
        await tracker.add_jobs(ids)
        async for update in tracker.updates():
            ended += update.terminal
        cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
        main = time.thread_time() - main0
        stats = tracker.stats
    size = sum(
        path.stat().st_size
        for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm"))
        if path.exists()
    )
    return {
        "cpu_s": cpu,
        # The event loop's thread alone: the rest is the store's worker thread (SQLite).
        "loop_thread_cpu_s": main,
        "wall_s": wall,
        "ended": ended,
        "store_bytes": size,
        "rounds": rounds.rounds,
        "client_requests": stats.requests,
        "reads": stats.polls,
        "sweeps": stats.sweeps,
        "webhooks": stats.webhooks,
        "reconciled": stats.reconciled,
    }


async def _watch_mode(args: argparse.Namespace, ids: list[str], factor: float) -> dict[str, Any]:
    from finetune_async import AsyncClient

    ended = 0
    async with AsyncClient(api_key=API_KEY, base_url=args.base, max_retries=0) as client:
        _start_simulation(args, None)
        cpu0, wall0 = _cpu(), time.perf_counter()
        watch = client.fine_tuning.jobs.watch(
            ids, poll_interval=args.poll_interval / factor, max_concurrency=CONCURRENCY
        )
        async for update in watch:
            if update.error is not None:
                raise update.error
            ended += update.job is not None and update.job.status in _TERMINAL
        cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    return {"cpu_s": cpu, "wall_s": wall, "ended": ended}


async def _openai_mode(args: argparse.Namespace, ids: list[str], factor: float) -> dict[str, Any]:
    """The loop users of ``openai`` write: retrieve every live job, every poll interval."""
    import openai

    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=args.base, max_retries=0)
    gate = asyncio.Semaphore(CONCURRENCY)
    interval = args.poll_interval / factor

    async def status(job_id: str) -> str:
        async with gate:
            job = await client.fine_tuning.jobs.retrieve(job_id)
        return str(job.status)

    live, rounds, reads = list(ids), [], 0
    _start_simulation(args, None)
    cpu0, wall0 = _cpu(), time.perf_counter()
    while live and (args.openai_rounds == 0 or len(rounds) < args.openai_rounds):
        started, round_cpu = time.monotonic(), _cpu()
        statuses = await asyncio.gather(*(status(job_id) for job_id in live))
        reads += len(live)
        rounds.append({"live": len(live), "requests": len(live), "cpu_s": _cpu() - round_cpu})
        live = [job_id for job_id, got in zip(live, statuses, strict=True) if got not in _TERMINAL]
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    await client.close()
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "rounds": rounds,
        "reads": reads,
        "ended": len(ids) - len(live),
    }


def _start_simulation(args: argparse.Namespace, webhook: str | None) -> None:
    query = {"jobs": args.jobs, "hour_s": args.hour_seconds}
    if webhook is not None:
        query.update(webhook=webhook, secret=SECRET)
    _get_json(f"{args.origin}/_bench/sim/start?{urllib.parse.urlencode(query)}")


def child(args: argparse.Namespace) -> None:
    """Run one mode and print its figures as one JSON line."""
    sys.path.insert(0, str(HERE))
    from server import sim_job_id

    ids = [sim_job_id(index) for index in range(args.jobs)]
    factor = 3600.0 / args.hour_seconds
    mode = {"watch": _watch_mode, "openai": _openai_mode}.get(args.mode, _tracker_mode)
    result = asyncio.run(mode(args, ids, factor))
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


# --- the parent: every mode, the table ------------------------------------------------------------


def _summary(mode: str, result: dict[str, Any], sim: dict[str, Any], jobs: int) -> dict[str, Any]:
    rounds = result.get("rounds", [])
    reads = result.get("reads") or sim["retrieves"]
    # The first round over all the live jobs (a webhook may have ended one or two before it).
    most = max((r["live"] for r in rounds), default=0)
    full = [r for r in rounds if r["live"] == most and most >= 0.99 * jobs]
    refreshed = sum(r["live"] for r in rounds) if mode != "openai" and rounds else reads
    if mode.startswith("webhooks"):
        refreshed = 0  # its CPU is the webhooks' more than the rounds': given per webhook instead
    row = {
        "mode": mode,
        "requests": sim["requests"],
        "list_pages": sim["list_pages"],
        "retrieves": sim["retrieves"],
        "webhooks_sent": sim["webhooks_sent"],
        "cpu_s": result["cpu_s"],
        "wall_s": result["wall_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "store_mb": result["store_bytes"] / 2**20 if "store_bytes" in result else None,
        "ended": result["ended"],
        "reads": reads,
        "rounds": len(rounds) if rounds else None,
        "cpu_ms_per_read": result["cpu_s"] / reads * 1e3 if reads else None,
        # A round over all the jobs, dense and live: the first one.
        "first_round_live": full[0]["live"] if full else None,
        "first_round_requests": full[0]["requests"] if full else None,
        "first_round_cpu_s": full[0]["cpu_s"] if full else None,
        "cpu_s_per_round": result["cpu_s"] / len(rounds) if rounds else None,
        # The window's CPU over the live jobs the rounds refreshed (watch, openai: over the
        # reads), put per refresh of all the jobs: what following N live jobs for one poll
        # interval costs.
        "cpu_s_per_refresh": result["cpu_s"] / refreshed * jobs if refreshed else None,
        "server_cpu_s": sim.get("server_cpu_s"),
    }
    for key in ("sweeps", "webhooks", "reconciled", "client_requests"):
        if key in result:
            row[key] = result[key]
    if result.get("webhooks"):
        row["cpu_ms_per_webhook"] = result["cpu_s"] / result["webhooks"] * 1e3
    if mode == "openai":
        row["partial"] = True
    return row


def _targets(rows: dict[str, dict[str, Any]], jobs: int) -> list[str]:
    """The issue's targets, met or missed, from the rows measured."""
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    sweeps = rows.get("sweeps")
    if sweeps and sweeps["first_round_requests"] is not None:
        got = sweeps["first_round_requests"]
        lines.append(
            f"sweeps: {got} requests for a refresh of {jobs:,} dense live jobs "
            f"(target <= {jobs // 100 + 1}): {verdict(got <= jobs // 100 + 1)}"
        )
    for push in ("webhooks", "webhooks-retrieve"):
        for pull in ("retrieve", "sweeps"):
            if push in rows and pull in rows:
                share = rows[push]["requests"] / max(rows[pull]["requests"], 1)
                lines.append(
                    f"{push}: {share:.1%} of pull with {pull}'s requests (target <= 5%): "
                    f"{verdict(share <= 0.05)}"
                )
    watch = rows.get("watch")
    if watch and watch["cpu_s_per_refresh"]:
        base = watch["cpu_s_per_refresh"]
        for mode in ("retrieve", "sweeps"):
            row = rows.get(mode)
            if row and row["cpu_s_per_refresh"]:
                ratio = row["cpu_s_per_refresh"] / base
                lines.append(
                    f"{mode}: {row['cpu_s_per_refresh']:.2f} s CPU per refresh of {jobs:,} live "
                    f"jobs = {ratio:.2f}x watch's {base:.2f} s (target <= 1.5x): "
                    f"{verdict(ratio <= 1.5)}"
                )
    for mode in ("retrieve", "sweeps", "webhooks", "webhooks-retrieve"):
        if mode in rows:
            rss = rows[mode]["peak_rss_mb"]
            lines.append(f"{mode}: peak RSS {rss:.1f} MB (target <= 100 MB): {verdict(rss <= 100)}")
    return lines


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the rows."""
    head = (
        "| mode | requests | list pages | retrieves | webhooks | rounds | client CPU (s) "
        "| CPU per read (ms) | CPU per refresh of all (s) | 1st full round: requests, CPU (s) "
        "| peak RSS (MB) | store (MB) | wall (s) |"
    )
    lines = [head, "| --- |" + " ---: |" * 12]
    for row in rows:
        first = (
            f"{row['first_round_requests']:,}, {row['first_round_cpu_s']:.2f}"
            if row["first_round_requests"] is not None
            else "-"
        )
        name = row["mode"] + (" (first rounds)" if row.get("partial") else "")
        lines.append(
            f"| {name} | {row['requests']:,} | {row['list_pages']:,} | {row['retrieves']:,} "
            f"| {row['webhooks_sent']:,} | {_fmt(row['rounds'], ',')} | {row['cpu_s']:.2f} "
            f"| {_fmt(row['cpu_ms_per_read'], '.3f')} | {_fmt(row['cpu_s_per_refresh'], '.3f')} "
            f"| {first} | {row['peak_rss_mb']:.1f} | {_fmt(row['store_mb'], '.2f')} "
            f"| {row['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def parent(args: argparse.Namespace) -> int:
    """Start the server, run every mode in its own process, print the table and the targets."""
    sys.path.insert(0, str(HERE))
    from run import Server, _child_env

    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"unknown modes: {', '.join(unknown)} (known: {', '.join(MODES)})")
    server = Server(jobs=100, events=10)
    origin = f"http://127.0.0.1:{server.port}"
    rows: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for mode in modes:
                store = Path(scratch) / f"{mode}.db"
                command = [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    "--base",
                    server.base,
                    "--origin",
                    origin,
                    "--store",
                    str(store),
                    "--jobs",
                    str(args.jobs),
                    "--hour-seconds",
                    str(args.hour_seconds),
                    "--poll-interval",
                    str(args.poll_interval),
                    "--reconcile-interval",
                    str(args.reconcile_interval),
                    "--openai-rounds",
                    str(args.openai_rounds),
                ]
                cpu0, _ = server.usage()
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    env=_child_env(),
                    timeout=args.hour_seconds * 4 + 600,
                    check=False,
                )
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"mode {mode} failed")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                sim = _get_json(f"{origin}/_bench/sim/stats")
                cpu1, _ = server.usage()
                sim["server_cpu_s"] = cpu1 - cpu0
                rows[mode] = _summary(mode, result, sim, args.jobs)
                print(
                    f"{mode:<18} {rows[mode]['requests']:>9,} requests "
                    f"{result['cpu_s']:7.2f} s CPU {result['wall_s']:7.1f} s wall",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        server.stop()
    report = {
        "settings": vars(args) | {"factor": 3600 / args.hour_seconds},
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "rows": list(rows.values()),
        "targets": _targets(rows, args.jobs),
    }
    print(
        f"{args.jobs:,} jobs, a simulated hour in {args.hour_seconds:g} s, poll_interval "
        f"{args.poll_interval:g} s, reconcile_interval {args.reconcile_interval:g} s (simulated)\n"
    )
    print(table(list(rows.values())))
    print()
    for line in report["targets"]:
        print(f"- {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--hour-seconds", type=float, default=150.0, help="real seconds per hour")
    parser.add_argument("--poll-interval", type=float, default=60.0, help="simulated seconds")
    parser.add_argument("--reconcile-interval", type=float, default=1200.0, help="simulated s")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--openai-rounds", type=int, default=3, help="0: the whole hour")
    parser.add_argument("--quick", action="store_true", help="500 jobs, an hour in 10 s")
    parser.add_argument("--json", default="", help="write the figures to this file too")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--base", default="", help=argparse.SUPPRESS)
    parser.add_argument("--origin", default="", help=argparse.SUPPRESS)
    parser.add_argument("--store", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.hour_seconds = 500, 10.0
    if args.child:
        args.mode = args.child
        child(args)
        return
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(parent(args))


if __name__ == "__main__":
    main()
