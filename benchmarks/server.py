"""A cheap fine-tuning API stand-in for the benchmarks, run in its own process.

It speaks just enough HTTP/1.1 (keep-alive, pipelining, GET) on a bare ``asyncio.Protocol`` and
answers from pre-rendered bytes, so a request costs the server a dictionary look-up and a write:
the clients, not the server, are what the benchmarks measure. Routes, all under ``/v1``:

- ``GET /fine_tuning/jobs?limit=&after=``: a list of ``--jobs`` jobs (10,000), newest first,
  in ``after`` / ``limit`` pages with a correct ``has_more``;
- ``GET /fine_tuning/jobs/{id}``: a job of that list, or, for any other id, a watched job that
  moves ``queued`` -> ``running`` -> ``succeeded`` on its 1st, 2nd and 3rd retrieve, so watchers
  have changes to report;
- ``GET /fine_tuning/jobs/{id}/events?limit=&after=``: ``--events`` events (10,000), newest first.

``GET /_bench/sim/start?jobs=&hour_s=&webhook=&secret=`` starts a **simulated hour** for the
tracker benchmark (``bench_tracker.py``): ``jobs`` jobs ``ftjob-sim…``, all ``running``, each
ending (``succeeded``, one in ten ``failed``) at its own moment, spread at random over the next
``hour_s`` real seconds. While it runs, the job list is those jobs (newest first, 100 a page at
most) and their retrieves answer their status at that moment; with ``webhook`` (a URL) and
``secret``, a job's end is also POSTed there as a webhook signed with
``finetune_async.webhooks.sign``. ``GET /_bench/sim/stats`` answers the requests served since
the start (list pages and retrieves apart) and the webhooks sent. Without a started simulation
nothing of this is used.

``GET /_bench/cpu`` answers the server's own CPU seconds and request count, so the harness can
report the server's share of each run; on SIGTERM it prints ``server_cpu=<s> requests=<n>``.

    python benchmarks/server.py [--port 0] [--jobs 10000] [--events 10000]

It prints ``ready <port>`` once it listens (port 0: one the system picks).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import signal
import time
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from payloads import events, list_jobs, watched_job

_JOBS_PATH = "/v1/fine_tuning/jobs"
#: OpenAI's default page size for jobs and events.
_DEFAULT_LIMIT = 20
_WATCH_STATUSES = ("queued", "running", "succeeded")


def _response(body: bytes, status: bytes = b"200 OK") -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"x-request-id: req_bench\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


def _error(status: bytes, message: str) -> bytes:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None}}
    return _response(orjson.dumps(body), status)


class _Pages:
    """Cursor pages over a fixed list of objects, each page rendered once."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = [orjson.dumps(item) for item in items]
        self._position = {item["id"]: index for index, item in enumerate(items)}
        self._bodies: dict[tuple[str | None, int], bytes] = {}

    def body(self, after: str | None, limit: int) -> bytes:
        key = (after, limit)
        body = self._bodies.get(key)
        if body is None:
            start = 0 if after is None else self._position.get(after, len(self._items)) + 1
            page = self._items[start : start + limit]
            has_more = b"true" if start + limit < len(self._items) else b"false"
            body = b'{"object":"list","data":[' + b",".join(page) + b'],"has_more":' + has_more
            body += b"}"
            self._bodies[key] = body
        return body


