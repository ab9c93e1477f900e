"""Per-call cost of the blocking ``Client`` (its portal hand-off) at concurrency 1.

Runs, each in a fresh process and interleaved: ``AsyncClient`` awaiting retrieves one at a time,
``Client`` making the same calls from synchronous code, and, when installed, the official
``openai.OpenAI``. The ``Client`` minus ``AsyncClient`` difference is what the portal costs a
call; the ratio to ``openai.OpenAI`` is the comparison users make.

    python benchmarks/bench_sync.py [--calls 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOB = "ftjob-abc123"


def _cpu() -> float:
    return time.process_time()


def run_one(kind: str, port: int, calls: int) -> dict[str, float]:
    """In a fresh process: make ``calls`` retrieves one at a time and return CPU per call."""
    base = f"http://127.0.0.1:{port}/v1"
    warmup = 100
    if kind == "async":
        from finetune_async import AsyncClient

        async def main() -> float:
            async with AsyncClient(api_key="k", base_url=base) as client:
                for _ in range(warmup):
                    await client.fine_tuning.jobs.retrieve(JOB)
                start = _cpu()
                for _ in range(calls):
                    await client.fine_tuning.jobs.retrieve(JOB)
                return _cpu() - start

        cpu = asyncio.run(main())
    else:
        if kind == "sync":
            from finetune_async import Client

            client = Client(api_key="k", base_url=base)
        else:
            import openai

            client = openai.OpenAI(api_key="k", base_url=base)  # type: ignore[assignment]
        for _ in range(warmup):
            client.fine_tuning.jobs.retrieve(JOB)
        start = _cpu()
        for _ in range(calls):
            client.fine_tuning.jobs.retrieve(JOB)
        cpu = _cpu() - start
        client.close()
    return {"cpu_us_per_call": cpu / calls * 1e6}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]), args.calls)))
        return
    try:
        import openai  # noqa: F401
    except ImportError:
        kinds = ["async", "sync"]
    else:
        kinds = ["async", "sync", "openai"]
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        for _ in range(args.repeats):
            for kind in kinds:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--calls",
                        str(args.calls),
                        "--child",
                        kind,
                        str(port),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                results[kind].append(json.loads(out.stdout.splitlines()[-1])["cpu_us_per_call"])
    finally:
        server.terminate()
        server.communicate(timeout=10)
    medians = {kind: statistics.median(values) for kind, values in results.items()}
    print(f"{args.calls} retrieves one at a time, {args.repeats} interleaved repeats")
    print("| client | CPU per call (us, median) |")
    print("| --- | --- |")
    for kind, value in medians.items():
        print(f"| {kind} | {value:.1f} |")
    print(f"portal hand-off: {medians['sync'] - medians['async']:.1f} us per call")
    if "openai" in medians:
        print(
            f"Client / openai.OpenAI: {medians['sync'] / medians['openai']:.2f}x (target <= 0.5x)"
        )
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"sync-{stamp}.json").write_text(
        json.dumps({"results": results, "medians": medians})
    )


if __name__ == "__main__":
    main()
