"""Every benchmark of finetune_async in one command: each workload x runner in fresh processes.

    .venv/bin/python benchmarks/run.py [--repeats 3] [--quick] [--only WORKLOAD[,...]]

One stand-in server (server.py, pre-rendered answers) runs in its own process for the whole run
and reports its own CPU. Each runner of each workload runs in a fresh process (runners.py), and
the repeats are interleaved (A B C A B C ...) so a machine that gets busier or quieter mid-run
moves every runner alike. The table gives medians, the ratio to the raw aiohttp + orjson floor and
to the official ``openai`` SDK measured in the same run, and the issue's targets; JSON and
Markdown copies go to ``benchmarks/results/`` (ignored by git). Without ``openai`` installed (the
``bench`` dependency group) its runners are skipped with a note. Nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

LABELS = {
    "floor": "raw aiohttp + orjson (floor)",
    "finetune_async": "finetune_async.AsyncClient",
    "openai": "openai.AsyncOpenAI",
    "Client": "finetune_async.Client (sync)",
    "OpenAI": "openai.OpenAI (sync)",
}
MICRO_LABELS = {
    "finetune_async": "finetune_async converter",
    "openai.construct": "openai construct (its default answer path)",
    "openai.model_validate": "openai model_validate (pydantic validation)",
}
#: The runner each one is compared with as "x openai": async with async, sync with sync.
OPENAI_TWIN = {"floor": "openai", "finetune_async": "openai", "Client": "OpenAI"}
OPENAI_RUNNERS = frozenset({"openai", "OpenAI", "openai.construct", "openai.model_validate"})


@dataclass(frozen=True)
class Workload:
    """One piece of work every runner of it does the same way."""

    name: str
    title: str  # with the count as ``{count}``
    unit: str
    runners: tuple[str, ...]
    count: int = 0
    concurrency: int = 1


WORKLOADS = (
    Workload(
        "retrieve_c64",
        "{count:,} retrieves, 64 in flight",
        "request",
        ("floor", "finetune_async", "openai"),
        20_000,
        64,
    ),
    Workload(
        "retrieve_c1",
        "{count:,} retrieves one at a time",
        "request",
        ("floor", "finetune_async", "openai", "Client", "OpenAI"),
        3_000,
    ),
    Workload(
        "list_walk",
        "walk of the {count:,}-job list, limit=100 (5 passes)",
        "job",
        ("floor", "finetune_async", "openai", "Client"),
        10_000,
    ),
    Workload(
        "events_walk",
        "walk of {count:,} events of a job, limit=100 (5 passes)",
        "event",
        ("floor", "finetune_async", "openai"),
        10_000,
    ),
    Workload(
        "watch",
        "watch of {count:,} jobs (3 polls each, 32 in flight)",
        "poll",
        ("floor", "finetune_async", "openai"),
        10_000,
        32,
    ),
    Workload(
        "import",
        "import in a fresh interpreter",
        "import",
        ("floor", "finetune_async", "openai"),
    ),
    Workload(
        "structure_page",
        "structuring a 100-job page (parsed JSON to records)",
        "job",
        ("finetune_async", "openai.construct", "openai.model_validate"),
    ),
    Workload(
        "structure_job",
        "structuring one job (parsed JSON to a record)",
        "job",
        ("finetune_async", "openai.construct", "openai.model_validate"),
    ),
)
BY_NAME = {w.name: w for w in WORKLOADS}
# Times each walk goes through its list in one measured window (a single walk lasts ~0.2 s).
WALK_PASSES = 5
_CLIENT_WORKLOADS = frozenset({"retrieve_c64", "retrieve_c1", "list_walk", "events_walk", "watch"})

#: What each runner imports in the import workload (the floor: what every aiohttp client needs).
IMPORTS = {
    "floor": ["aiohttp", "orjson"],
    "finetune_async": ["finetune_async"],
    "openai": ["openai"],
}
# Runs in `python -c` so nothing but `sys` and `time` is loaded before the import it measures.
IMPORT_PROBE = """
import sys, time
def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")
before, cpu0, wall0 = rss_kib(), time.process_time(), time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
wall, cpu, after = time.perf_counter() - wall0, time.process_time() - cpu0, rss_kib()
print('{"import_ms": %r, "cpu_ms": %r, "rss_added_mb": %r}' % (
    wall * 1e3, cpu * 1e3, (after - before) / 1024))
