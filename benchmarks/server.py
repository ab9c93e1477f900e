"""A cheap fine-tuning API stand-in for the benchmarks, run in its own process.

Answers are pre-rendered; a job moves ``queued`` -> ``running`` -> ``succeeded`` on its 1st, 2nd
and 3rd retrieve, so watchers have changes to report. On SIGTERM it prints its own CPU seconds
as ``server_cpu=<s>``, so a reader can see the server is not the bottleneck.

    python benchmarks/server.py PORT
"""

from __future__ import annotations

import resource
import signal
import sys
from collections import defaultdict

import orjson
from aiohttp import web

_JOB = {
    "object": "fine_tuning.job",
    "id": "@ID@",
    "model": "gpt-4o-mini-2024-07-18",
    "created_at": 1692661014,
    "finished_at": None,
    "fine_tuned_model": None,
    "organization_id": "org-123",
    "result_files": [],
    "status": "@STATUS@",
    "validation_file": None,
    "training_file": "file-abc123",
    "hyperparameters": {"batch_size": 1, "learning_rate_multiplier": 1.8, "n_epochs": 3},
    "trained_tokens": None,
    "error": None,
    "integrations": [],
    "seed": 42,
    "estimated_finish": None,
    "method": {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {"batch_size": 1, "learning_rate_multiplier": 1.8, "n_epochs": 3}
        },
    },
    "metadata": {"team": "search"},
}
_STATUSES = (b"queued", b"running", b"succeeded")
_TEMPLATE = orjson.dumps(_JOB)
_BODIES = [_TEMPLATE.replace(b"@STATUS@", status) for status in _STATUSES]


def main() -> None:
    port = int(sys.argv[1])
    polls: defaultdict[str, int] = defaultdict(int)

    async def retrieve(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        seen = polls[job_id]
        polls[job_id] = seen + 1
        body = _BODIES[min(seen, 2)].replace(b"@ID@", job_id.encode())
        return web.Response(body=body, content_type="application/json")

    def report(*_: object) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"server_cpu={usage.ru_utime + usage.ru_stime:.3f}", flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, report)
    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{job_id}", retrieve)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=False)


if __name__ == "__main__":
    main()