class Api:
    """The routes, answering a request target with the whole HTTP response as bytes."""

    def __init__(self, job_count: int, event_count: int) -> None:
        jobs = list_jobs(job_count)
        self.jobs = _Pages(jobs)
        self.events = _Pages(events(event_count))
        # Pre-render: every job of the list and every page a `limit=100` walk asks for.
        self._job_responses = {job["id"]: _response(orjson.dumps(job)) for job in jobs}
        after = None
        for start in range(0, job_count, 100):
            self.jobs.body(after, 100)
            after = jobs[min(start + 99, job_count - 1)]["id"]
        self._watch_templates = [orjson.dumps(watched_job(s)) for s in _WATCH_STATUSES]
        self._polls: defaultdict[str, int] = defaultdict(int)
        self._by_target: dict[bytes, bytes] = {}
        self.requests = 0
        self.sim: Simulation | None = None

    def answer(self, method: bytes, target: bytes) -> bytes:
        self.requests += 1
        cached = self._by_target.get(target)
        if cached is not None and method == b"GET":
            return cached
        if method != b"GET":
            return _error(b"405 Method Not Allowed", "only GET is served here")
        url = urlsplit(target.decode())
        path = url.path.rstrip("/")
        if path == "/_bench/cpu":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = usage.ru_utime + usage.ru_stime
            return _response(orjson.dumps({"cpu_s": cpu, "requests": self.requests}))
        simulated = self._simulated(path, url.query)
        return self._route(target, path, url.query) if simulated is None else simulated

    def _simulated(self, path: str, query: str) -> bytes | None:
        """The answer of the simulated hour's routes and jobs, or None for any other request."""
        if path == "/_bench/sim/start":
            self._by_target.clear()  # list pages cached before the simulation are stale now
            if self.sim is not None:
                self.sim.stop()
            self.sim = Simulation.start(parse_qs(query))
            return _response(orjson.dumps({"jobs": len(self.sim.ids)}))
        if path == "/_bench/sim/stats":
            stats = self.sim.stats() if self.sim is not None else {}
            return _response(orjson.dumps(stats))
        return None if self.sim is None else self.sim.answer(path, query)

    def _route(self, target: bytes, path: str, query: str) -> bytes:
        if path == _JOBS_PATH:
            return self._cache(target, self._page(self.jobs, query))
        job, _, rest = path.removeprefix(_JOBS_PATH + "/").partition("/")
        if not path.startswith(_JOBS_PATH + "/") or rest not in {"", "events"}:
            return _error(b"404 Not Found", f"no route for {path}")
        if rest == "events":
            return self._cache(target, self._page(self.events, query))
        known = self._job_responses.get(job)
        # A job of the list never changes; any other id is a watched job, answered afresh.
        return self._watched(job) if known is None else self._cache(target, known)

    def _cache(self, target: bytes, response: bytes) -> bytes:
        self._by_target[target] = response
        return response

    def _page(self, pages: _Pages, query: str) -> bytes:
        params = parse_qs(query)
        after = params.get("after", [None])[0]
        try:
            limit = int(params.get("limit", [_DEFAULT_LIMIT])[0] or _DEFAULT_LIMIT)
        except ValueError:
            return _error(b"400 Bad Request", "limit must be an integer")
        return _response(pages.body(after, limit))

    def _watched(self, job: str) -> bytes:
        seen = self._polls[job]
        self._polls[job] = seen + 1
        template = self._watch_templates[min(seen, len(self._watch_templates) - 1)]
        return _response(template.replace(b"@ID@", job.encode()))


# --- the simulated hour of the tracker benchmark ------------------------------------------------

_SIM_NEWEST = 1_763_700_000
#: How many webhooks are sent at once (each on its own keep-alive connection).
_SIM_SENDERS = 4


def sim_job_id(index: int) -> str:
    """The id of the ``index``-th job of a simulation (24 characters, as OpenAI's)."""
    return f"ftjob-sim{index:015d}"