"""


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: ``metric`` of ``runner`` in ``workload`` at most ``limit``."""

    workload: str
    runner: str
    metric: str
    limit: float
    text: str


TARGETS = (
    Target("retrieve_c64", "finetune_async", "x_floor", 1.3, "CPU <= 1.3x floor"),
    Target("retrieve_c64", "finetune_async", "x_openai", 1 / 6, "CPU >= 6x less than openai"),
    Target("list_walk", "finetune_async", "x_floor", 3.0, "CPU per job <= 3x floor"),
    Target("list_walk", "finetune_async", "x_openai", 1 / 6, "CPU per job >= 6x less than openai"),
    Target("retrieve_c1", "Client", "x_openai", 0.5, "CPU <= 0.5x openai.OpenAI"),
    # Issue 15: the blocking walk crosses to the portal once per page, not once per job.
    Target("list_walk", "Client", "x_async", 1.2, "CPU per job <= 1.2x the async walk"),
    Target("import", "finetune_async", "x_openai", 0.5, "import time <= 0.5x openai"),
    Target("import", "finetune_async", "rss_x_openai", 0.5, "RSS added <= 0.5x openai"),
    # The polling issue's targets for watch (first measured by the former bench_watch.py).
    Target("watch", "finetune_async", "x_floor", 1.5, "CPU per poll <= 1.5x floor"),
    Target("watch", "finetune_async", "peak_rss_mb", 100.0, "peak RSS <= 100 MB"),
)


# --- running -------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    """The parent's environment without proxies or OpenAI settings that would reroute a client."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith(("OPENAI_", "PORTKEY_"))
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class Server:
    """The stand-in server in its own process, for the whole run."""

    def __init__(self, jobs: int, events: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), "--jobs", str(jobs), "--events", str(events)],
            stdout=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self.process.kill()
            raise SystemExit("the benchmark server did not start")
        self.port = int(ready[1])
        self.base = f"http://127.0.0.1:{self.port}/v1"
        # Never through a proxy, whatever the environment says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def usage(self) -> tuple[float, int]:
        """The server's CPU seconds and requests answered so far."""
        with self._opener.open(f"http://127.0.0.1:{self.port}/_bench/cpu", timeout=10) as answer:
            data = json.loads(answer.read())
        return float(data["cpu_s"]), int(data["requests"])

    def stop(self) -> str:
        """Stop the server; return its own report of its CPU."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return out.strip().splitlines()[-1] if out.strip() else ""


@dataclass
class Settings:
    """The run's sizes, from the command line."""

    scale: float
    repeats: int
    import_samples: int
    timeit_repeat: int
    timeit_min_s: float
    timeout: float

    def count(self, workload: Workload) -> int:
        return max(1, round(workload.count * self.scale))


