"""Routes of the Files API: multipart uploads streamed to disk, listing, contents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs
import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from ..._validation import check_expires_after
from ...errors import InvalidParameterError
from .._files import StoredFile
from ._common import (
    EmulatedAPIError,
    json_response,
    list_page,
    not_found,
    state_of,
    sync_all,
    too_large,
)

if TYPE_CHECKING:
    from pathlib import Path

    from .._state import EmulatorState

__all__ = ["UPLOAD_PURPOSES", "routes"]

#: Purposes an upload may have (the spec's CreateFileRequest).
UPLOAD_PURPOSES: Final = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_CHUNK: Final = 256 * 1024


# Multipart has no nesting: an expiration policy comes as bracketed field names, or as one
# JSON part, OpenAPI's default encoding of an object in multipart/form-data (OpenAPI 3.1,
# "Encoding Object"). Both are accepted.
_EXPIRY_PARTS: Final = {"expires_after[anchor]": "anchor", "expires_after[seconds]": "seconds"}
_EXPIRY_JSON: Final = "expires_after"
#: The largest text field of an upload (purpose, expires_after): a few bytes in practice.
_FIELD_BYTES: Final = 64 * 1024
#: What the parts' headers and the text fields may add to the file in a multipart body.
_FORM_OVERHEAD: Final = 1024 * 1024
# What aiohttp's multipart reader raises on a body that is not well-formed multipart (each was
# seen by sending one): ValueError ("Could not find starting boundary", "boundary missed",
# "boundary ... is too long", "Reading after EOF") and BadHttpMessage (LineTooLong for a part
# header over 8190 bytes, InvalidHeader).
_MALFORMED: Final = (ValueError, BadHttpMessage)


@attrs.define
class _Upload:
    """The fields of one ``POST /files`` body; the file's bytes are already on disk."""

    purpose: str | None = None
    expiry: dict[str, object] = attrs.field(factory=dict)
    expiry_json: str | None = None
    filename: str | None = None
    size: int | None = None


def _expiry_seconds(upload: _Upload) -> int | None:
    """The seconds of an upload's expiration policy, checked as the SDK checks it (None: none)."""
    fields = upload.expiry
    if upload.expiry_json is not None:
        if fields:
            raise EmulatedAPIError(
                400,
                "Send 'expires_after' once: as one JSON part or as expires_after[...] fields.",
                param="expires_after",
            )
        try:
            fields = orjson.loads(upload.expiry_json)
        except orjson.JSONDecodeError:
            raise EmulatedAPIError(
                400, "Invalid 'expires_after': the part is not JSON.", param="expires_after"
            ) from None
    elif not fields:
        return None
    else:
        seconds = fields.get("seconds")
        if isinstance(seconds, str) and seconds.isdigit():
            fields = {**fields, "seconds": int(seconds)}
    try:
        policy = check_expires_after(fields, "expires_after")
    except InvalidParameterError as exc:
        raise EmulatedAPIError(400, str(exc), param=exc.param) from None
    if policy is None:
        # `null` in the JSON part: no policy, as when the field is left out.
        return None
    return int(policy["seconds"])


async def _field_text(part: BodyPartReader) -> str:
    """The text of a small form field, refused beyond ``_FIELD_BYTES``."""
    raw = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        raw += chunk
        if len(raw) > _FIELD_BYTES:
            raise too_large(f"The '{part.name}' field", _FIELD_BYTES)
    charset = part.get_charset(default="utf-8")
    try:
        return raw.decode(charset).strip()
    except (LookupError, UnicodeDecodeError):
        raise EmulatedAPIError(
            400, f"The '{part.name}' field is not text in charset {charset!r}.", param=part.name
        ) from None


async def _save_file(part: BodyPartReader, path: Path, limit: int) -> int:
    """Stream the file part to ``path``; return its size, refused beyond ``limit`` bytes."""
    size = 0
    with path.open("wb") as handle:
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large("The file", limit)
            handle.write(chunk)
    return size


