"""One runner doing one workload, in the fresh process the harness (run.py) starts for it.

    python benchmarks/runners.py WORKLOAD RUNNER --base URL [--count N] [--concurrency C] ...

It prints one JSON object: the client CPU (user + sys, every thread) and wall time of the
measured window, the requests sent and units done in it (requests, jobs or polls), and the
process's peak RSS. Imports, client set-up and a short warm-up (the same for every runner: the
first connection, cattrs' and pydantic's lazily built structuring code) stay outside the window;
peak RSS covers the whole process, imports included, as a user would see it.

Runners: ``floor`` (aiohttp + orjson, no records: the floor aiohttp itself sets),
``finetune_async`` (``AsyncClient``), ``openai`` (``AsyncOpenAI``), ``Client`` (the blocking
``finetune_async.Client``: retrieves, and the list walk item by item) and ``OpenAI``
(``openai.OpenAI``). Every client talks to the same base
URL with retries off and the same concurrency. The structuring micro-benchmark has its own
runners: ``finetune_async`` (the converter), ``openai.construct`` (what ``openai`` does with every
answer by default) and ``openai.model_validate`` (pydantic's validation).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import resource
import time
import timeit
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol

from payloads import job_id, list_jobs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

API_KEY = "sk-bench"
#: Jobs a watch workload follows at once: the polling issue's setting, kept from bench_watch.
WATCH_CONCURRENCY = 32


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Window:
    """The measured span: client CPU and wall time between ``start`` and ``stop``."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def start(self) -> None:
        self.cpu, self.wall = _cpu(), time.perf_counter()

    def stop(self) -> None:
        self.cpu, self.wall = _cpu() - self.cpu, time.perf_counter() - self.wall


async def _workers(
    concurrency: int, ids: list[str], fetch: Callable[[str], Awaitable[str]]
) -> None:
    """Fetch every id with ``concurrency`` workers; each answer's id must be the one asked for."""
    queue: Iterator[str] = iter(ids)

    async def work() -> None:
        for wanted in queue:
            got = await fetch(wanted)
            if got != wanted:
                raise RuntimeError(f"asked for {wanted}, got {got}")

    await asyncio.gather(*(work() for _ in range(concurrency)))


# --- async clients: one fetch, one walk, one follow per runner -----------------------------------


class AsyncRunner(Protocol):
    """What every async runner offers the workloads."""

    async def retrieve(self, job_id: str) -> str:
        """Retrieve a job; return the id of the job answered."""
        ...

    async def walk(self, path: str, limit: int, stop_after: int | None = None) -> tuple[int, int]:
        """Walk a list in pages of ``limit``; return the items and the requests it took."""
        ...

    async def status(self, job_id: str) -> str:
        """Retrieve a job; return its status."""
        ...

    async def aclose(self) -> None:
        """Close the client."""
        ...


class _Floor:
    """aiohttp and orjson alone: a GET, a status check and ``orjson.loads``, nothing else."""

    def __init__(self, base: str) -> None:
        import aiohttp
        import orjson

        self._loads = orjson.loads
        self._base = base
        self._headers = {"Authorization": f"Bearer {API_KEY}"}
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def _get(self, url: str) -> Any:
        async with self._session.get(url, headers=self._headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status}")
        return self._loads(body)

    async def retrieve(self, job_id: str) -> str:
        job = await self._get(f"{self._base}/fine_tuning/jobs/{job_id}")
        return str(job["id"])

    async def walk(self, path: str, limit: int, stop_after: int | None = None) -> tuple[int, int]:
        items = requests = 0
        after = ""
        while True:
            page = await self._get(f"{self._base}{path}?limit={limit}{after}")
            requests += 1
            items += len(page["data"])
            if not page.get("has_more") or not page["data"] or requests == stop_after:
                return items, requests
            after = f"&after={page['data'][-1]['id']}"

    async def status(self, job_id: str) -> str:
        job = await self._get(f"{self._base}/fine_tuning/jobs/{job_id}")
        return str(job["status"])

    async def aclose(self) -> None:
        await self._session.close()


