"""Live displays for ``jobs wait`` / ``jobs watch`` and for uploads and downloads.

On a terminal with ``rich``, a table redrawn in place: each job's status, step and epoch, and
latest train loss (read from its newest metrics event). Otherwise one line per change.
"""

from __future__ import annotations

import asyncio
import io
import math
from typing import TYPE_CHECKING, Any, Self

import attrs

from ..types import FineTuningJob, JobUpdate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from .._client import AsyncClient
    from ._output import Output

__all__ = ["JobBoard", "ProgressReader", "follow_jobs", "transfer_progress"]

try:  # the optional UI library
    from rich.live import Live
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
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
            status = "…" if row.job is None else str(row.job.status)
            loss = "" if row.train_loss is None else f"{row.train_loss:.4f}"
            tail = row.error or (row.job.fine_tuned_model if row.job is not None else None) or ""
            table.add_row(job_id, status, self.progress_text(row), loss, tail)
        return table


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
    """Watch jobs to the end, showing them live; return each job as last seen."""
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
        if live_view:
            with Live(board, console=out.console, refresh_per_second=8) as live:
                async for update in watch:
                    job_id = _job_id(update, job_ids, board)
                    board.update(update, job_id)
                    if update.job is not None:
                        final[job_id] = update.job
                    live.refresh()
                live.refresh()
        else:
            async for update in watch:
                job_id = _job_id(update, job_ids, board)
                if update.job is not None:
                    final[job_id] = update.job
                if out.json:
                    out.emit(update)
                else:
                    status = (
                        "error" if update.error else str(update.job.status if update.job else "?")
                    )
                    detail = f" ({update.error})" if update.error else ""
                    out.message(f"{job_id}: {update.previous_status or '-'} -> {status}{detail}")
    finally:
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        await watch.aclose()
    return final


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
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=out.console,
        transient=False,
    )
    task = progress.add_task(escape(description), total=total)
    return progress, lambda done: progress.update(task, completed=done)


class _NoProgress:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        return None
