"""The Files API: upload (streamed), list, retrieve, delete, and download (streamed to disk)."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Final, Literal, Self, TypeAlias

import attrs

from .._pagination import AsyncPager, Pager, Runner
from .._polling import Watcher, is_file_processed, wait_for
from .._sansio import Upload
from .._validation import check_expires_after, check_id, check_one_of
from ..data import (
    TRAINING_METHODS,
    TrainingFileError,
    TrainingFileReport,
    validate_training_file,
)
from ..data._training import validate_training_stream
from ..errors import APIConnectionError, FinetuneError, InvalidParameterError
from ..types import FileDeleted, FileObject, Page
from ._file_paths import ANY_CONTENT, file_path
from ._requester import Requester, paginate

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType


__all__ = ["UPLOAD_PURPOSES", "AsyncFiles", "FileInput", "Validate"]

#: The purposes an upload may name (the spec's CreateFileRequest).
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_ORDERS = ("asc", "desc")

FileInput: TypeAlias = (
    "str | os.PathLike[str] | bytes | IO[bytes] | io.RawIOBase | io.BufferedIOBase"
    " | tuple[str, bytes | IO[bytes] | io.RawIOBase | io.BufferedIOBase]"
)
"""A path, bytes, a binary file object, or ``(filename, bytes or file object)``."""

Validate: TypeAlias = "bool | Literal['supervised', 'dpo', 'reinforcement']"
"""``files.create``'s ``validate``: False, True (the supervised format), or a method's name."""

#: How many problems a refused upload's message lists (the exception's ``report`` has them all).
_LISTED_PROBLEMS: Final = 5


def _file_object_source(handle: IO[bytes], filename: str) -> Upload:
    given: object = handle
    if isinstance(given, io.TextIOBase):
        raise InvalidParameterError(
            "file: a text-mode file object was given; open the file in binary mode ('rb')",
            param="file",
        )
    start = handle.tell() if handle.seekable() else None
    sent = False

    def reopen() -> BinaryIO:
        nonlocal sent
        if sent:
            if start is None:
                # A retry needs the bytes again, and a pipe cannot give them twice.
                raise FinetuneError(
                    "cannot send a non-seekable file object twice; pass a path or a seekable file"
                )
            handle.seek(start)
        sent = True
        return handle  # type: ignore[return-value]

    return Upload(fields=(), file_field="file", filename=filename, open=reopen, owns_source=False)


def upload_source(file: object) -> Upload:
    """Return the streamed multipart source of ``file``, checked before anything is sent.

    Raises:
        InvalidParameterError: The path does not exist or is not a file, or ``file`` is of a
            kind that cannot be uploaded.
    """
    if isinstance(file, tuple) and len(file) == 2 and isinstance(file[0], str):  # noqa: PLR2004
        name, content = file
        source = upload_source(content)
        return attrs.evolve(source, filename=name)
    if isinstance(file, str | os.PathLike):
        path = Path(os.fspath(file))
        if not path.is_file():
            raise InvalidParameterError(f"file: no such file: {path}", param="file")
        return Upload(
            fields=(), file_field="file", filename=path.name, open=lambda: path.open("rb")
        )
    if isinstance(file, bytes | bytearray | memoryview):
        data = bytes(file)
        return Upload(
            fields=(), file_field="file", filename="upload", open=lambda: io.BytesIO(data)
        )
    if hasattr(file, "read"):
        name = getattr(file, "name", None)
        filename = os.path.basename(name) if isinstance(name, str) else "upload"  # noqa: PTH119
        return _file_object_source(file, filename)  # type: ignore[arg-type]
    raise InvalidParameterError(
        f"file: expected a path, bytes or a binary file object, got {type(file).__name__}",
        param="file",
    )


def _validation_method(validate: object, purpose: str) -> str | None:
    """The method ``validate`` asks to check the upload against, or None for no check."""
    if validate is False:
        return None
    method = "supervised" if validate is True else validate
    if not isinstance(method, str) or method not in TRAINING_METHODS:
        allowed = ", ".join(map(repr, TRAINING_METHODS))
        msg = f"validate: must be True, False or one of {allowed}, got {validate!r}"
        raise InvalidParameterError(msg, param="validate")
    if purpose != "fine-tune":
        msg = f"validate: only a fine-tune upload is training data, and purpose is {purpose!r}"
        raise InvalidParameterError(msg, param="validate")
    return method


def _validate_upload(file: object, name: str, method: str) -> TrainingFileReport:
    """Check what ``file`` holds (``upload_source`` accepted it), leaving a file object as found.

    A path is read from disk and bytes from memory; a file object is read from its position to
    the end, then put back there for the upload, so it must be seekable.
    """
    if isinstance(file, tuple):
        return _validate_upload(file[1], name, method)
    if isinstance(file, str | os.PathLike):
        return validate_training_file(file, method)
    if isinstance(file, bytes | bytearray | memoryview):
        return validate_training_stream(io.BytesIO(file), name=name, method=method)
    handle: IO[bytes] = file  # type: ignore[assignment]
    start = handle.tell()
    try:
        return validate_training_stream(handle, name=name, method=method)
    finally:
        handle.seek(start)


def _check_seekable(file: object) -> None:
    content = file[1] if isinstance(file, tuple) else file
    if hasattr(content, "seekable") and not content.seekable():
        msg = (
            "validate: a file object that cannot seek would be read up by the check;"
            " pass a path or bytes, or check it with finetune_async.data first"
        )
        raise InvalidParameterError(msg, param="validate")


def _refusal(report: TrainingFileReport) -> TrainingFileError:
    errors = report.errors
    lines = [problem.render(report.path) for problem in errors[:_LISTED_PROBLEMS]]
    more = report.summary.error_count - len(lines)
    if more > 0:
        lines.append(f"... and {more:,} more")
    count = report.summary.error_count
    head = (
        f"{report.path} is not a valid {report.method} training file"
        f" ({count:,} error{'' if count == 1 else 's'}); nothing was uploaded:"
    )
    return TrainingFileError("\n".join([head, *lines]), report=report)


class _PartFile:
    """A download's temporary file: written in chunks, renamed into place only when whole."""

    def __init__(self, target: Path, on_progress: Callable[[int], object] | None = None) -> None:
        if target.is_dir():
            msg = f"path: {target} is a directory; give a file name"
            raise InvalidParameterError(msg, param="path")
        if not target.parent.is_dir():
            msg = f"path: the folder {target.parent} does not exist"
            raise InvalidParameterError(msg, param="path")
        self.target = target
        self.part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
        self._handle = self.part.open("wb")
        self._offset = 0
        self._on_progress = on_progress

    @property
    def offset(self) -> int:
        return self._offset

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._offset += len(chunk)
        if self._on_progress is not None:
            self._on_progress(self._offset)

    def restart(self) -> None:
        self._handle.seek(0)
        self._handle.truncate()
        self._offset = 0
        if self._on_progress is not None:
            self._on_progress(0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._handle.close()
        if exc_type is None:
            self.part.replace(self.target)
        else:
            self.part.unlink(missing_ok=True)


@attrs.frozen
class AsyncFiles:
    """``client.files``: the files jobs train on and batches read and write."""

    _requester: Requester

    async def create(
        self,
        *,
        file: FileInput,
        purpose: str,
        validate: Validate = False,
        expires_after: Mapping[str, object] | None = None,
    ) -> FileObject:
        """Upload a file, streamed from its source (never read whole into memory).

        The upload is not repeated after a failure that leaves its outcome unknown (a 5xx, a
        connection cut while sending): the file may exist, so check ``files.list`` first.

        Args:
            file: A path, bytes, a binary file object, or ``(filename, bytes or file object)``;
                the multipart filename is the path's base name.
            purpose: ``"fine-tune"``, ``"batch"``, ``"assistants"``, ``"vision"``,
                ``"user_data"`` or ``"evals"``.
            validate: Check the training data first, with
                ``finetune_async.data.validate_training_file``'s rules, and refuse a file with
                errors (warnings pass): True checks the supervised format, ``"dpo"`` or
                ``"reinforcement"`` those methods'. Only for ``purpose="fine-tune"``. The check
                streams the data in a worker thread (files can be hundreds of MB); a file object
                is read to its end and sent from where it was, so it must be seekable.
            expires_after: When the file expires, ``{"anchor": "created_at", "seconds": N}``
                with N from 3600 (an hour) to 2592000 (30 days); by default batch files expire
                after 30 days and others are kept until deleted.

        Raises:
            TrainingFileError: ``validate`` found errors; the message lists the first ones as
                ``PATH:LINE: message`` and ``.report`` has them all (nothing is sent).
            InvalidParameterError: An unknown purpose, a missing file, an unusable ``file``,
                ``validate`` on another purpose or a file object that cannot seek, or a bad
                ``expires_after`` (nothing is sent).
            OSError: ``validate`` could not read the file.
        """
        check_one_of(purpose, "purpose", UPLOAD_PURPOSES, required=True)
        expiry = check_expires_after(expires_after, "expires_after")
        method = _validation_method(validate, purpose)
        fields: tuple[tuple[str, str], ...] = (("purpose", purpose),)
        if expiry is not None:
            # Multipart has no nesting: the API reads bracketed names (its curl example's -F).
            fields += (
                ("expires_after[anchor]", expiry["anchor"]),
                ("expires_after[seconds]", str(expiry["seconds"])),
            )
        source = attrs.evolve(upload_source(file), fields=fields)
        if method is not None:
            _check_seekable(file)
            report = await asyncio.to_thread(_validate_upload, file, source.filename, method)
            if not report.ok:
                raise _refusal(report)
        return await self._requester.request("POST", "/files", FileObject, body=source)

    async def retrieve(self, file_id: str) -> FileObject:
        """Return a file's description."""
        return await self._requester.request("GET", file_path(file_id), FileObject)

    def list(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        order: str | None = None,
    ) -> AsyncPager[FileObject]:
        """Iterate over files, newest first unless ``order="asc"``, fetching pages lazily.

        Raises:
            InvalidParameterError: An empty purpose, a non-positive limit or a bad order.
        """
        kind = None if purpose is None else check_id(purpose, "purpose")
        sort = check_one_of(order, "order", _ORDERS)
        filters = (("purpose", kind), ("order", sort))
        return paginate(
            self._requester, "/files", Page[FileObject], limit=limit, after=after, query=filters
        )

    async def delete(self, file_id: str) -> FileDeleted:
        """Delete a file."""
        checked = check_id(file_id, "file_id")
        return await self._requester.request(
            "DELETE", file_path(checked), FileDeleted, empty=FileDeleted(id=checked)
        )

    async def wait_for_processing(
        self, file_id: str, *, poll_interval: float = 5.0, timeout: float | None = None
    ) -> FileObject:
        """Poll a file until its status is ``processed`` or ``error`` and return it.

        Raises:
            WaitTimeoutError: Not processed in time; ``last`` holds the file as last seen.
        """
        path = file_path(file_id)
        watcher = Watcher(
            self._requester,
            [file_id],
            path_of=lambda _: path,
            into=FileObject,
            status_of=_file_status,
            is_done=is_file_processed,
            poll_interval=poll_interval,
            max_concurrency=1,
            timeout=timeout,
        )
        return await wait_for(watcher, file_id)

    async def content(self, file_id: str) -> bytes:
        """Return a file's contents, read whole (use ``download`` for large files)."""
        return await self._requester.request(
            "GET", file_path(file_id, "/content"), bytes, headers=ANY_CONTENT
        )

    async def download(
        self,
        file_id: str,
        path: str | os.PathLike[str],
        *,
        on_progress: Callable[[int], object] | None = None,
    ) -> Path:
        """Stream a file's contents to ``path``; returns the path.

        The bytes go to a temporary file beside ``path``, renamed into place only once complete:
        a failed download never leaves a truncated file under the final name. A connection
        dropped midway is retried, resuming with a ``Range`` request where the server allows it.

        Args:
            file_id: The file's id.
            path: Where the file goes (its folder must exist).
            on_progress: Called with the bytes written so far after every chunk (0 when a retry
                starts over), e.g. to drive a progress bar.
        """
        url = file_path(file_id, "/content")
        with _PartFile(Path(os.fspath(path)), on_progress) as sink:
            target = sink.target
            answer = await self._requester.download(url, sink, headers=ANY_CONTENT)
            if not _length_declared(answer):
                # A close-delimited body cut half-way looks complete: the file's own size is
                # the only witness left (one more request, only for such answers).
                await self._check_size(file_id, sink.offset)
        return target

    async def _check_size(self, file_id: str, received: int) -> None:
        expected = (await self.retrieve(file_id)).bytes
        if expected is not None and expected != received:
            raise APIConnectionError(
                f"files.download({file_id!r}): the answer ended after {received:,} bytes but the"
                f" file has {expected:,}; the connection was cut, and nothing was saved"
            )


def _length_declared(headers: Mapping[str, str]) -> bool:
    """Whether an answer said how long it is in decoded bytes (so the transport checked it)."""
    if headers.get("Content-Encoding", "identity") != "identity":
        return False
    return "Content-Length" in headers or "Content-Range" in headers


def _file_status(file: FileObject) -> str | None:
    return None if file.status is None else str(file.status)


@attrs.frozen
class Files:
    """Blocking twin of ``AsyncFiles``."""

    _async_api: AsyncFiles
    _runner: Runner

    def create(
        self,
        *,
        file: FileInput,
        purpose: str,
        validate: Validate = False,
        expires_after: Mapping[str, object] | None = None,
    ) -> FileObject:
        """Blocking twin of ``AsyncFiles.create`` (streamed, never read whole into memory)."""
        return self._runner.call(
            partial(
                self._async_api.create,
                file=file,
                purpose=purpose,
                validate=validate,
                expires_after=expires_after,
            )
        )

    def retrieve(self, file_id: str) -> FileObject:
        """Blocking twin of ``AsyncFiles.retrieve``."""
        return self._runner.call(partial(self._async_api.retrieve, file_id))

    def list(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        order: str | None = None,
    ) -> Pager[FileObject]:
        """Blocking twin of ``AsyncFiles.list``: a lazy iterator over files."""
        return Pager(
            self._runner,
            self._async_api.list(purpose=purpose, limit=limit, after=after, order=order),
        )

    def delete(self, file_id: str) -> FileDeleted:
        """Blocking twin of ``AsyncFiles.delete``."""
        return self._runner.call(partial(self._async_api.delete, file_id))

    def wait_for_processing(
        self, file_id: str, *, poll_interval: float = 5.0, timeout: float | None = None
    ) -> FileObject:
        """Blocking twin of ``AsyncFiles.wait_for_processing``."""
        return self._runner.call(
            partial(
                self._async_api.wait_for_processing,
                file_id,
                poll_interval=poll_interval,
                timeout=timeout,
            )
        )

    def content(self, file_id: str) -> bytes:
        """Blocking twin of ``AsyncFiles.content``."""
        return self._runner.call(partial(self._async_api.content, file_id))

    def download(
        self,
        file_id: str,
        path: str | os.PathLike[str],
        *,
        on_progress: Callable[[int], object] | None = None,
    ) -> Path:
        """Blocking twin of ``AsyncFiles.download`` (streamed to a temporary name, then renamed)."""
        return self._runner.call(
            partial(self._async_api.download, file_id, path, on_progress=on_progress)
        )
