"""Live displays for ``jobs wait`` / ``jobs watch`` and for uploads and downloads.

On a terminal with ``rich``, a table redrawn in place: each job's status, step and epoch, and
latest train loss (read from its newest metrics event), and the fine-tuned model or why the job
failed. Otherwise one line per change.

A permanent error (an unknown job id, a refused key: the statuses the SDK's ``jobs.wait`` raises
at once) ends the follow at once: polling again would only show the same error until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import io
import math
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Self

import attrs

from .._polling import _PERMANENT, is_terminal
from ..errors import APIStatusError, WaitTimeoutError
from ..types import FineTuningJob, JobUpdate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from .._client import AsyncClient
    from ._output import Output

__all__ = ["JobBoard", "ProgressReader", "follow_jobs", "job_failure", "transfer_progress"]

try:  # the optional UI library
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )
    from rich.table import Table
except ImportError:  # pragma: no cover - without the cli extra
    Live = None  # type: ignore[assignment,misc]


@attrs.define
class _Row:
    job: FineTuningJob | None = None
    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    error: str | None = None


class JobBoard:
    """What the live table shows, one row per job."""

    def __init__(self, job_ids: Iterable[str]) -> None:
        """Start with every job unknown."""
        self.rows: dict[str, _Row] = {job_id: _Row() for job_id in job_ids}

    def update(self, update: JobUpdate, job_id: str) -> None:
        """Take a watch update."""
        row = self.rows.setdefault(job_id, _Row())
        if update.job is not None:
            row.job = update.job
        row.error = (
            None if update.error is None else f"{type(update.error).__name__}: {update.error}"
        )

    def progress_text(self, row: _Row) -> str:
        """``step 12/36 (epoch 1/3)``, or what is known of it."""
        if row.step is None:
            return ""
        text = f"step {row.step}/{row.total_steps}" if row.total_steps else f"step {row.step}"
        epochs = _epochs(row.job)
        if row.total_steps and epochs:
            per_epoch = max(1, row.total_steps // epochs)
            text += f" (epoch {min(epochs, math.ceil(row.step / per_epoch))}/{epochs})"
        return text

    def __rich__(self) -> Any:
        """Render afresh at every refresh of the live display (rows change between updates)."""
        return self.render()

    def render(self) -> Any:
        """Return the rich table."""
        table = Table(title="fine-tuning jobs", expand=False)
        for column in ("job", "status", "progress", "train loss", "model / error"):
            table.add_column(column, overflow="fold")
        for job_id, row in self.rows.items():
            status = ("error" if row.error else "…") if row.job is None else str(row.job.status)
            loss = "" if row.train_loss is None else f"{row.train_loss:.4f}"
            tail = row.error or _outcome(row.job)
            table.add_row(job_id, status, self.progress_text(row), loss, tail)
        return table


def job_failure(job: FineTuningJob | None) -> str | None:
    """Why a job failed, ``code: message`` from its ``error``; None when it has no error."""
    error = None if job is None else job.error
    if error is None:
        return None
    parts = [part for part in (error.code, error.message) if part]
    return ": ".join(parts) or None


def _outcome(job: FineTuningJob | None) -> str:
    """The model / error cell: why the job failed, else the model it made, else nothing."""
    if job is None:
        return ""
    return job_failure(job) or job.fine_tuned_model or ""


def _epochs(job: FineTuningJob | None) -> int | None:
    if job is None or job.hyperparameters is None:
        return None
    epochs = job.hyperparameters.n_epochs
    return epochs if isinstance(epochs, int) else None


async def _refresh_metrics(client: AsyncClient, board: JobBoard, interval: float) -> None:
    """Read each running job's newest metrics event, every ``interval`` seconds."""
    while True:
        for job_id, row in list(board.rows.items()):
            if row.job is None or str(row.job.status) != "running":
                continue
            async for page in client.fine_tuning.jobs.list_events(job_id, limit=20).pages():
                for event in page.data:
                    data = event.data if isinstance(event.data, dict) else {}
                    if "step" in data:
                        row.step = int(data["step"])
                        row.total_steps = data.get("total_steps") or row.total_steps
                        row.train_loss = data.get("train_loss", row.train_loss)
                        break
                break  # the newest page is enough
        await asyncio.sleep(interval)


