"""The handlers of ``finetune-async jobs|files|batches ...``: one coroutine per command."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._client import AsyncClient
from ..data import TrainingFileReport, validate_training_file
from ..errors import InvalidParameterError
from ._live import ProgressReader, follow_jobs, transfer_progress
from ._output import Output, local_time
from ._plot import load_plotter

if TYPE_CHECKING:
    from ..types import BatchResult, FineTuningJobCheckpoint

__all__ = [
    "COMMANDS",
    "LOCAL_COMMANDS",
    "answer_text",
    "checkpoint_rows",
    "parse_pairs",
    "show_training_report",
]

Handler = Callable[[AsyncClient, argparse.Namespace, Output], Awaitable[int]]
#: A command that needs no API (nor key): it works on local files only.
LocalHandler = Callable[[argparse.Namespace, Output], int]

JOB_COLUMNS = ("id", "status", "model", "fine_tuned_model", "created_at", "finished_at")
EVENT_COLUMNS = ("created_at", "level", "message")
CHECKPOINT_COLUMNS = ("id", "step_number", "fine_tuned_model_checkpoint", "metrics")
FILE_COLUMNS = ("id", "filename", "purpose", "bytes", "status", "created_at")
BATCH_COLUMNS = ("id", "status", "endpoint", "request_counts", "output_file_id", "error_file_id")
RESULT_COLUMNS = ("custom_id", "status_code", "ok", "answer", "error_message")
#: The most characters of an answer a results table shows (``--json`` has all of it).
ANSWER_SHOWN = 500
#: The API's largest page of events: a longer ``--limit`` is read a page at a time.
EVENTS_PAGE = 100
#: The problems ``files upload --validate`` shows of a refused file (``files validate`` has all).
PROBLEMS_SHOWN = 20
#: The columns of ``jobs metrics``, shown when at least one row has a value there.
METRIC_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str] | None:
    """Turn ``["k=v", ...]`` into a dict, or raise naming the bad one."""
    if not pairs:
        return None
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"{option}: expected KEY=VALUE, got {pair!r}", param=option)
        result[key] = value
    return result


def _method(args: argparse.Namespace) -> dict[str, Any] | None:
    hyper = {
        name: value
        for name, value in (
            ("n_epochs", args.n_epochs),
            ("batch_size", args.batch_size),
            ("learning_rate_multiplier", args.learning_rate_multiplier),
            ("beta", args.beta),
        )
        if value is not None
    }
    if args.method is None and not hyper:
        return None
    kind = args.method or "supervised"
    return {"type": kind, kind: {"hyperparameters": hyper}}


async def jobs_create(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    job = await client.fine_tuning.jobs.create(
        model=args.model,
        training_file=args.training_file,
        validation_file=args.validation_file,
        method=_method(args),
        suffix=args.suffix,
        seed=args.seed,
        metadata=parse_pairs(args.metadata, "--metadata"),
    )
    out.record(job, title="created")
    return 0


async def jobs_list(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    pager = client.fine_tuning.jobs.list(
        limit=args.limit, metadata=parse_pairs(args.metadata, "--metadata")
    )
    await out.atable(pager, JOB_COLUMNS, title="fine-tuning jobs", limit=args.max)
    return 0


async def _collect(iterator: Any, count: int | None) -> list[Any]:
    items = []
    async for item in iterator:
        items.append(item)
        if count is not None and len(items) >= count:
            break
    return items


async def jobs_get(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    out.record(await client.fine_tuning.jobs.retrieve(args.job_id))
    return 0


def _transition(action: str) -> Handler:
    async def handler(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
        job = await getattr(client.fine_tuning.jobs, action)(args.job_id)
        out.record(job, title=f"{action}: {job.status}")
        return 0

    return handler


async def jobs_events(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    if args.follow:
        async for event in client.fine_tuning.jobs.stream_events(
            args.job_id, poll_interval=args.poll_interval
        ):
            if out.json:
                out.emit(event)
            else:
                out.message(f"{local_time(event.created_at)}  {event.level}  {event.message}")
        return 0
    # The newest --limit events, read in pages the API accepts, then shown oldest first like a
    # log (the server sends them newest first).
    pager = client.fine_tuning.jobs.list_events(args.job_id, limit=min(args.limit, EVENTS_PAGE))
    events = await _collect(pager, args.limit)
    out.table(list(reversed(events)), EVENT_COLUMNS, title=f"events of {args.job_id}")
    return 0


async def jobs_checkpoints(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    checkpoints = await _collect(client.fine_tuning.jobs.checkpoints.list(args.job_id), None)
    if out.json:
        out.table(checkpoints, CHECKPOINT_COLUMNS)
    else:
        out.table(
            checkpoint_rows(checkpoints), CHECKPOINT_COLUMNS, title=f"checkpoints of {args.job_id}"
        )
    return 0


def checkpoint_rows(checkpoints: list[FineTuningJobCheckpoint]) -> list[dict[str, Any]]:
    """Checkpoints as table rows whose ``metrics`` cell reads ``train_loss 0.1234`` a line."""
    rows = []
    for checkpoint in checkpoints:
        row: dict[str, Any] = {
            "id": checkpoint.id,
            "step_number": checkpoint.step_number,
            "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
            "created_at": checkpoint.created_at,
            "metrics": _metrics_text(checkpoint),
        }
        rows.append(row)
    return rows


def _metrics_text(checkpoint: FineTuningJobCheckpoint) -> str:
    metrics = checkpoint.metrics
    if metrics is None:
        return ""
    lines = []
    for name, value in attrs.asdict(metrics).items():
        if value is None or (name == "step" and value == checkpoint.step_number):
            continue  # the step is the row's step_number already
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{name} {shown}")
    return "\n".join(lines)


async def jobs_wait(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    final = await follow_jobs(
        client, [args.job_id], out, poll_interval=args.poll_interval, timeout=args.timeout
    )
    job = final[args.job_id]
    if not out.json:
        out.record(job, title=f"{job.id}: {job.status}")
    return 0 if str(job.status).lower() == "succeeded" else 1


async def jobs_watch(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    final = await follow_jobs(
        client,
        list(dict.fromkeys(args.job_ids)),
        out,
        poll_interval=args.poll_interval,
        max_concurrency=args.max_concurrency,
        timeout=args.timeout,
    )
    if not out.json:
        out.table(final.values(), JOB_COLUMNS, title="final states")
    ok = all(str(job.status).lower() == "succeeded" for job in final.values())
    return 0 if ok else 1


def _file_size(path: Path) -> int:
    if not path.is_file():
        raise InvalidParameterError(f"no such file: {path}", param="path")
    return path.stat().st_size


def _download_target(path: Path, file_id: str) -> Path:
    return path / file_id if path.is_dir() else path


def show_training_report(
    report: TrainingFileReport, out: Output, *, max_shown: int | None = None
) -> int:
    """Print a training file's problems and summary; return 1 if it has errors, else 0.

    People get ``PATH:LINE: message`` lines (``PATH: message`` for the whole file), then a
    summary line; with ``max_shown``, only the first line problems (every whole-file one) and a
    count of the rest. JSON mode gives one ``{"line", "message", "severity"}`` object per
    problem, then a last object with ``path``, ``method``, ``ok`` and ``summary``.
    """
    if out.json:
        for problem in report.problems:
            out.emit(problem)
        out.emit(
            {
                "path": report.path,
                "method": report.method,
                "ok": report.ok,
                "summary": report.summary,
            }
        )
    else:
        # Plain lines, never wrapped to the terminal's width: editors and grep parse them.
        out.stream.write("".join(f"{line}\n" for line in _shown_problems(report, max_shown)))
        out.stream.write(_training_summary(report) + "\n")
        out.stream.flush()
    return 0 if report.ok else 1


def _shown_problems(report: TrainingFileReport, max_shown: int | None) -> list[str]:
    """The problem lines to print: all, or the first ``max_shown`` with a count of the rest."""
    lined = [p for p in report.problems if p.line is not None]
    if max_shown is None or len(lined) <= max_shown:
        return report.rendered()
    summary = report.summary
    found = summary.error_count + summary.warning_count
    problems = report.problems
    # Past its cap the report ends with a note of how many it left out; that note is not one of
    # the problems counted, and the count below already says how many are not shown.
    if len(problems) != found:
        problems = problems[:-1]
    # Problems about the whole file (too few examples...) are few and say the most: all shown.
    whole_file = [p for p in problems if p.line is None]
    hidden = found - max_shown - len(whole_file)
    return [
        *(problem.render(report.path) for problem in lined[:max_shown]),
        *(problem.render(report.path) for problem in whole_file),
        (
            f"{report.path}: ... and {hidden:,} more problem{'' if hidden == 1 else 's'}"
            f" (see them with `finetune-async files validate {report.path}`)"
        ),
    ]


def _training_summary(report: TrainingFileReport) -> str:
    """``PATH: 12 examples, ~3,400 tokens (longest: line 7, ~900); 0 errors, ...: valid ...``."""
    summary = report.summary
    text = f"{report.path}: {summary.examples:,} examples, ~{summary.estimated_tokens:,} tokens"
    if summary.longest_example_line is not None:
        text += (
            f" (longest: line {summary.longest_example_line}, ~{summary.longest_example_tokens:,})"
        )
    verdict = "valid" if report.ok else "not valid"
    errors, warnings = summary.error_count, summary.warning_count
    return (
        f"{text}; {errors:,} error{'' if errors == 1 else 's'},"
        f" {warnings:,} warning{'' if warnings == 1 else 's'}: {verdict} for {report.method}"
    )


def files_validate(args: argparse.Namespace, out: Output) -> int:
    """Check a training file locally: no key, nothing sent."""
    path = Path(args.path)
    if not path.is_file():
        raise InvalidParameterError(f"no such file: {path}", param="path")
    return show_training_report(validate_training_file(path, args.method), out)


async def files_upload(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    path = Path(args.path)
    size = _file_size(path)
    if args.validate:
        if args.purpose != "fine-tune":
            msg = f"--validate: only a fine-tune upload is training data, not {args.purpose!r}"
            raise InvalidParameterError(msg, param="validate")
        report = await asyncio.to_thread(validate_training_file, path, args.method)
        if not report.ok:
            # Refused before anything is sent: the first problems, then bad input's exit code.
            show_training_report(report, out, max_shown=PROBLEMS_SHOWN)
            errors = report.summary.error_count
            msg = (
                f"{path} was not uploaded: {errors:,} error{'' if errors == 1 else 's'}"
                f" in the training data (--validate --method {args.method})"
            )
            raise InvalidParameterError(msg, param="validate")
    progress, advance = transfer_progress(out, f"uploading {path.name}", size)
    with progress:
        reader = ProgressReader(path, advance)
        try:
            uploaded = await client.files.create(file=reader, purpose=args.purpose)
        finally:
            reader.close()
    out.record(uploaded, title="uploaded")
    return 0


async def files_list(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    pager = client.files.list(purpose=args.purpose, limit=args.limit)
    await out.atable(pager, FILE_COLUMNS, title="files", limit=args.max)
    return 0


async def files_get(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    out.record(await client.files.retrieve(args.file_id))
    return 0


async def files_delete(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    out.record(await client.files.delete(args.file_id))
    return 0


async def files_download(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    size = (await client.files.retrieve(args.file_id)).bytes
    target = _download_target(Path(args.path), args.file_id)
    progress, advance = transfer_progress(out, f"downloading {args.file_id}", size)
    with progress:
        written = await client.files.download(args.file_id, target, on_progress=advance)
    out.message(f"saved {args.file_id} to {written}", file_id=args.file_id, path=os.fspath(written))
    return 0


async def batches_create(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    batch = await client.batches.create(
        input_file_id=args.input_file_id,
        endpoint=args.endpoint,
        completion_window=args.completion_window,
        metadata=parse_pairs(args.metadata, "--metadata"),
    )
    out.record(batch, title="created")
    return 0


async def batches_list(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    await out.atable(
        client.batches.list(limit=args.limit), BATCH_COLUMNS, title="batches", limit=args.max
    )
    return 0


async def batches_get(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    out.record(await client.batches.retrieve(args.batch_id))
    return 0


async def batches_cancel(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    out.record(await client.batches.cancel(args.batch_id))
    return 0


async def batches_wait(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    batch = await client.batches.wait(
        args.batch_id, poll_interval=args.poll_interval, timeout=args.timeout
    )
    out.record(batch, title=f"{batch.id}: {batch.status}")
    return 0 if str(batch.status).lower() == "completed" else 1


async def batches_results(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    if out.json:
        # One result a line as it is read: flat memory however large the batch.
        async for result in client.batches.results(args.batch_id):
            out.emit(result)
        return 0
    rows = [
        {
            "custom_id": result.custom_id,
            "status_code": result.status_code,
            "ok": result.ok,
            "answer": _shorten(answer_text(result), ANSWER_SHOWN),
            "error_message": result.error_message,
        }
        async for result in client.batches.results(args.batch_id)
    ]
    out.table(rows, RESULT_COLUMNS, title=f"results of {args.batch_id}")
    return 0


def answer_text(result: BatchResult) -> str | None:
    """The text of a successful answer, or None when there is none.

    A chat completion's message, a completion's text, a response's output text, or an
    embedding's size.
    """
    body = result.body
    if not result.ok or not isinstance(body, dict):
        return None
    for read in (_choice_text, _response_text, _embedding_text):
        text = read(body)
        if text is not None:
            return text
    return None


def _choice_text(body: dict[str, Any]) -> str | None:
    """``choices[0].message.content`` (chat) or ``choices[0].text`` (completions)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else choices[0].get("text")
    return content if isinstance(content, str) else None


