"""Records of the Files and Models APIs."""

from __future__ import annotations

import attrs

from ._enums import FilePurpose, FileStatus

__all__ = ["FileDeleted", "FileObject", "Model", "ModelDeleted"]


@attrs.frozen
class FileObject:
    """An uploaded or generated file (``file``)."""

    id: str
    bytes: int | None = None
    created_at: int | None = None
    expires_at: int | None = None
    filename: str | None = None
    purpose: FilePurpose | str | None = None
    status: FileStatus | str | None = None
    status_details: str | None = None
    object: str | None = None


@attrs.frozen
class FileDeleted:
    """The answer to deleting a file."""

    id: str
    deleted: bool = True
    object: str | None = None


@attrs.frozen
class Model:
    """A model (``model``): a base model or one a fine-tuning job created."""

    id: str
    created: int | None = None
    owned_by: str | None = None
    shutdown_date: str | None = None
    object: str | None = None


@attrs.frozen
class ModelDeleted:
    """The answer to deleting a fine-tuned model."""

    id: str
    deleted: bool = True
    object: str | None = None