class _FinetuneAsync:
    """``finetune_async.AsyncClient``."""

    def __init__(self, base: str) -> None:
        from finetune_async import AsyncClient

        self.client = AsyncClient(api_key=API_KEY, base_url=base, max_retries=0)

    async def retrieve(self, job_id: str) -> str:
        job = await self.client.fine_tuning.jobs.retrieve(job_id)
        return job.id

    async def walk(self, path: str, limit: int, stop_after: int | None = None) -> tuple[int, int]:
        jobs = self.client.fine_tuning.jobs
        items = requests = 0
        pager = (
            jobs.list(limit=limit)
            if path == "/fine_tuning/jobs"
            else jobs.list_events(path.split("/")[3], limit=limit)
        )
        async with aclosing(pager.pages()) as pages:
            async for page in pages:
                requests += 1
                items += len(page.data)
                if requests == stop_after:
                    break
        return items, requests

    async def status(self, job_id: str) -> str:
        job = await self.client.fine_tuning.jobs.retrieve(job_id)
        return str(job.status)

    async def aclose(self) -> None:
        await self.client.aclose()


class _OpenAIAsync:
    """``openai.AsyncOpenAI``."""

    def __init__(self, base: str) -> None:
        import openai

        self.client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base, max_retries=0)

    async def retrieve(self, job_id: str) -> str:
        job = await self.client.fine_tuning.jobs.retrieve(job_id)
        return job.id

    async def walk(self, path: str, limit: int, stop_after: int | None = None) -> tuple[int, int]:
        jobs = self.client.fine_tuning.jobs
        items = requests = 0
        if path == "/fine_tuning/jobs":
            page: Any = await jobs.list(limit=limit)
        else:
            page = await jobs.list_events(path.split("/")[3], limit=limit)
        while True:
            requests += 1
            items += len(page.data)
            if requests == stop_after or not page.has_next_page():
                return items, requests
            page = await page.get_next_page()

    async def status(self, job_id: str) -> str:
        job = await self.client.fine_tuning.jobs.retrieve(job_id)
        return str(job.status)

    async def aclose(self) -> None:
        await self.client.close()


_ASYNC: dict[str, Callable[[str], AsyncRunner]] = {
    "floor": _Floor,
    "finetune_async": _FinetuneAsync,
    "openai": _OpenAIAsync,
}


async def _async_workload(args: argparse.Namespace, window: Window) -> dict[str, int]:
    runner = _ASYNC[args.runner](args.base)
    try:
        if args.workload.startswith("retrieve"):
            ids = [job_id(i % args.jobs) for i in range(args.count)]
            warm = ids[: min(args.count, max(2 * args.concurrency, 50))]
            await _workers(args.concurrency, warm, runner.retrieve)
            window.start()
            await _workers(args.concurrency, ids, runner.retrieve)
            window.stop()
            return {"requests": args.count, "units": args.count}
        if args.workload in {"list_walk", "events_walk"}:
            path = "/fine_tuning/jobs"
            if args.workload == "events_walk":
                path += f"/{job_id(0)}/events"
            await runner.walk(path, args.limit, stop_after=1)
            items = requests = 0
            window.start()
            # Several passes: one walk of 100 pages is too short a window to time steadily.
            for _ in range(args.passes):
                walked, sent = await runner.walk(path, args.limit)
                items += walked
                requests += sent
            window.stop()
            return {"requests": requests, "units": items}
        if args.workload == "watch":
            await runner.retrieve(job_id(0))
            ids = [f"ftjob-w{args.tag}-{i:06d}" for i in range(args.count)]
            window.start()
            if isinstance(runner, _FinetuneAsync):
                polls = await _watch(runner, ids)
            else:
                polls = await _follow(runner, ids)
            window.stop()
            return {"requests": polls, "units": polls}
    finally:
        await runner.aclose()
    raise SystemExit(f"{args.runner} does not run {args.workload}")


async def _follow(runner: AsyncRunner, ids: list[str]) -> int:
    """What users of aiohttp or of ``openai`` write: poll each job until it is done."""
    polls = 0
    gate = asyncio.Semaphore(WATCH_CONCURRENCY)

    async def follow(wanted: str) -> None:
        nonlocal polls
        while True:
            async with gate:
                status = await runner.status(wanted)
            polls += 1
            if status == "succeeded":
                return

    await asyncio.gather(*(follow(wanted) for wanted in ids))
    return polls


async def _watch(runner: _FinetuneAsync, ids: list[str]) -> int:
    polls = 0
    watch = runner.client.fine_tuning.jobs.watch(
        ids, poll_interval=0.05, max_concurrency=WATCH_CONCURRENCY
    )
    async for update in watch:
        polls += 1  # one update per poll here: every poll sees a new status
        if update.error is not None:
            raise update.error
    return polls


# --- blocking clients -----------------------------------------------------------------------------


