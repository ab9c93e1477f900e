"""The fine-tuning API: jobs, their events and checkpoints, and checkpoint permissions."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._pagination import AsyncPager, Pager, Runner, iterate_blocking
from .._polling import JobWatch, Watcher, check_poll_settings, is_terminal, stream_events, wait_for
from .._sansio import path_segment
from .._validation import (
    check_id,
    check_one_of,
    fine_tuning_job_body,
    metadata_query,
)
from ..data._metrics import parse_step_metrics
from ..errors import APIResponseValidationError, FinetuneError, InvalidParameterError
from ..types import (
    CheckpointPermission,
    CheckpointPermissionDeleted,
    FileObject,
    FineTuningIntegration,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    Hyperparameters,
    JobUpdate,
    Method,
    Page,
    StepMetrics,
)
from ._file_paths import ANY_CONTENT, file_path
from ._requester import Requester, paginate

if TYPE_CHECKING:
    import builtins

__all__ = [
    "AsyncCheckpointPermissions",
    "AsyncCheckpoints",
    "AsyncFineTuning",
    "AsyncJobCheckpoints",
    "AsyncJobs",
    "JobWatchIterator",
]

_PERMISSION_ORDERS = ("ascending", "descending")

T = TypeVar("T")


def _child(namespace: Callable[[Requester], T]) -> T:
    """A nested namespace (``jobs.checkpoints``...) built from its parent's requester."""
    built: T = attrs.field(
        init=False, default=attrs.Factory(lambda self: namespace(self._requester), takes_self=True)
    )
    return built


def _twin(namespace: Callable[[Any, Runner], T], attribute: str) -> T:
    """A nested blocking namespace, wrapping the async parent's namespace of that name."""
    built: T = attrs.field(
        init=False,
        default=attrs.Factory(
            lambda self: namespace(getattr(self._async_api, attribute), self._runner),
            takes_self=True,
        ),
    )
    return built


def _job_path(job_id: str, suffix: str = "") -> str:
    return f"/fine_tuning/jobs/{path_segment(check_id(job_id, 'job_id'))}{suffix}"


def _job_status(job: FineTuningJob) -> str:
    return job.status


def _permissions_path(checkpoint: str) -> str:
    checked = check_id(checkpoint, "fine_tuned_model_checkpoint")
    return f"/fine_tuning/checkpoints/{path_segment(checked)}/permissions"


@attrs.frozen
class AsyncJobCheckpoints:
    """``fine_tuning.jobs.checkpoints``: the checkpoints of a job."""

    _requester: Requester

    def list(
        self, job_id: str, *, limit: int | None = None, after: str | None = None
    ) -> AsyncPager[FineTuningJobCheckpoint]:
        """Iterate over a job's checkpoints, newest first, fetching pages lazily.

        Args:
            job_id: The job's id.
            limit: Page size (the server's default is 10).
            after: Start after this checkpoint id.

        Raises:
            InvalidParameterError: An empty id or a non-positive limit (nothing is sent).
        """
        path = _job_path(job_id, "/checkpoints")
        return paginate(
            self._requester, path, Page[FineTuningJobCheckpoint], limit=limit, after=after
        )