def _run_child(command: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=_child_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?")
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise RuntimeError(f"no figures in the output: {done.stdout[-200:]!r}") from exc
    return result


def run_once(
    workload: Workload, runner: str, settings: Settings, server: Server, tag: str
) -> dict[str, Any]:
    """Run one runner of one workload in a fresh process and return its figures."""
    if workload.name == "import":
        command = [sys.executable, "-c", IMPORT_PROBE, *IMPORTS[runner]]
        return _run_child(command, settings.timeout)
    command = [sys.executable, str(HERE / "runners.py"), workload.name, runner]
    if workload.name.startswith("structure"):
        command += ["--timeit-repeat", str(settings.timeit_repeat)]
        command += ["--timeit-min-s", str(settings.timeit_min_s)]
        return _run_child(command, settings.timeout)
    count = settings.count(workload)
    command += ["--base", server.base, "--count", str(count)]
    command += ["--concurrency", str(workload.concurrency), "--tag", tag]
    command += ["--jobs", str(settings.count(BY_NAME["list_walk"]))]
    passes = WALK_PASSES if workload.name.endswith("_walk") else 1
    command += ["--passes", str(passes)]
    cpu0, requests0 = server.usage()
    result = _run_child(command, settings.timeout)
    cpu1, requests1 = server.usage()
    served = requests1 - requests0 - 1  # less the usage request itself
    expected = {"watch": 3 * count, "list_walk": passes * count, "events_walk": passes * count}.get(
        workload.name
    )
    done = result["units"]
    if expected is not None and done != expected:
        raise RuntimeError(f"did {done} {workload.unit}s instead of {expected}")
    result["cpu_us_per_unit"] = result["cpu_s"] / done * 1e6
    # The server's CPU per request served (warm-up included), put per unit like the client's.
    result["server_us_per_unit"] = (cpu1 - cpu0) / max(served, 1) * result["requests"] / done * 1e6
    result["requests_per_s"] = result["requests"] / result["wall_s"]
    return result


def _value_of(workload: Workload, sample: dict[str, Any]) -> float:
    """The figure a row is ranked by: client CPU per unit, import time, or structuring time."""
    if workload.name == "import":
        return float(sample["import_ms"])
    if workload.name.startswith("structure"):
        return float(sample["us_per_job"])
    return float(sample["cpu_us_per_unit"])


def run_all(
    workloads: list[Workload], runners: dict[str, list[str]], settings: Settings, server: Server
) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], list[str]]:
    """Every runner of every workload, ``repeats`` times, interleaved; samples and failures."""
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {
        (w.name, r): [] for w in workloads for r in runners[w.name]
    }
    failures: list[str] = []
    for repeat in range(settings.repeats):
        for workload in workloads:
            rounds = settings.import_samples if workload.name == "import" else 1
            for sample in range(rounds):
                for runner in runners[workload.name]:
                    tag = f"{runner.lower()}{repeat}s{sample}"
                    try:
                        result = run_once(workload, runner, settings, server, tag)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        failures.append(f"{workload.name} / {runner}, repeat {repeat + 1}: {exc}")
                        print(f"  FAILED {workload.name} {runner}: {exc}", file=sys.stderr)
                        continue
                    samples[workload.name, runner].append(result)
                    print(
                        f"[{repeat + 1}/{settings.repeats}] {workload.name:<14} {runner:<22} "
                        f"{_value_of(workload, result):10.1f} "
                        f"{'ms' if workload.name == 'import' else 'us'}/{workload.unit}",
                        file=sys.stderr,
                        flush=True,
                    )
    return samples, failures


# --- reporting -----------------------------------------------------------------------------------


def _median(samples: list[dict[str, Any]], key: str) -> float | None:
    values = [float(s[key]) for s in samples if key in s]
    return statistics.median(values) if values else None


