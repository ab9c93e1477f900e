"""A fine-tuning job's life cycle, computed from the clock when someone looks at the job.

The job walks a fixed schedule of milestones measured in *active* seconds (time not spent
paused): files validated, training started, one milestone per step, succeeded. ``sync(now)``
applies every milestone that is due, emitting the events and checkpoints a real job would, with
the timestamps they would have had. Pausing freezes the active time; resuming shifts the rest of
the schedule by the pause. No task runs per job, so ten thousand idle jobs cost only memory.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..data import validate_training_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..data import TrainingFileReport
    from ._files import FileStore, StoredFile
    from ._ids import IdFactory

__all__ = ["IllegalTransitionError", "JobSim", "Timing"]

TERMINAL: Final = frozenset({"succeeded", "failed", "cancelled"})
#: What the emulated service picks for a hyperparameter left "auto" (beyond epochs and batch).
_AUTO_PICKS: Final = {
    "learning_rate_multiplier": 1.8,
    "beta": 0.1,
    "compute_multiplier": 1.0,
    "eval_interval": 1,
    "eval_samples": 1,
}


@attrs.frozen
class Timing:
    """Durations of the phases of jobs and batches, in virtual seconds (realistic at ``speed=1``).

    Attributes:
        validate: A job's ``validating_files``.
        queue: A job's ``queued``.
        step: One training step.
        finalize: From the last step to ``succeeded``.
        max_steps: The most steps a job takes, whatever its file size.
        batch_validate: A batch's ``validating``.
        batch_request: One request of a batch, in ``in_progress``.
        batch_finalize: A batch's ``finalizing``.
        batch_cancel: From ``cancelling`` to ``cancelled``.
    """

    validate: float = 30.0
    queue: float = 60.0
    step: float = 2.0
    finalize: float = 20.0
    max_steps: int = 2000
    batch_validate: float = 10.0
    batch_request: float = 0.5
    batch_finalize: float = 10.0
    batch_cancel: float = 5.0


class IllegalTransitionError(Exception):
    """A cancel, pause or resume that the job's status does not allow."""