@attrs.frozen
class AsyncJobs:
    """``fine_tuning.jobs``: create, follow and control fine-tuning jobs."""

    _requester: Requester
    checkpoints: AsyncJobCheckpoints = _child(AsyncJobCheckpoints)

    async def create(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        method: Method | Mapping[str, Any] | None = None,
        hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        integrations: Sequence[FineTuningIntegration | Mapping[str, Any]] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> FineTuningJob:
        """Create a fine-tuning job.

        The request carries an ``Idempotency-Key``. If it fails in a way that leaves the outcome
        unknown (a 5xx, a dropped connection after sending), it is not sent again: the error has
        ``outcome_unknown`` set, and the job may exist. Look for it (by ``metadata``) before
        creating another.

        Args:
            model: The base model, e.g. ``"gpt-4o-mini-2024-07-18"``.
            training_file: The id of an uploaded file with purpose ``fine-tune``.
            validation_file: The id of an uploaded validation file.
            method: ``Method`` record or dict: supervised, dpo or reinforcement, with
                hyperparameters (``"auto"`` or numbers).
            hyperparameters: Deprecated job-level hyperparameters (use ``method``).
            suffix: Up to 64 characters added to the fine-tuned model's name.
            seed: Seed for reproducibility, 0 to 2147483647.
            integrations: At most 5 integrations (``wandb``).
            metadata: Up to 16 string pairs (keys up to 64, values up to 512 characters).

        Raises:
            InvalidParameterError: A parameter breaks the API's rules (nothing is sent).
        """
        body = fine_tuning_job_body(
            model=model,
            training_file=training_file,
            validation_file=validation_file,
            method=method,
            hyperparameters=hyperparameters,
            suffix=suffix,
            seed=seed,
            integrations=integrations,
            metadata=metadata,
        )
        return await self._requester.request("POST", "/fine_tuning/jobs", FineTuningJob, body=body)

    async def retrieve(self, job_id: str) -> FineTuningJob:
        """Return a job's current state."""
        return await self._requester.request("GET", _job_path(job_id), FineTuningJob)

    def list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> AsyncPager[FineTuningJob]:
        """Iterate over the organisation's jobs, newest first, fetching pages lazily.

        Args:
            limit: Page size (the server's default is 20).
            after: Start after this job id.
            metadata: None (the default): every job. A dict of pairs: only the jobs whose
                metadata has all of them (sent as ``metadata[k]=v``). An empty dict ``{}``:
                only the jobs without metadata (sent as ``metadata=null``, the spec's spelling).
                ``{}`` rather than None, because None must keep meaning "no filter" for code
                that never names the argument; and rather than a new constant, because "jobs
                whose metadata is empty" is what ``{}`` already reads as. Build a filter dict
                with care: one that ends up empty selects the jobs without metadata.

        Raises:
            InvalidParameterError: A non-positive limit or bad metadata (nothing is sent).
        """
        # Checked before the empty-dict case, so that a non-mapping fails here, not later.
        filters = metadata_query(metadata)
        if metadata is not None and not filters:
            filters = [("metadata", "null")]
        return paginate(
            self._requester,
            "/fine_tuning/jobs",
            Page[FineTuningJob],
            limit=limit,
            after=after,
            query=filters,
        )

    def list_events(
        self, job_id: str, *, limit: int | None = None, after: str | None = None
    ) -> AsyncPager[FineTuningJobEvent]:
        """Iterate over a job's events, newest first as the server sends them.

        Args:
            job_id: The job's id.
            limit: Page size (the server's default is 20).
            after: Start after this event id.

        Raises:
            InvalidParameterError: An empty id or a non-positive limit (nothing is sent).
        """
        path = _job_path(job_id, "/events")
        return paginate(self._requester, path, Page[FineTuningJobEvent], limit=limit, after=after)

    async def wait(
        self, job_id: str, *, poll_interval: float = 10.0, timeout: float | None = None
    ) -> FineTuningJob:
        """Poll a job until it is terminal and return it.

        Terminal: ``succeeded``, ``failed``, ``cancelled`` and the providers' ``completed``,
        ``error``, ``user_error``, ``expired`` (any case); ``paused`` and the like keep it going.
        Transient failures are retried with back-off, a 429 is waited out; a permanent error (an
        unknown job) is raised at once.

        Args:
            job_id: The job's id.
            poll_interval: Seconds between polls (sooner while the job is young, with jitter).
            timeout: Seconds to wait in all; None waits for as long as it takes.

        Raises:
            WaitTimeoutError: Not terminal in time; ``last`` holds the job as last seen.
        """
        path = _job_path(job_id)
        watcher = Watcher(
            self._requester,
            [job_id],
            path_of=lambda _: path,
            into=FineTuningJob,
            status_of=_job_status,
            is_done=is_terminal,
            poll_interval=poll_interval,
            max_concurrency=1,
            timeout=timeout,
        )
        return await wait_for(watcher, job_id)

    def watch(
        self,
        job_ids: Iterable[str],
        *,
        poll_interval: float = 10.0,
        max_concurrency: int = 32,
        timeout: float | None = None,
    ) -> JobWatch:
        """Watch many jobs: an async iterator of ``JobUpdate``, one per observed status change.

        Polls run with at most ``max_concurrency`` in flight, each job on its own schedule
        (``poll_interval`` with jitter, sooner while young, or the server's
        ``openai-poll-after-ms``). A 429 or ``Retry-After`` pauses the whole watch for the time
        asked. A job whose polls keep failing is reported with ``error`` set and stays watched;
        none is dropped. The iterator ends when every job is terminal; ``add`` more while it runs.

        Raises:
            InvalidParameterError: An empty id, or a bad interval, concurrency or timeout.
            WaitTimeoutError: From the iteration, when ``timeout`` runs out first.
        """
        watcher = Watcher(
            self._requester,
            job_ids,
            path_of=_job_path,
            into=FineTuningJob,
            status_of=_job_status,
            is_done=is_terminal,
            poll_interval=poll_interval,
            max_concurrency=max_concurrency,
            timeout=timeout,
        )
        return JobWatch(watcher)

    def stream_events(
        self, job_id: str, *, poll_interval: float = 10.0
    ) -> AsyncGenerator[FineTuningJobEvent]:
        """Yield a job's events oldest first, each once, as they appear, until it is terminal.

        Raises:
            InvalidParameterError: An empty id or a bad interval (at the call, nothing sent).
        """
        check_poll_settings(poll_interval, None)
        return stream_events(self._requester, _job_path(job_id), poll_interval=poll_interval)

    async def cancel(self, job_id: str) -> FineTuningJob:
        """Cancel a job; not retried when its outcome is unknown (see ``create``)."""
        return await self._requester.request("POST", _job_path(job_id, "/cancel"), FineTuningJob)

    async def pause(self, job_id: str) -> FineTuningJob:
        """Pause a running job; not retried when its outcome is unknown (see ``create``)."""
        return await self._requester.request("POST", _job_path(job_id, "/pause"), FineTuningJob)

    async def resume(self, job_id: str) -> FineTuningJob:
        """Resume a paused job; not retried when its outcome is unknown (see ``create``)."""
        return await self._requester.request("POST", _job_path(job_id, "/resume"), FineTuningJob)

    async def metrics(self, job_id: str) -> builtins.list[StepMetrics]:
        """Return a finished job's training metrics, one row per step, from its result file.

        The job's result file (``step_metrics.csv``; with several result files, the CSV one) is
        read and parsed with ``finetune_async.data.parse_step_metrics``: metrics the file does
        not report are None. While a job runs, its metrics arrive as ``metrics`` events instead
        (``list_events``); the file is written when it succeeds.

        Raises:
            InvalidParameterError: An empty id (nothing is sent).
            FinetuneError: The job has no result file (yet): the message gives its status.
            APIResponseValidationError: The result file is not a step-metrics CSV.
        """
        job = await self.retrieve(job_id)
        file_id = await self._metrics_file(job)
        path = file_path(file_id, "/content")
        content = await self._requester.request("GET", path, bytes, headers=ANY_CONTENT)
        try:
            return parse_step_metrics(content)
        except InvalidParameterError as exc:
            raise APIResponseValidationError(
                f"the result file {file_id} of job {job.id} is not a step-metrics CSV: {exc}",
                status_code=200,
                body=content[:200].decode("utf-8", errors="replace"),
                method="GET",
                url=path,
            ) from exc

    async def _metrics_file(self, job: FineTuningJob) -> str:
        if not job.result_files:
            msg = (
                f"job {job.id} has no result file: it is {job.status}, and the metrics file is"
                " written when a job succeeds (wait for it with fine_tuning.jobs.wait)"
            )
            raise FinetuneError(msg)
        if len(job.result_files) == 1:
            return job.result_files[0]
        for file_id in job.result_files:
            file = await self._requester.request("GET", file_path(file_id), FileObject)
            if (file.filename or "").lower().endswith(".csv"):
                return file_id
        return job.result_files[0]


@attrs.frozen
class AsyncCheckpointPermissions:
    """``fine_tuning.checkpoints.permissions``: share a checkpoint with projects (admin key)."""

    _requester: Requester

    async def create(
        self, fine_tuned_model_checkpoint: str, *, project_ids: Sequence[str]
    ) -> Page[CheckpointPermission]:
        """Grant projects access to a checkpoint; returns the permissions created.

        Raises:
            InvalidParameterError: An empty checkpoint id, or ``project_ids`` empty or holding a
                non-string or empty id (nothing is sent).
        """
        path = _permissions_path(fine_tuned_model_checkpoint)
        ids_given: object = project_ids
        if isinstance(ids_given, str) or not isinstance(ids_given, Sequence) or not ids_given:
            raise InvalidParameterError(
                "project_ids: must be a non-empty list of project ids", param="project_ids"
            )
        ids = [check_id(pid, f"project_ids[{i}]") for i, pid in enumerate(project_ids)]
        return await self._requester.request(
            "POST", path, Page[CheckpointPermission], body={"project_ids": ids}
        )

    def list(
        self,
        fine_tuned_model_checkpoint: str,
        *,
        project_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        order: str | None = None,
    ) -> AsyncPager[CheckpointPermission]:
        """Iterate over a checkpoint's permissions, fetching pages lazily.

        Args:
            fine_tuned_model_checkpoint: The checkpoint's model name.
            project_id: Only this project's permission.
            after: Start after this permission id.
            limit: Page size (the server's default is 10).
            order: ``"ascending"`` or ``"descending"`` (the default).

        Raises:
            InvalidParameterError: Bad ids, limit or order (nothing is sent).
        """
        path = _permissions_path(fine_tuned_model_checkpoint)
        project = None if project_id is None else check_id(project_id, "project_id")
        sort = check_one_of(order, "order", _PERMISSION_ORDERS)
        filters = (("project_id", project), ("order", sort))
        return paginate(
            self._requester,
            path,
            Page[CheckpointPermission],
            limit=limit,
            after=after,
            query=filters,
        )

    async def delete(
        self, permission_id: str, *, fine_tuned_model_checkpoint: str
    ) -> CheckpointPermissionDeleted:
        """Revoke a permission."""
        checked = check_id(permission_id, "permission_id")
        path = f"{_permissions_path(fine_tuned_model_checkpoint)}/{path_segment(checked)}"
        return await self._requester.request(
            "DELETE",
            path,
            CheckpointPermissionDeleted,
            empty=CheckpointPermissionDeleted(id=checked, deleted=True),
        )


@attrs.frozen
class AsyncCheckpoints:
    """``fine_tuning.checkpoints``."""

    _requester: Requester
    permissions: AsyncCheckpointPermissions = _child(AsyncCheckpointPermissions)


@attrs.frozen
class AsyncFineTuning:
    """``client.fine_tuning``: jobs and checkpoints."""

    _requester: Requester
    jobs: AsyncJobs = _child(AsyncJobs)
    checkpoints: AsyncCheckpoints = _child(AsyncCheckpoints)


# --- blocking twins: one line each, through the sync client's portal ----------------------------


@attrs.frozen
class JobCheckpoints:
    """Blocking twin of ``AsyncJobCheckpoints``."""

    _async_api: AsyncJobCheckpoints
    _runner: Runner

    def list(
        self, job_id: str, *, limit: int | None = None, after: str | None = None
    ) -> Pager[FineTuningJobCheckpoint]:
        """Blocking twin of ``AsyncJobCheckpoints.list``: a lazy iterator over checkpoints."""
        return Pager(self._runner, self._async_api.list(job_id, limit=limit, after=after))


@attrs.frozen
class Jobs:
    """Blocking twin of ``AsyncJobs``."""

    _async_api: AsyncJobs
    _runner: Runner
    checkpoints: JobCheckpoints = _twin(JobCheckpoints, "checkpoints")

    def create(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        method: Method | Mapping[str, Any] | None = None,
        hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        integrations: Sequence[FineTuningIntegration | Mapping[str, Any]] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> FineTuningJob:
        """Blocking twin of ``AsyncJobs.create``."""
        return self._runner.call(
            partial(
                self._async_api.create,
                model=model,
                training_file=training_file,
                validation_file=validation_file,
                method=method,
                hyperparameters=hyperparameters,
                suffix=suffix,
                seed=seed,
                integrations=integrations,
                metadata=metadata,
            )
        )

    def retrieve(self, job_id: str) -> FineTuningJob:
        """Blocking twin of ``AsyncJobs.retrieve``."""
        return self._runner.call(partial(self._async_api.retrieve, job_id))

    def list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Pager[FineTuningJob]:
        """Blocking twin of ``AsyncJobs.list``: a lazy iterator over jobs.

        ``metadata=None`` lists every job, ``metadata={}`` only the jobs without metadata.
        """
        return Pager(
            self._runner, self._async_api.list(limit=limit, after=after, metadata=metadata)
        )

    def list_events(
        self, job_id: str, *, limit: int | None = None, after: str | None = None
    ) -> Pager[FineTuningJobEvent]:
        """Blocking twin of ``AsyncJobs.list_events``: a lazy iterator over events."""
        return Pager(self._runner, self._async_api.list_events(job_id, limit=limit, after=after))

    def wait(
        self, job_id: str, *, poll_interval: float = 10.0, timeout: float | None = None
    ) -> FineTuningJob:
        """Blocking twin of ``AsyncJobs.wait``."""
        return self._runner.call(
            partial(self._async_api.wait, job_id, poll_interval=poll_interval, timeout=timeout)
        )

    def watch(
        self,
        job_ids: Iterable[str],
        *,
        poll_interval: float = 10.0,
        max_concurrency: int = 32,
        timeout: float | None = None,
    ) -> JobWatchIterator:
        """Blocking twin of ``AsyncJobs.watch``: a plain iterator of ``JobUpdate``."""
        watch = self._async_api.watch(
            job_ids, poll_interval=poll_interval, max_concurrency=max_concurrency, timeout=timeout
        )
        return JobWatchIterator(self._runner, watch)

    def stream_events(
        self, job_id: str, *, poll_interval: float = 10.0
    ) -> Iterator[FineTuningJobEvent]:
        """Blocking twin of ``AsyncJobs.stream_events``: a plain iterator, oldest first."""
        return iterate_blocking(
            self._runner, self._async_api.stream_events(job_id, poll_interval=poll_interval)
        )

    def cancel(self, job_id: str) -> FineTuningJob:
        """Blocking twin of ``AsyncJobs.cancel``."""
        return self._runner.call(partial(self._async_api.cancel, job_id))

    def pause(self, job_id: str) -> FineTuningJob:
        """Blocking twin of ``AsyncJobs.pause``."""
        return self._runner.call(partial(self._async_api.pause, job_id))

    def resume(self, job_id: str) -> FineTuningJob:
        """Blocking twin of ``AsyncJobs.resume``."""
        return self._runner.call(partial(self._async_api.resume, job_id))

    def metrics(self, job_id: str) -> builtins.list[StepMetrics]:
        """Blocking twin of ``AsyncJobs.metrics``."""
        return self._runner.call(partial(self._async_api.metrics, job_id))


class JobWatchIterator:
    """Blocking twin of ``JobWatch``: ``for update in watch``, ``add``, ``close``."""

    def __init__(self, runner: Runner, watch: JobWatch) -> None:
        """Drive ``watch`` through ``runner``."""
        self._runner = runner
        self._watch = watch
        self._updates = iterate_blocking(runner, watch)

    def __iter__(self) -> JobWatchIterator:
        """Return the iterator itself."""
        return self

    def __next__(self) -> JobUpdate:
        """Return the next update."""
        return next(self._updates)

    def add(self, *job_ids: str) -> None:
        """Watch more jobs; safe from any thread."""

        async def add_on_loop() -> None:
            self._watch.add(*job_ids)

        self._runner.call(add_on_loop)

    def close(self) -> None:
        """Stop watching; no poll is left running."""
        self._updates.close()


@attrs.frozen
class CheckpointPermissions:
    """Blocking twin of ``AsyncCheckpointPermissions``."""

    _async_api: AsyncCheckpointPermissions
    _runner: Runner

    def create(
        self, fine_tuned_model_checkpoint: str, *, project_ids: Sequence[str]
    ) -> Page[CheckpointPermission]:
        """Blocking twin of ``AsyncCheckpointPermissions.create``."""
        return self._runner.call(
            partial(self._async_api.create, fine_tuned_model_checkpoint, project_ids=project_ids)
        )

    def list(
        self,
        fine_tuned_model_checkpoint: str,
        *,
        project_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        order: str | None = None,
    ) -> Pager[CheckpointPermission]:
        """Blocking twin of ``AsyncCheckpointPermissions.list``: a lazy iterator."""
        return Pager(
            self._runner,
            self._async_api.list(
                fine_tuned_model_checkpoint,
                project_id=project_id,
                after=after,
                limit=limit,
                order=order,
            ),
        )

    def delete(
        self, permission_id: str, *, fine_tuned_model_checkpoint: str
    ) -> CheckpointPermissionDeleted:
        """Blocking twin of ``AsyncCheckpointPermissions.delete``."""
        return self._runner.call(
            partial(
                self._async_api.delete,
                permission_id,
                fine_tuned_model_checkpoint=fine_tuned_model_checkpoint,
            )
        )


@attrs.frozen
class Checkpoints:
    """Blocking twin of ``AsyncCheckpoints``."""

    _async_api: AsyncCheckpoints
    _runner: Runner
    permissions: CheckpointPermissions = _twin(CheckpointPermissions, "permissions")


@attrs.frozen
class FineTuning:
    """Blocking twin of ``AsyncFineTuning``."""

    _async_api: AsyncFineTuning
    _runner: Runner
    jobs: Jobs = _twin(Jobs, "jobs")
    checkpoints: Checkpoints = _twin(Checkpoints, "checkpoints")