async def _read_upload(request: web.Request, path: Path, limit: int) -> _Upload:
    """Read a multipart upload: the fields in memory, the file part streamed to ``path``."""
    upload = _Upload()
    try:
        reader = await request.multipart()
        async for part in reader:
            if request.content.total_bytes > limit + _FORM_OVERHEAD:
                raise too_large("The upload", limit)
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                upload.purpose = await _field_text(part)
            elif part.name in _EXPIRY_PARTS:
                upload.expiry[_EXPIRY_PARTS[part.name]] = await _field_text(part)
            elif part.name == _EXPIRY_JSON:
                upload.expiry_json = await _field_text(part)
            elif part.name == "file":
                upload.filename = part.filename or "upload"
                upload.size = await _save_file(part, path, limit)
    except _MALFORMED as exc:
        # Only the reader raises these here: the helpers raise EmulatedAPIError or OSError.
        detail = exc.message if isinstance(exc, BadHttpMessage) else str(exc)
        raise EmulatedAPIError(
            400, f"The body is not a valid multipart/form-data upload: {detail.strip()[:200]}"
        ) from None
    return upload


async def create_file(request: web.Request) -> web.Response:
    """POST /files: a multipart upload, streamed to disk."""
    state = state_of(request)
    limit = state.limits.file_bytes
    if not request.content_type.startswith("multipart/"):
        raise EmulatedAPIError(
            400, "Uploads must be multipart/form-data with 'file' and 'purpose'."
        )
    if request.content_length is not None and request.content_length > limit + _FORM_OVERHEAD:
        raise too_large("The upload", limit)
    file_id = state.ids.new("file")
    path = state.files.path_for(file_id)
    try:
        upload = await _read_upload(request, path, limit)
        stored = _checked_upload(state, upload, file_id, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    state.files.add(stored)
    return json_response(stored.to_json())


def _checked_upload(state: EmulatorState, upload: _Upload, file_id: str, path: Path) -> StoredFile:
    """The file an upload describes, once its fields are checked as the API checks them."""
    if upload.size is None:
        raise EmulatedAPIError(400, "Missing the 'file' part of the upload.", param="file")
    purpose = upload.purpose
    if purpose not in UPLOAD_PURPOSES:
        allowed = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
        raise EmulatedAPIError(
            400, f"Invalid 'purpose': {purpose!r}. Expected one of {allowed}.", param="purpose"
        )
    seconds = _expiry_seconds(upload)
    stored = StoredFile(
        file_id=file_id,
        filename=upload.filename or "upload",
        purpose=purpose,
        path=path,
        size=upload.size,
        created_at=int(state.now()),
    )
    if seconds is not None:
        stored.expires_at = stored.created_at + seconds
    return stored


def _file(state: EmulatorState, file_id: str) -> StoredFile:
    stored = state.files.files.get(file_id)
    if stored is None:
        raise not_found("file", file_id, "file_id")
    return stored


async def list_files(request: web.Request) -> web.Response:
    """GET /files: filtered by purpose, ordered by creation (desc by default)."""
    state = state_of(request)
    await sync_all(state)
    purpose = request.query.get("purpose")
    order = request.query.get("order", "desc")
    if order not in {"asc", "desc"}:
        raise EmulatedAPIError(
            400, f"Invalid 'order': expected 'asc' or 'desc', got {order!r}", param="order"
        )
    files = [
        f.to_json() for f in state.files.files.values() if purpose is None or f.purpose == purpose
    ]
    if order == "desc":
        files.reverse()
    # ListFilesResponse requires first_id and last_id, even on an empty page.
    return json_response(list_page(request, files, default=10000, maximum=10000, null_ids=True))


async def retrieve_file(request: web.Request) -> web.Response:
    """GET /files/{file_id}."""
    return json_response(_file(state_of(request), request.match_info["file_id"]).to_json())


async def delete_file(request: web.Request) -> web.Response:
    """DELETE /files/{file_id}."""
    state = state_of(request)
    file_id = request.match_info["file_id"]
    _file(state, file_id)
    state.files.delete(file_id)
    return json_response({"id": file_id, "object": "file", "deleted": True})


async def file_content(request: web.Request) -> web.StreamResponse:
    """GET /files/{file_id}/content: the bytes, streamed from disk (Range requests honoured)."""
    stored = _file(state_of(request), request.match_info["file_id"])
    return web.FileResponse(stored.path, headers={"Content-Type": "application/octet-stream"})


def routes() -> list[web.RouteDef]:
    """The Files API under ``/v1``."""
    return [
        web.post("/v1/files", create_file),
        web.get("/v1/files", list_files),
        web.get("/v1/files/{file_id}", retrieve_file),
        web.delete("/v1/files/{file_id}", delete_file),
        web.get("/v1/files/{file_id}/content", file_content),
    ]
