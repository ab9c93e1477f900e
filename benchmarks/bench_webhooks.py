"""Webhook benchmarks: the CPU of one verification, and the deliveries/s a receiver holds.

Two measurements, in one run (issue 17's targets):

- ``verify``: the CPU to verify a 2 KB event, ``finetune_async.webhooks`` against the
  ``standardwebhooks`` library's own ``Webhook.verify`` on the same input, interleaved in one
  process (target: ours at most 1.2x theirs). Like for like: our ``verify_signature`` against
  their ``verify(..., json_parse=False)``, and our ``unwrap`` (verify + typed event) against
  their default ``verify`` (verify + ``json.loads``). Each sample is a ``timeit`` of ``--calls``
  calls on ``time.process_time``; the table gives the median of ``--repeats`` samples.
- ``receiver``: a ``WebhookReceiver`` mounted with ``add_subapp`` in an aiohttp app in its own
  process on 127.0.0.1, ``on_event`` a no-op, every delivery a new ``webhook-id`` (so none is
  deduplicated away). The load generator is this process: an aiohttp client with
  ``--concurrency`` connections, bodies pre-signed outside the measured window (target: 2,000
  deliveries/s). The same server also has a floor route (read the body, answer 200), to show what
  aiohttp alone costs on the same machine. Both processes share the machine's cores. Where
  uvicorn is importable, ``receiver.asgi_app`` is measured the same way under uvicorn, with an
  ASGI floor of its own (uvicorn's pure-Python h11 parser, without httptools, is far slower than
  aiohttp, and the floor row shows how much of that is uvicorn's).

    python benchmarks/bench_webhooks.py [--repeats 5] [--deliveries 20000] [--concurrency 64]
                                        [--quick] [--only verify|receiver]

Standard output gets the table; ``--json FILE`` writes every sample too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

import orjson

SECRET = "whsec_" + base64.b64encode(b"benchmark key of thirty-two byte").decode()
ROOT = Path(__file__).resolve().parent.parent


def event_body(size: int = 2048) -> bytes:
    """An event of ``size`` bytes: OpenAI's thin shape, padded in ``data``."""
    event = {
        "id": "evt_685343a1381c819085d44c354e1b330e",
        "object": "event",
        "created_at": int(time.time()),
        "type": "fine_tuning.job.succeeded",
        "data": {"id": "ftjob-abc123", "pad": ""},
    }
    base = len(orjson.dumps(event))
    event["data"]["pad"] = "x" * (size - base)  # type: ignore[index]
    body = orjson.dumps(event)
    assert len(body) == size
    return body


# --- (a) verification CPU ----------------------------------------------------------------------


def bench_verify(repeats: int, calls: int) -> dict[str, object]:
    import standardwebhooks

    from finetune_async.webhooks import sign, unwrap, verify_signature

    body = event_body()
    headers = sign(body, secret=SECRET, webhook_id="wh_bench", timestamp=int(time.time()))
    theirs = standardwebhooks.Webhook(SECRET)
    # Sanity: all four accept the input.
    verify_signature(body, headers, secret=SECRET)
    unwrap(body, headers, secret=SECRET)
    theirs.verify(body, headers, json_parse=False)
    theirs.verify(body, headers)
    runners = {
        "ours verify_signature": lambda: verify_signature(body, headers, secret=SECRET),
        "standardwebhooks verify(json_parse=False)": lambda: theirs.verify(
            body, headers, json_parse=False
        ),
        "ours unwrap": lambda: unwrap(body, headers, secret=SECRET),
        "standardwebhooks verify()": lambda: theirs.verify(body, headers),
    }
    samples: dict[str, list[float]] = {name: [] for name in runners}
    timer = timeit.Timer
    for _ in range(repeats):  # interleaved: a machine that gets busier moves every runner alike
        for name, call in runners.items():
            elapsed = timer(call, timer=time.process_time).timeit(calls)
            samples[name].append(elapsed / calls * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {
        "verify_signature / verify(json_parse=False)": medians["ours verify_signature"]
        / medians["standardwebhooks verify(json_parse=False)"],
        "unwrap / verify()": medians["ours unwrap"] / medians["standardwebhooks verify()"],
    }
    return {"body_bytes": len(body), "calls": calls, "samples_us": samples,
            "median_us": medians, "ratios": ratios}  # fmt: skip


# --- (b) receiver throughput -------------------------------------------------------------------


def serve() -> None:
    """The server process: a receiver at /hooks/, a floor at /floor/, CPU at /cpu."""
    from aiohttp import web

    from finetune_async.webhooks import WebhookReceiver

    async def on_event(_event: object) -> None:
        return None

    async def floor(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def cpu(_request: web.Request) -> web.Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return web.json_response({"cpu": usage.ru_utime + usage.ru_stime})

    async def main() -> None:
        app = web.Application()
        app.add_subapp("/hooks/", WebhookReceiver(secret=SECRET, on_event=on_event).aiohttp_app())
        app.router.add_post("/floor/", floor)
        app.router.add_get("/cpu", cpu)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"ready {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_asgi() -> None:
    """The server process for the ASGI app under uvicorn: the receiver at /hooks/, CPU at /cpu."""
    import socket

    import uvicorn

    from finetune_async.webhooks import WebhookReceiver

    async def on_event(_event: object) -> None:
        return None

    receiver = WebhookReceiver(secret=SECRET, on_event=on_event)

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] == "http" and scope["path"] == "/cpu":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            body = orjson.dumps({"cpu": usage.ru_utime + usage.ru_stime})
            await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": body})  # type: ignore[operator]
            return
        if scope["type"] == "http" and scope["path"] == "/floor/":
            more = True
            while more:  # read the body, answer 200: what uvicorn alone costs
                more = (await receive())["more_body"]  # type: ignore[operator]
            await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]
            return
        await receiver.asgi_app(scope, receive, send)  # type: ignore[arg-type]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"ready {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