class JobSim:
    """One emulated fine-tuning job and its events and checkpoints."""

    def __init__(
        self,
        *,
        job_id: str,
        body: dict[str, Any],
        created_at: float,
        organization: str,
        seed: int,
        training: StoredFile,
        ids: IdFactory,
        files: FileStore,
        timing: Timing,
        on_model: Callable[[str, int], None],
        on_terminal: Callable[[str, str, float], None] | None = None,
    ) -> None:
        """Create the job in ``validating_files`` from a checked create body.

        ``on_terminal(event_type, job_id, when)`` is called once, when the job ends (the
        webhook sender listens).
        """
        self.id = job_id
        self.body = body
        self.created_at = created_at
        self.organization = organization
        self.seed = seed
        self._training = training
        self._ids = ids
        self._files = files
        self._timing = timing
        self._on_model = on_model
        self._on_terminal = on_terminal
        self.metadata: dict[str, str] | None = body.get("metadata")
        self.status = "validating_files"
        self.finished_at: int | None = None
        self.error: dict[str, Any] | None = None
        self.fine_tuned_model: str | None = None
        self.trained_tokens: int | None = None
        self.result_files: list[str] = []
        # Newest last; the list endpoints reverse them.
        self.events: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self._metrics_rows: list[tuple[int, float, float]] = []
        self._paused_total = 0.0
        self._paused_since: float | None = None
        self._milestone = 0
        self._steps = 0
        self._steps_per_epoch = 1
        self._tokens_per_epoch = 0
        # The training file's verdict, worked out ahead of time (off the event loop) by
        # run_validation, or None to work it out when the job gets there.
        self._report: TrainingFileReport | OSError | None = None
        self.hyperparameters = self._declared_hyperparameters()
        self._event(created_at, "Created fine-tuning job")
        self._event(created_at, f"Validating training file: {training.id}")

    # --- schedule ------------------------------------------------------------------------------

    @property
    def method_type(self) -> str:
        """The fine-tuning method: ``supervised`` unless the create body said otherwise."""
        method = self.body.get("method")
        return str(method["type"]) if isinstance(method, dict) else "supervised"

    def _declared_hyperparameters(self) -> dict[str, Any]:
        method = self.body.get("method")
        declared: dict[str, Any] = {}
        if isinstance(method, dict):
            part = method.get(self.method_type) or {}
            declared = dict(part.get("hyperparameters") or {})
        declared.update(self.body.get("hyperparameters") or {})
        return {
            "batch_size": declared.get("batch_size", "auto"),
            "learning_rate_multiplier": declared.get("learning_rate_multiplier", "auto"),
            "n_epochs": declared.get("n_epochs", "auto"),
            **{
                k: v
                for k, v in declared.items()
                if k not in {"batch_size", "learning_rate_multiplier", "n_epochs"}
            },
        }

    def _offset(self, milestone: int) -> float:
        """Active seconds from creation to ``milestone``.

        Milestone 0 is "files validated", 1 "training started", 2 to steps + 1 the steps, and
        steps + 2 "succeeded".
        """
        timing = self._timing
        if milestone == 0:
            return timing.validate
        if milestone == 1:
            return timing.validate + timing.queue
        steps_done = min(milestone - 1, self._steps)
        offset = timing.validate + timing.queue + steps_done * timing.step
        if milestone - 1 > self._steps:
            offset += timing.finalize
        return offset

    def next_due(self) -> float | None:
        """When ``sync`` next moves the job toward its end: None once it ended, or while paused.

        That is the validation until the file is validated (it may fail the job), then the end.
        """
        if self.status in TERMINAL or self._paused_since is not None:
            return None
        milestone = 0 if self._milestone == 0 else self._last_milestone
        return self.created_at + self._paused_total + self._offset(milestone)

    def _ended(self, when: float) -> None:
        if self._on_terminal is not None:
            self._on_terminal(f"fine_tuning.job.{self.status}", self.id, when)

    @property
    def _last_milestone(self) -> int:
        return self._steps + 2

    def sync(self, now: float) -> None:
        """Apply every milestone due by virtual time ``now``."""
        if self.status in TERMINAL or self._paused_since is not None:
            return
        active = now - self.created_at - self._paused_total
        while self._milestone <= self._last_milestone and self._offset(self._milestone) <= active:
            when = self.created_at + self._paused_total + self._offset(self._milestone)
            self._apply(self._milestone, when)
            self._milestone += 1
            if self.status in TERMINAL:
                return

    def _apply(self, milestone: int, when: float) -> None:
        if milestone == 0:
            self._validated(when)
        elif milestone == 1:
            self.status = "running"
            self._event(when, "Fine-tuning job started")
        elif milestone <= self._steps + 1:
            self._step(milestone - 1, when)
        else:
            self._succeed(when)

    def validation_due(self, now: float) -> bool:
        """Whether ``sync(now)`` would validate the training file, and nobody has yet."""
        return (
            self._milestone == 0
            and self._report is None
            and self.status not in TERMINAL
            and self._paused_since is None
            and self._offset(0) <= now - self.created_at - self._paused_total
        )

    def run_validation(self) -> None:
        """Validate the training file now, for ``sync`` to use: blocking, so run it on a thread.

        The result is one attribute, set once; the loop reads it only after this returned.
        """
        # The very check users run locally (finetune_async.data), so both give one verdict.
        try:
            self._report = validate_training_file(self._training.path, self.method_type)
        except OSError as exc:
            self._report = exc

    def _validated(self, when: float) -> None:
        if self._report is None:
            self.run_validation()
        report, self._report = self._report, None
        if isinstance(report, OSError):
            # The file was deleted while the job waited to validate it.
            self._fail(
                when,
                code="invalid_training_file",
                message=f"The job failed: training file {self._training.id} no longer exists.",
                param="training_file",
            )
            return
        assert report is not None  # noqa: S101 - set by run_validation
        if not report.ok:
            self._fail(
                when,
                code="invalid_training_file",
                message=f"The job failed due to an invalid training file. {_first_error(report)}",
                param="training_file",
            )
            return
        examples = report.summary.examples
        hyper = self.hyperparameters
        if hyper["n_epochs"] == "auto":
            hyper["n_epochs"] = 3
        if hyper["batch_size"] == "auto":
            hyper["batch_size"] = max(1, min(8, examples // 50))
        # Every "auto" becomes the number the service picked, as the real API reports it.
        for name, picked in _AUTO_PICKS.items():
            if hyper.get(name) == "auto":
                hyper[name] = picked
        self._steps_per_epoch = max(1, math.ceil(examples / int(hyper["batch_size"])))
        self._steps = min(self._timing.max_steps, self._steps_per_epoch * int(hyper["n_epochs"]))
        self._tokens_per_epoch = max(report.summary.estimated_tokens, examples)
        self.status = "queued"
        self._event(when, "Files validated, moving job to queued state")

    def _losses(self, step: int) -> tuple[float, float]:
        """Deterministic, decreasing train loss and rising accuracy for ``step``."""
        progress = step / max(1, self._steps)
        wobble = math.sin(step * 1.7 + self.seed % 97) * 0.03
        loss = round(0.15 + 2.2 * math.exp(-3.5 * progress) + wobble, 4)
        accuracy = round(min(0.99, max(0.0, 1.0 - loss / 2.6)), 4)
        return loss, accuracy

    def _step(self, step: int, when: float) -> None:
        loss, accuracy = self._losses(step)
        self._metrics_rows.append((step, loss, accuracy))
        self._event(
            when,
            f"Step {step}/{self._steps}: training loss={loss:.2f}",
            kind="metrics",
            data={
                "step": step,
                "train_loss": loss,
                "total_steps": self._steps,
                "train_mean_token_accuracy": accuracy,
            },
        )
        if step % self._steps_per_epoch == 0 or step == self._steps:
            self._checkpoint(step, loss, accuracy, when)

    def _model_name(self) -> str:
        suffix = self.body.get("suffix") or ""
        return (
            f"ft:{self.body['model']}:{self.organization}:{suffix}:{self.id.rsplit('-', 1)[-1][:8]}"
        )

    def _checkpoint(self, step: int, loss: float, accuracy: float, when: float) -> None:
        self.checkpoints.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": self._ids.new("ftckpt", "_"),
                "created_at": int(when),
                "fine_tuned_model_checkpoint": f"{self._model_name()}:ckpt-step-{step}",
                "fine_tuning_job_id": self.id,
                "metrics": {
                    "step": step,
                    "train_loss": loss,
                    "train_mean_token_accuracy": accuracy,
                    "valid_loss": round(loss * 1.08, 4),
                    "valid_mean_token_accuracy": round(accuracy * 0.97, 4),
                    "full_valid_loss": round(loss * 1.05, 4),
                    "full_valid_mean_token_accuracy": round(accuracy * 0.98, 4),
                },
                "step_number": step,
            }
        )
        self._event(when, f"Checkpoint created at step {step}")

    def _succeed(self, when: float) -> None:
        created = int(when)
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        rows.extend(
            f"{step},{loss},{acc},{round(loss * 1.08, 4)},{round(acc * 0.97, 4)}"
            for step, loss, acc in self._metrics_rows
        )
        result = self._files.add_bytes(
            file_id=self._ids.new("file"),
            filename="step_metrics.csv",
            purpose="fine-tune-results",
            data=("\n".join(rows) + "\n").encode(),
            created_at=created,
        )
        self.result_files = [result.id]
        self.fine_tuned_model = self._model_name()
        self.trained_tokens = self._tokens_per_epoch * int(self.hyperparameters["n_epochs"])
        self.status = "succeeded"
        self.finished_at = created
        self._on_model(self.fine_tuned_model, created)
        self._event(when, f"New fine-tuned model created: {self.fine_tuned_model}")
        self._event(when, "The job has successfully completed")
        self._ended(when)

    def _fail(self, when: float, *, code: str, message: str, param: str | None) -> None:
        self.status = "failed"
        self.finished_at = int(when)
        self.error = {"code": code, "message": message, "param": param}
        self._event(when, message, level="error")
        self._ended(when)

    # --- transitions a user asks for -------------------------------------------------------------

    def cancel(self, now: float) -> None:
        """Cancel the job unless it already ended."""
        self.sync(now)
        if self.status in TERMINAL:
            msg = (
                f"Job {self.id} has already {self.status}; only an unfinished job can be cancelled."
            )
            raise IllegalTransitionError(msg)
        self.status = "cancelled"
        self.finished_at = int(now)
        self._paused_since = None
        self._event(now, "Fine-tuning job cancelled")
        self._ended(now)

    def pause(self, now: float) -> None:
        """Pause a running job; its clock stops."""
        self.sync(now)
        if self.status != "running":
            msg = f"Job {self.id} is {self.status}; only a running job can be paused."
            raise IllegalTransitionError(msg)
        self.status = "paused"
        self._paused_since = now
        self._event(now, "Fine-tuning job paused")

    def resume(self, now: float) -> None:
        """Resume a paused job; the rest of its schedule moves by the length of the pause."""
        if self.status != "paused" or self._paused_since is None:
            self.sync(now)
            msg = f"Job {self.id} is {self.status}; only a paused job can be resumed."
            raise IllegalTransitionError(msg)
        self._paused_total += now - self._paused_since
        self._paused_since = None
        self.status = "running"
        self._event(now, "Fine-tuning job resumed")

    # --- wire shapes ---------------------------------------------------------------------------

    def _event(
        self,
        when: float,
        message: str,
        *,
        level: str = "info",
        kind: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": self._ids.new("ftevent"),
                "created_at": int(when),
                "level": level,
                "message": message,
                "data": data if data is not None else {},
                "type": kind,
            }
        )

    def estimated_finish(self) -> int | None:
        """When a running job will be done, if nothing pauses it."""
        if self.status not in {"queued", "running"}:
            return None
        return int(self.created_at + self._paused_total + self._offset(self._last_milestone))

    def to_json(self) -> dict[str, Any]:
        """Return the ``fine_tuning.job`` object."""
        body = self.body
        method = body.get("method") or {"type": "supervised", "supervised": {}}
        method = {
            **method,
            self.method_type: {
                **(method.get(self.method_type) or {}),
                "hyperparameters": self.hyperparameters,
            },
        }
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": body["model"],
            "created_at": int(self.created_at),
            "finished_at": self.finished_at,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": self.organization,
            "result_files": list(self.result_files),
            "status": self.status,
            "validation_file": body.get("validation_file"),
            "training_file": body["training_file"],
            "hyperparameters": {
                k: self.hyperparameters[k]
                for k in ("batch_size", "learning_rate_multiplier", "n_epochs")
            },
            "trained_tokens": self.trained_tokens,
            "error": self.error,
            "integrations": body.get("integrations"),
            "seed": self.seed,
            "estimated_finish": self.estimated_finish(),
            "method": method,
            "metadata": self.metadata,
        }


def _first_error(report: TrainingFileReport) -> str:
    """The first error as ``line N: message``, and how many more there are."""
    first = report.errors[0]
    text = first.message if first.line is None else f"line {first.line}: {first.message}"
    more = report.summary.error_count - 1
    if more:
        text += f" (and {more:,} more problem{'' if more == 1 else 's'})"
    return text