def _response_text(body: dict[str, Any]) -> str | None:
    """A response's ``output_text``, or the text parts of its ``output`` items."""
    if isinstance(body.get("output_text"), str):
        return str(body["output_text"])
    output = body.get("output")
    texts = [
        part["text"]
        for item in (output if isinstance(output, list) else [])
        if isinstance(item, dict) and isinstance(item.get("content"), list)
        for part in item["content"]
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
    return "".join(texts) if texts else None


def _embedding_text(body: dict[str, Any]) -> str | None:
    """``(an embedding of 1536 numbers)``: the numbers themselves are for --json."""
    data = body.get("data")
    first = data[0] if isinstance(data, list) and data else None
    embedding = first.get("embedding") if isinstance(first, dict) else None
    return f"(an embedding of {len(embedding)} numbers)" if isinstance(embedding, list) else None


def _shorten(text: str | None, most: int) -> str | None:
    if text is None or len(text) <= most:
        return text
    return text[: most - 1] + "…"


async def jobs_metrics(client: AsyncClient, args: argparse.Namespace, out: Output) -> int:
    # matplotlib and the target are checked first: a missing extra sends no request.
    plotter, target = load_plotter(args.plot) if args.plot else (None, None)
    rows = await client.fine_tuning.jobs.metrics(args.job_id)
    columns = [c for c in METRIC_COLUMNS if any(getattr(r, c) is not None for r in rows)]
    out.table(rows, columns or METRIC_COLUMNS[:1], title=f"metrics of {args.job_id}")
    if plotter is not None and target is not None:
        written = plotter(rows, target, title=f"loss of {args.job_id}")
        if not out.json:
            # JSON mode prints rows only, so `jq` sees one shape.
            out.message(f"saved the loss curves to {written}")
    return 0


COMMANDS: dict[tuple[str, str], Handler] = {
    ("jobs", "create"): jobs_create,
    ("jobs", "list"): jobs_list,
    ("jobs", "get"): jobs_get,
    ("jobs", "cancel"): _transition("cancel"),
    ("jobs", "pause"): _transition("pause"),
    ("jobs", "resume"): _transition("resume"),
    ("jobs", "events"): jobs_events,
    ("jobs", "checkpoints"): jobs_checkpoints,
    ("jobs", "wait"): jobs_wait,
    ("jobs", "watch"): jobs_watch,
    ("jobs", "metrics"): jobs_metrics,
    ("files", "upload"): files_upload,
    ("files", "list"): files_list,
    ("files", "get"): files_get,
    ("files", "delete"): files_delete,
    ("files", "download"): files_download,
    ("batches", "create"): batches_create,
    ("batches", "list"): batches_list,
    ("batches", "get"): batches_get,
    ("batches", "cancel"): batches_cancel,
    ("batches", "wait"): batches_wait,
    ("batches", "results"): batches_results,
}

LOCAL_COMMANDS: dict[tuple[str, str], LocalHandler] = {
    ("files", "validate"): files_validate,
}