async def load(port: int, path: str, deliveries: int, concurrency: int) -> dict[str, float]:
    """POST ``deliveries`` pre-signed deliveries with ``concurrency`` connections."""
    import aiohttp

    from finetune_async.webhooks import sign

    body = event_body()
    stamp = int(time.time())
    prefix = f"wh_{os.getpid()}_{time.monotonic_ns()}_"
    requests = [
        sign(body, secret=SECRET, webhook_id=f"{prefix}{n}", timestamp=stamp)
        for n in range(deliveries)
    ]
    url = f"http://127.0.0.1:{port}{path}"
    connector = aiohttp.TCPConnector(limit=concurrency)
    failures = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def server_cpu() -> float:
            async with session.get(f"http://127.0.0.1:{port}/cpu") as response:
                return float(orjson.loads(await response.read())["cpu"])

        async def worker(share: list[dict[str, str]]) -> None:
            nonlocal failures
            for headers in share:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    failures += response.status != 200

        # Warm-up: open the connections, outside the window.
        await asyncio.gather(*(worker(requests[i : i + 1]) for i in range(concurrency)))
        rest = requests[concurrency:]
        shares = [rest[i::concurrency] for i in range(concurrency)]
        cpu_before = await server_cpu()
        start = time.perf_counter()
        await asyncio.gather(*(worker(share) for share in shares))
        wall = time.perf_counter() - start
        cpu_after = await server_cpu()
    count = len(rest)
    return {
        "deliveries": count,
        "wall_s": wall,
        "per_s": count / wall,
        "server_cpu_us": (cpu_after - cpu_before) / count * 1e6,
        "failures": failures,
    }


def _start(mode: str) -> tuple[subprocess.Popen[str], int]:
    path = os.pathsep.join([str(ROOT), *sys.path[1:]])  # the same packages as this process
    server = subprocess.Popen(
        [sys.executable, __file__, mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline().split()[1])


def bench_receiver(repeats: int, deliveries: int, concurrency: int) -> dict[str, object]:
    servers = {"aiohttp": _start("--serve")}
    try:
        import uvicorn  # noqa: F401 - optional: the ASGI row needs an ASGI server

        servers["asgi"] = _start("--serve-asgi")
    except ImportError:
        print("  (uvicorn is not installed: no ASGI row)", file=sys.stderr)
    runs = {"receiver (aiohttp sub-app)": ("aiohttp", "/hooks/"),
            "floor (aiohttp handler)": ("aiohttp", "/floor/"),
            "receiver (ASGI, uvicorn)": ("asgi", "/hooks/"),
            "floor (ASGI app, uvicorn)": ("asgi", "/floor/")}  # fmt: skip
    runs = {name: run for name, run in runs.items() if run[0] in servers}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    try:
        for _ in range(repeats):
            for name, (server, path) in runs.items():
                port = servers[server][1]
                samples[name].append(asyncio.run(load(port, path, deliveries, concurrency)))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)
    medians = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for name, runs in samples.items()
    }
    return {"concurrency": concurrency, "samples": samples, "median": medians}


# --- the table ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-asgi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000, help="verifications per sample")
    parser.add_argument("--deliveries", type=int, default=20_000, help="per receiver sample")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a tenth of the counts, 1 repeat")
    parser.add_argument("--only", choices=["verify", "receiver"])
    parser.add_argument("--json", type=Path, help="write every sample to this file")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if args.serve_asgi:
        serve_asgi()
        return
    if args.quick:
        args.repeats, args.calls, args.deliveries = 1, args.calls // 10, args.deliveries // 10
    sys.path.insert(0, str(ROOT))
    result: dict[str, object] = {
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
    }
    if args.only in (None, "verify"):
        verify = bench_verify(args.repeats, args.calls)
        result["verify"] = verify
        print(f"Verify a {verify['body_bytes']}-byte event, CPU per call "
              f"(median of {args.repeats} x {args.calls:,} calls):")  # fmt: skip
        for name, value in verify["median_us"].items():  # type: ignore[attr-defined]
            print(f"  {name:<44} {value:7.2f} us")
        for name, value in verify["ratios"].items():  # type: ignore[attr-defined]
            verdict = "met" if value <= 1.2 else "MISSED"
            print(f"  ratio {name:<38} {value:7.2f}x  (target <= 1.2x: {verdict})")
    if args.only in (None, "receiver"):
        receiver = bench_receiver(args.repeats, args.deliveries, args.concurrency)
        result["receiver"] = receiver
        print(f"Receiver on loopback, on_event a no-op, {args.concurrency} connections "
              f"(median of {args.repeats} x {args.deliveries:,} deliveries):")  # fmt: skip
        for name, row in receiver["median"].items():  # type: ignore[attr-defined]
            print(f"  {name:<27} {row['per_s']:9,.0f} deliveries/s   server CPU "
                  f"{row['server_cpu_us']:6.1f} us / delivery   "
                  f"failures {row['failures']:.0f}")  # fmt: skip
        per_s = receiver["median"]["receiver (aiohttp sub-app)"]["per_s"]  # type: ignore[index]
        verdict = "met" if per_s >= 2000 else "MISSED"
        print(f"  target >= 2,000 deliveries/s: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