def _sync_list_walk(args: argparse.Namespace, window: Window) -> dict[str, int]:
    """Walk the job list item by item, as users of the blocking ``Client`` write it."""
    from finetune_async import Client

    with Client(api_key=API_KEY, base_url=args.base, max_retries=0) as client:
        jobs = client.fine_tuning.jobs
        for _job in itertools.islice(jobs.list(limit=args.limit), args.limit):
            pass  # the warm-up: one page
        items = 0
        window.start()
        for _ in range(args.passes):
            for _job in jobs.list(limit=args.limit):
                items += 1
        window.stop()
    # The stand-in server fills every page but the last: one request per page started.
    pages_per_pass = math.ceil(items / args.passes / args.limit)
    return {"requests": args.passes * pages_per_pass, "units": items}


def _sync_workload(args: argparse.Namespace, window: Window) -> dict[str, int]:
    if args.workload == "list_walk" and args.runner == "Client":
        return _sync_list_walk(args, window)
    if not args.workload.startswith("retrieve") or args.concurrency != 1:
        raise SystemExit(f"{args.runner} runs only retrieves at concurrency 1 (Client: list walks)")
    client: Any
    if args.runner == "Client":
        from finetune_async import Client

        client = Client(api_key=API_KEY, base_url=args.base, max_retries=0)
    else:
        import openai

        client = openai.OpenAI(api_key=API_KEY, base_url=args.base, max_retries=0)
    ids = [job_id(i % args.jobs) for i in range(args.count)]
    retrieve = client.fine_tuning.jobs.retrieve
    try:
        for wanted in ids[:50]:
            retrieve(wanted)
        window.start()
        for wanted in ids:
            got = retrieve(wanted).id
            if got != wanted:
                raise RuntimeError(f"asked for {wanted}, got {got}")
        window.stop()
    finally:
        client.close()
    return {"requests": args.count, "units": args.count}


# --- the structuring micro-benchmark ------------------------------------------------------------


def _structuring(args: argparse.Namespace) -> dict[str, float]:
    """Microseconds per job to turn parsed JSON (dicts) into records, best of N timeit runs."""
    jobs = list_jobs(100, strict=True)  # strict: openai's model_validate must accept them all
    page = {"object": "list", "data": jobs, "has_more": True}
    value: Any = page if args.workload == "structure_page" else jobs[0]
    per_call = len(jobs) if args.workload == "structure_page" else 1
    structure: Callable[[], object]
    if args.runner == "finetune_async":
        from finetune_async._converter import converter
        from finetune_async.types import FineTuningJob, Page

        target: Any = Page[FineTuningJob] if per_call > 1 else FineTuningJob
        structure = lambda: converter.structure(value, target)  # noqa: E731
    else:
        from openai.pagination import AsyncCursorPage
        from openai.types.fine_tuning import FineTuningJob as OpenAIJob

        model: Any = AsyncCursorPage[OpenAIJob] if per_call > 1 else OpenAIJob
        if args.runner == "openai.construct":
            structure = lambda: model.construct(**value)  # noqa: E731
        else:
            structure = lambda: model.model_validate(value)  # noqa: E731
    timer = timeit.Timer(structure)
    number = 1
    while timer.timeit(number) < args.timeit_min_s:  # timeit's autorange, with a shorter floor
        number *= 2
    cpu0 = _cpu()
    best = min(timer.repeat(args.timeit_repeat, number)) / number
    return {
        "us_per_job": best / per_call * 1e6,
        "calls": number * args.timeit_repeat,
        "cpu_s": _cpu() - cpu0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workload")
    parser.add_argument("runner")
    parser.add_argument("--base", default="")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the server's list")
    parser.add_argument("--limit", type=int, default=100, help="page size of the walks")
    parser.add_argument("--passes", type=int, default=1, help="walks: times through the list")
    parser.add_argument("--tag", default="0", help="makes the watched job ids of a run unique")
    parser.add_argument("--timeit-repeat", type=int, default=5, help="structuring: best of N")
    parser.add_argument("--timeit-min-s", type=float, default=0.2, help="structuring: per run")
    args = parser.parse_args()
    if args.workload.startswith("structure"):
        print(json.dumps(_structuring(args)))
        return
    window = Window()
    if args.runner in _ASYNC:
        done = asyncio.run(_async_workload(args, window))
    else:
        done = _sync_workload(args, window)
    print(
        json.dumps(
            {**done, "cpu_s": window.cpu, "wall_s": window.wall, "peak_rss_mb": _peak_rss_mb()}
        )
    )


if __name__ == "__main__":
    main()