class Simulation:
    """Jobs whose status is a function of the time since the start: running, then ended."""

    def __init__(self, count: int, hour_s: float, webhook: str | None, secret: str | None) -> None:
        rng = random.Random(18)  # the same hour every run
        self.ids = [sim_job_id(index) for index in range(count)]
        self._index = {job: index for index, job in enumerate(self.ids)}
        self.started = time.monotonic()
        #: Seconds after the start at which each job ends, spread at random over the hour.
        self.ends = [rng.uniform(0.0, hour_s) for _ in self.ids]
        self.final = ["failed" if index % 10 == 9 else "succeeded" for index in range(count)]
        self._running: list[bytes] = []
        self._ended: list[bytes] = []
        templates = {status: watched_job(status) for status in ("running", "succeeded")}
        for index, job in enumerate(self.ids):
            created = _SIM_NEWEST - 60 * index
            for status, out in (("running", self._running), (self.final[index], self._ended)):
                data = dict(templates["succeeded" if status != "running" else "running"])
                data.update(id=job, status=status, created_at=created, seed=index)
                data["estimated_finish"] = created + 3600
                if status != "running":
                    data["finished_at"] = created + 3600
                out.append(orjson.dumps(data))
        self.list_pages = self.retrieves = self.webhooks_sent = self.webhooks_failed = 0
        self._sender: asyncio.Task[None] | None = None
        if webhook and secret:
            self._sender = asyncio.get_running_loop().create_task(self._send(webhook, secret))

    @classmethod
    def start(cls, params: dict[str, list[str]]) -> Simulation:
        """A simulation from the query of ``/_bench/sim/start``."""
        count = int(params.get("jobs", ["10000"])[0])
        hour_s = float(params.get("hour_s", ["60"])[0])
        webhook = params.get("webhook", [None])[0]
        secret = params.get("secret", [None])[0]
        return cls(count, hour_s, webhook, secret)

    def stats(self) -> dict[str, float]:
        """The requests served and webhooks sent since the start."""
        return {
            "list_pages": self.list_pages,
            "retrieves": self.retrieves,
            "requests": self.list_pages + self.retrieves,
            "webhooks_sent": self.webhooks_sent,
            "webhooks_failed": self.webhooks_failed,
            "elapsed_s": time.monotonic() - self.started,
        }

    def stop(self) -> None:
        """Stop sending webhooks (a new simulation replaces this one)."""
        if self._sender is not None:
            self._sender.cancel()

    def _body(self, index: int, now: float) -> bytes:
        return self._ended[index] if now >= self.ends[index] else self._running[index]

    def answer(self, path: str, query: str) -> bytes | None:
        """The response to a request about the simulated jobs, or None if it is not one."""
        now = time.monotonic() - self.started
        if path == _JOBS_PATH:
            self.list_pages += 1
            params = parse_qs(query)
            after = params.get("after", [None])[0]
            limit = min(100, int(params.get("limit", [_DEFAULT_LIMIT])[0] or _DEFAULT_LIMIT))
            start = 0 if after is None else self._index.get(after, len(self.ids)) + 1
            page = [
                self._body(index, now) for index in range(start, min(start + limit, len(self.ids)))
            ]
            has_more = b"true" if start + limit < len(self.ids) else b"false"
            return _response(
                b'{"object":"list","data":[' + b",".join(page) + b'],"has_more":' + has_more + b"}"
            )
        index = self._index.get(path.removeprefix(_JOBS_PATH + "/"))
        if index is None:
            return None
        self.retrieves += 1
        return _response(self._body(index, now))

    async def _send(self, url: str, secret: str) -> None:
        """POST a signed webhook to ``url`` for each job as it ends, oldest end first."""
        from finetune_async.webhooks import sign  # only a simulation with webhooks needs it

        parts = urlsplit(url)
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def sender() -> None:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            while True:
                index = await queue.get()
                kind = "succeeded" if self.final[index] == "succeeded" else "failed"
                now = int(time.time())
                body = orjson.dumps(
                    {
                        "id": f"evt_sim{index:015d}",
                        "object": "event",
                        "created_at": now,
                        "type": f"fine_tuning.job.{kind}",
                        "data": {"id": self.ids[index]},
                    }
                )
                headers = sign(body, secret=secret, webhook_id=f"wh_sim{index}", timestamp=now)
                head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                head += "Content-Type: application/json\r\n"
                head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                head += f"Content-Length: {len(body)}\r\n\r\n"
                writer.write(head.encode() + body)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in {b"\r\n", b""}:
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                queue.task_done()
                if status_line.split()[1:2] == [b"200"]:
                    self.webhooks_sent += 1
                else:
                    self.webhooks_failed += 1

        senders = [asyncio.create_task(sender()) for _ in range(_SIM_SENDERS)]
        try:
            for index in sorted(range(len(self.ids)), key=self.ends.__getitem__):
                delay = self.started + self.ends[index] - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait(index)
            await asyncio.Event().wait()  # the senders drain the queue
        finally:
            for task in senders:
                task.cancel()


class _Http(asyncio.Protocol):
    """One keep-alive connection: parse request heads, write pre-rendered answers."""

    def __init__(self, api: Api) -> None:
        self._api = api
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        transport = self._transport
        assert transport is not None
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            body_length = 0
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = lowered.find(b"\r\n", at + 2)
                body_length = int(lowered[at + 17 : None if line_end < 0 else line_end])
            if len(buffer) < end + 4 + body_length:
                break  # the body is still on its way
            request_line = head.split(b"\r\n", 1)[0]
            method, target, _ = request_line.split(b" ", 2)
            transport.write(self._api.answer(method, target))
            buffer = buffer[end + 4 + body_length :]
            if b"\r\nconnection: close" in lowered:
                transport.close()
                break
        self._buffer = buffer


async def serve(port: int, job_count: int, event_count: int) -> None:
    """Serve until SIGTERM or SIGINT, then print this process's CPU seconds."""
    api = Api(job_count, event_count)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(api), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"server_cpu={usage.ru_utime + usage.ru_stime:.3f} requests={api.requests}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.jobs, args.events))


if __name__ == "__main__":
    main()
