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

``GET /_bench/cpu`` answers the server's own CPU seconds and request count, so the harness can
report the server's share of each run; on SIGTERM it prints ``server_cpu=<s> requests=<n>``.

    python benchmarks/server.py [--port 0] [--jobs 10000] [--events 10000]

It prints ``ready <port>`` once it listens (port 0: one the system picks).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
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
        return self._route(target, path, url.query)

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