def summarise(
    workloads: list[Workload],
    samples: dict[tuple[str, str], list[dict[str, Any]]],
    settings: Settings,
) -> list[dict[str, Any]]:
    """One row per workload x runner with samples: medians and the ratios in the same run."""
    rows = []
    for workload in workloads:
        values: dict[str, float] = {}
        for (name, runner), runs in samples.items():
            if name == workload.name and runs:
                values[runner] = statistics.median(_value_of(workload, s) for s in runs)
        rss_added = {
            runner: _median(runs, "rss_added_mb")
            for (name, runner), runs in samples.items()
            if name == workload.name
        }
        for runner in workload.runners:
            runs = samples.get((workload.name, runner), [])
            if not runs:
                continue
            value = values[runner]
            micro = workload.name.startswith("structure")
            twin = "openai.model_validate" if micro else None
            twin = twin or ("openai" if workload.name == "import" else OPENAI_TWIN.get(runner))
            row: dict[str, Any] = {
                "workload": workload.name,
                "title": workload.title.format(count=settings.count(workload)),
                "runner": runner,
                "label": MICRO_LABELS.get(runner, runner) if micro else LABELS[runner],
                "unit": workload.unit,
                "samples": len(runs),
                "value": value,
                "x_floor": value / values["floor"] if "floor" in values else None,
                "x_openai": value / values[twin] if twin in values and twin != runner else None,
                # The blocking twin against the async client, in the same run.
                "x_async": value / values["finetune_async"]
                if runner == "Client" and "finetune_async" in values
                else None,
                "raw": runs,
            }
            for key in (
                "requests",
                "units",
                "cpu_us_per_unit",
                "wall_s",
                "requests_per_s",
                "peak_rss_mb",
                "server_us_per_unit",
                "import_ms",
                "cpu_ms",
                "rss_added_mb",
                "us_per_job",
            ):
                median = _median(runs, key)
                if median is not None:
                    row[key] = median
            if workload.name == "import" and rss_added.get("openai") and runner != "openai":
                row["rss_x_openai"] = row["rss_added_mb"] / rss_added["openai"]
            rows.append(row)
    return rows


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with its measured value: met, missed, or not measured in this run."""
    by_key = {(row["workload"], row["runner"]): row for row in rows}
    verdicts = []
    for target in TARGETS:
        row = by_key.get((target.workload, target.runner))
        measured = None if row is None else row.get(target.metric)
        verdicts.append(
            {
                "workload": target.workload,
                "runner": target.runner,
                "target": target.text,
                "metric": target.metric,
                "limit": target.limit,
                "measured": measured,
                "met": None if measured is None else measured <= target.limit,
            }
        )
    return verdicts


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _verdict(verdict: dict[str, Any]) -> str:
    if verdict["met"] is None:
        return f"{verdict['target']}: not measured"
    measured = verdict["measured"]
    shown = f"{1 / measured:.1f}x less" if "less than" in verdict["target"] else f"{measured:.2f}"
    return f"{verdict['target']}: {shown}, {'met' if verdict['met'] else 'MISSED'}"


def tables(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> list[str]:
    """The report as Markdown tables."""
    targets_of: dict[tuple[str, str], list[str]] = {}
    for verdict in verdicts:
        targets_of.setdefault((verdict["workload"], verdict["runner"]), []).append(
            _verdict(verdict)
        )
    lines = [
        (
            "| workload | runner | client CPU (us / unit) | wall (s) | req/s | peak RSS (MB) "
            "| server CPU (us / unit) | x floor | x openai | targets |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        if row["workload"] not in _CLIENT_WORKLOADS:
            continue
        lines.append(
            f"| {row['title']} | {row['label']} "
            f"| {_fmt(row['value'])} / {row['unit']} | {_fmt(row['wall_s'], 2)} "
            f"| {_fmt(row['requests_per_s'], 0)} | {_fmt(row['peak_rss_mb'])} "
            f"| {_fmt(row['server_us_per_unit'])} | {_fmt(row['x_floor'], 2, 'x')} "
            f"| {_fmt(row['x_openai'], 2, 'x')} "
            f"| {'; '.join(targets_of.get((row['workload'], row['runner']), []))} |"
        )
    imports = [row for row in rows if row["workload"] == "import"]
    if imports:
        lines += [
            "",
            (
                "| import | time (ms) | CPU (ms) | RSS added (MB) | x openai (time) "
                "| x openai (RSS) | targets |"
            ),
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in imports:
            modules = ", ".join(IMPORTS[row["runner"]])
            lines.append(
                f"| `import {modules}` | {_fmt(row['import_ms'])} | {_fmt(row['cpu_ms'])} "
                f"| {_fmt(row['rss_added_mb'])} | {_fmt(row['x_openai'], 2, 'x')} "
                f"| {_fmt(row.get('rss_x_openai'), 2, 'x')} "
                f"| {'; '.join(targets_of.get(('import', row['runner']), []))} |"
            )
    micro = [row for row in rows if row["workload"].startswith("structure")]
    if micro:
        lines += [
            "",
            "| structuring | runner | us per job (best of timeit) | x openai.model_validate |",
            "| --- | --- | ---: | ---: |",
        ]
        for row in micro:
            lines.append(
                f"| {row['title']} | {row['label']} | {_fmt(row['value'], 2)} "
                f"| {_fmt(row['x_openai'], 2, 'x')} |"
            )
    return lines


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("finetune-async", "aiohttp", "orjson", "cattrs", "attrs", "openai", "pydantic"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }


# --- the command ---------------------------------------------------------------------------------


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (3)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the counts, 1 repeat")
    parser.add_argument("--scale", type=float, default=None, help="multiply every count")
    parser.add_argument(
        "--only", default="", help="workloads, comma-separated (a prefix: retrieve, structure)"
    )
    parser.add_argument("--runners", default="", help="runners to keep, comma-separated")
    parser.add_argument("--no-openai", action="store_true", help="skip the openai runners")
    parser.add_argument("--import-samples", type=int, default=None, help="per repeat (10)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per process")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    return parser.parse_args()


def _selection(args: argparse.Namespace, notes: list[str]) -> dict[str, list[str]]:
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    keep = {name.strip() for name in args.runners.split(",") if name.strip()}
    known = {w.name for w in WORKLOADS}
    for name in wanted:
        if not any(n == name or n.startswith(name + "_") for n in known):
            raise SystemExit(f"--only: no workload {name!r}; known: {', '.join(sorted(known))}")
    runner_names = {r for w in WORKLOADS for r in w.runners}
    if keep - runner_names:
        raise SystemExit(
            f"--runners: unknown {sorted(keep - runner_names)}; known: {sorted(runner_names)}"
        )
    skip_openai = args.no_openai or util.find_spec("openai") is None
    if args.no_openai:
        notes.append("openai runners skipped (--no-openai)")
    elif skip_openai:
        notes.append(
            "openai is not installed: its runners are skipped and no ratio to openai is given "
            "(install the bench group: pip install --group bench)"
        )
    selection = {}
    for workload in WORKLOADS:
        if wanted and not any(
            workload.name == name or workload.name.startswith(name + "_") for name in wanted
        ):
            continue
        runners = [
            runner
            for runner in workload.runners
            if (not keep or runner in keep) and not (skip_openai and runner in OPENAI_RUNNERS)
        ]
        if runners:
            selection[workload.name] = runners
    return selection


def main() -> None:
    args = _parse()
    started = time.perf_counter()
    notes: list[str] = []
    selection = _selection(args, notes)
    settings = Settings(
        scale=args.scale if args.scale is not None else (0.1 if args.quick else 1.0),
        repeats=args.repeats if args.repeats is not None else (1 if args.quick else 3),
        import_samples=args.import_samples or (3 if args.quick else 10),
        timeit_repeat=2 if args.quick else 5,
        timeit_min_s=0.05 if args.quick else 0.2,
        timeout=args.timeout,
    )
    workloads = [w for w in WORKLOADS if w.name in selection]
    jobs = settings.count(BY_NAME["list_walk"])
    server = Server(jobs, settings.count(BY_NAME["events_walk"]))
    try:
        samples, failures = run_all(workloads, selection, settings, server)
    finally:
        server_report = server.stop()
    notes += [f"failed: {failure}" for failure in failures]
    rows = summarise(workloads, samples, settings)
    verdicts = check_targets(rows)
    elapsed = time.perf_counter() - started
    versions, machine = _versions(), _machine()
    header = [
        f"{time.strftime('%Y-%m-%d %H:%M')}; "
        + ", ".join(f"{name} {version}" for name, version in versions.items()),
        (
            f"{machine['cores']} cores, {machine['cpu']}, {machine['platform']}; load average "
            f"at start {', '.join(f'{x:.2f}' for x in machine['load_average_at_start'])}"
        ),
        (
            f"{settings.repeats} interleaved repeats, counts x{settings.scale:g}, "
            f"{jobs} jobs in the list; server: {server_report}; total run time {elapsed:.0f} s"
        ),
        *[f"note: {note}" for note in notes],
    ]
    report = [*header, "", *tables(rows, verdicts)]
    print("\n".join(report))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    document = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions,
        "machine": machine,
        "settings": vars(settings),
        "server": server_report,
        "elapsed_s": elapsed,
        "notes": notes,
        "targets": verdicts,
        "rows": rows,
    }
    (args.out / f"bench-{stamp}.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / f"bench-{stamp}.md").write_text("\n".join(report) + "\n")
    print(f"\nresults: {args.out / f'bench-{stamp}.json'} (and .md)")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
