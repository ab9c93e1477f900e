"""``finetune-async demo``: a whole fine-tuning and batch workflow on an embedded emulator.

No key and no network: an emulator starts on 127.0.0.1, and the SDK does what a user would do
against the real API.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from .._client import AsyncClient
from ..emulator import Emulator, WebhookEndpoint
from ..emulator._webhooks import new_secret, serve_receiver
from ..webhooks import WebhookReceiver
from ._commands import checkpoint_rows
from ._live import ProgressReader, follow_jobs, job_failure, transfer_progress

if TYPE_CHECKING:
    from ..types import WebhookEvent
    from ._output import Output

__all__ = ["run_demo"]

#: Real seconds the demo waits for the job's webhook once the job is seen to succeed (it has
#: normally arrived already: the emulator pushes it as the job ends, before the next poll).
_WEBHOOK_WAIT = 5.0

_QUESTIONS = [
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
    ("What is 12 times 12?", "144."),
    ("Which planet is known as the red planet?", "Mars."),
    ("What gas do plants absorb?", "Carbon dioxide."),
    ("Who wrote Hamlet?", "William Shakespeare."),
    ("What is the boiling point of water at sea level in Celsius?", "100 degrees."),
    ("What is the largest ocean?", "The Pacific Ocean."),
    ("How many continents are there?", "Seven."),
    ("What is the chemical symbol for gold?", "Au."),
    ("What language is spoken in Brazil?", "Portuguese."),
    ("What is the square root of 81?", "Nine."),
]


def _training_file(folder: Path) -> Path:
    path = folder / "train.jsonl"
    lines = [
        orjson.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You answer in one short sentence."},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
        for question, answer in _QUESTIONS
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _batch_file(folder: Path, model: str) -> Path:
    path = folder / "batch.jsonl"
    lines = [
        orjson.dumps(
            {
                "custom_id": f"question-{index}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": question}]},
            }
        )
        for index, (question, _) in enumerate(_QUESTIONS[:5], start=1)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


async def run_demo(out: Output, *, speed: float) -> int:
    """Run the demo; return the exit code."""
    secret = new_secret()
    pushed: asyncio.Queue[WebhookEvent] = asyncio.Queue()
    receiver = WebhookReceiver(secret=secret, on_event=pushed.put)
    with tempfile.TemporaryDirectory(prefix="finetune-async-demo-") as tmp:
        folder = Path(tmp)
        async with (
            serve_receiver(receiver, "127.0.0.1", 0) as hook_port,
            Emulator(
                speed=speed,
                seed=7,
                webhooks=[WebhookEndpoint(f"http://127.0.0.1:{hook_port}/", secret)],
            ) as emulator,
            AsyncClient(base_url=emulator.url, api_key="demo") as client,
        ):
            out.message(
                f"emulator listening on {emulator.url} (speed x{speed:g})", url=emulator.url
            )

            train = _training_file(folder)
            progress, advance = transfer_progress(
                out, "uploading train.jsonl", train.stat().st_size
            )
            with progress:
                reader = ProgressReader(train, advance)
                try:
                    uploaded = await client.files.create(file=reader, purpose="fine-tune")
                finally:
                    reader.close()
            out.message(
                f"uploaded {uploaded.filename} as {uploaded.id} ({uploaded.bytes} bytes)",
                file=uploaded.id,
            )

            job = await client.fine_tuning.jobs.create(
                model="gpt-4o-mini-2024-07-18",
                training_file=uploaded.id,
                suffix="demo",
                method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
                metadata={"created-by": "finetune-async demo"},
            )
            out.message(f"created job {job.id} ({job.status})", job=job.id)
            final = (await follow_jobs(client, [job.id], out, poll_interval=0.25, timeout=120))[
                job.id
            ]
            if str(final.status) != "succeeded":
                out.message(
                    f"the job ended {final.status}: {job_failure(final) or 'no reason given'}",
                    status=str(final.status),
                )
                return 1
            await _show_webhook(out, pushed, job.id)

            events = [
                event async for event in client.fine_tuning.jobs.list_events(job.id, limit=100)
            ]
            out.message(f"{len(events)} events; the last five:", events=len(events))
            out.table(
                list(reversed(events[:5])),
                ("created_at", "level", "message"),
                title="latest events",
            )
            checkpoints = [c async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
            out.table(
                checkpoints if out.json else checkpoint_rows(checkpoints),
                ("step_number", "fine_tuned_model_checkpoint", "metrics"),
                title="checkpoints",
            )
            out.message(f"fine-tuned model: {final.fine_tuned_model}", model=final.fine_tuned_model)

            requests = await client.files.create(
                file=_batch_file(folder, final.fine_tuned_model or "gpt-4o-mini"), purpose="batch"
            )
            batch = await client.batches.create(
                input_file_id=requests.id, endpoint="/v1/chat/completions"
            )
            out.message(f"created batch {batch.id} of 5 requests", batch=batch.id)
            batch = await client.batches.wait(batch.id, poll_interval=0.25, timeout=120)
            counts = batch.request_counts
            done = f"{counts.completed} of {counts.total}" if counts else "?"
            out.message(f"batch {batch.status}: {done} requests done", status=str(batch.status))
            if batch.output_file_id is None:
                return 1
            results = []
            for line in (await client.files.content(batch.output_file_id)).splitlines():
                item = orjson.loads(line)
                answer = item["response"]["body"]["choices"][0]["message"]["content"]
                results.append({"custom_id": item["custom_id"], "answer": answer})
            out.table(results, ("custom_id", "answer"), title="batch results")
            out.message(
                "demo finished: upload, fine-tune, events, checkpoints, model and batch all worked",
                ok=True,
            )
    return 0


async def _show_webhook(out: Output, pushed: asyncio.Queue[WebhookEvent], job_id: str) -> None:
    """One line for the job's webhook, which the emulator pushed to the demo's receiver."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_WEBHOOK_WAIT):
            while True:
                event = await pushed.get()
                if event.data.id == job_id:
                    out.message(
                        f"webhook {event.type} for {job_id} arrived, signature verified",
                        webhook=str(event.type),
                    )
                    return
    out.message(f"no webhook for {job_id} arrived within {_WEBHOOK_WAIT:g} s", webhook=None)