async def follow_jobs(
    client: AsyncClient,
    job_ids: list[str],
    out: Output,
    *,
    poll_interval: float,
    max_concurrency: int = 32,
    timeout: float | None = None,
) -> dict[str, FineTuningJob]:
    """Watch jobs to the end, showing them live; return each job as last seen.

    Raises:
        APIStatusError: A permanent error (400, 401, 403, 404, 422) for any job, at once.
        WaitTimeoutError: ``timeout`` passed first; the message names the jobs still moving.
    """
    board = JobBoard(job_ids)
    final: dict[str, FineTuningJob] = {}
    watch = client.fine_tuning.jobs.watch(
        job_ids, poll_interval=poll_interval, max_concurrency=max_concurrency, timeout=timeout
    )
    live_view = out.is_terminal and not out.json and Live is not None and out.console is not None
    refresher = (
        asyncio.create_task(_refresh_metrics(client, board, poll_interval)) if live_view else None
    )
    try:
        # Closed explicitly: leaving the loop on an error must close the generator now, on this
        # task, before the watch itself is closed (left to the garbage collector, its close would
        # race the watch's own).
        async with aclosing(aiter(watch)) as updates:
            if live_view:
                with Live(board, console=out.console, refresh_per_second=8) as live:
                    async for update in updates:
                        job_id = _job_id(update, job_ids, board)
                        board.update(update, job_id)
                        if update.job is not None:
                            final[job_id] = update.job
                        live.refresh()
                        _raise_if_permanent(update)  # after drawing it in the job's row
                    live.refresh()
            else:
                async for update in updates:
                    _raise_if_permanent(update)
                    job_id = _job_id(update, job_ids, board)
                    if update.job is not None:
                        final[job_id] = update.job
                    if out.json:
                        out.emit(update)
                    else:
                        out.message(_change_line(update, job_id))
    except WaitTimeoutError as exc:
        raise _timed_out(exc, job_ids, final, timeout) from None
    finally:
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        await watch.aclose()
    return final


def _raise_if_permanent(update: JobUpdate) -> None:
    """Raise the update's error if asking again cannot help (the SDK's ``wait`` does the same)."""
    if isinstance(update.error, APIStatusError) and update.error.status_code in _PERMANENT:
        raise update.error


def _change_line(update: JobUpdate, job_id: str) -> str:
    """``ftjob-abc: running -> failed (invalid_training_file: ...)``, for a pipe without --json."""
    if update.error is not None:
        status, detail = "error", f" ({update.error})"
    else:
        status = str(update.job.status) if update.job is not None else "?"
        reason = job_failure(update.job)
        detail = f" ({reason})" if reason else ""
    return f"{job_id}: {update.previous_status or '-'} -> {status}{detail}"


def _timed_out(
    exc: WaitTimeoutError,
    job_ids: list[str],
    final: dict[str, FineTuningJob],
    timeout: float | None,
) -> WaitTimeoutError:
    """The timeout in the user's words: the flag, and each job still moving with its status."""
    moving = [
        f"{job_id} ({final[job_id].status})" if job_id in final else f"{job_id} (never seen)"
        for job_id in job_ids
        if job_id not in final or not is_terminal(str(final[job_id].status))
    ]
    seconds = f"{timeout:g}" if timeout is not None else "?"
    msg = f"gave up after --timeout {seconds} s; not final yet: {', '.join(moving)}"
    return WaitTimeoutError(msg, last=exc.last)


def _job_id(update: JobUpdate, job_ids: list[str], board: JobBoard) -> str:
    if update.job is not None:
        return update.job.id
    # An error before the job was ever seen: name the first job still unknown.
    unknown = [job_id for job_id in job_ids if board.rows[job_id].job is None]
    return unknown[0] if unknown else job_ids[0]


class ProgressReader(io.RawIOBase):
    """A binary file that reports how much has been read (for the upload progress bar)."""

    def __init__(self, path: Path, on_read: Callable[[int], object]) -> None:
        """Open ``path`` for reading."""
        super().__init__()
        self._handle = path.open("rb")
        self._on_read = on_read
        self.name = str(path)

    def readable(self) -> bool:
        """Always."""
        return True

    def seekable(self) -> bool:
        """Always (a retry starts over)."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move, and report the new position."""
        position = self._handle.seek(offset, whence)
        self._on_read(position)
        return position

    def tell(self) -> int:
        """The position."""
        return self._handle.tell()

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` and report the position."""
        count = self._handle.readinto(buffer)
        self._on_read(self._handle.tell())
        return count

    def close(self) -> None:
        """Close the file."""
        self._handle.close()
        super().close()


def transfer_progress(
    out: Output, description: str, total: int | None
) -> tuple[Any, Callable[[int], None]]:
    """Return a context (a rich Progress, or a no-op) and the callback that moves it."""
    if not out.is_terminal or out.json or Live is None or out.console is None:
        return _NoProgress(), lambda _: None
    progress = Progress(
        # The name is data, printed as is; the console has markup off, so a markup string such as
        # "[progress.description]{task.description}" would be printed literally.
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=out.console,
        transient=False,
    )
    task = progress.add_task(description, total=total)
    return progress, lambda done: progress.update(task, completed=done)


class _NoProgress:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        return None
