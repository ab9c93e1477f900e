"""Uploaded files: metadata in memory, contents on disk (so large files cost no memory)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["FileStore", "StoredFile"]


class StoredFile:
    """One file of the Files API."""

    __slots__ = ("bytes", "created_at", "expires_at", "filename", "id", "path", "purpose", "status")

    def __init__(
        self, *, file_id: str, filename: str, purpose: str, path: Path, size: int, created_at: int
    ) -> None:
        """Describe a file whose contents are already at ``path``."""
        self.id = file_id
        self.filename = filename
        self.purpose = purpose
        self.path = path
        self.bytes = size
        self.created_at = created_at
        self.expires_at: int | None = None
        self.status = "processed"

    def to_json(self) -> dict[str, Any]:
        """Return the ``file`` object."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
        }
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out

    def read_bytes(self) -> bytes:
        """Return the whole contents (for the emulator's own small files)."""
        return self.path.read_bytes()


class FileStore:
    """Files in creation order, their contents in a private temporary directory."""

    def __init__(self) -> None:
        """Create the (empty) store; its directory is made at the first file."""
        self._dir: Path | None = None
        self.files: dict[str, StoredFile] = {}

    def path_for(self, file_id: str) -> Path:
        """Return where the contents of ``file_id`` go."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="finetune-async-emulator-"))
        return self._dir / file_id

    def add(self, stored: StoredFile) -> StoredFile:
        """Register a file whose contents are written."""
        self.files[stored.id] = stored
        return stored

    def add_bytes(
        self, *, file_id: str, filename: str, purpose: str, data: bytes, created_at: int
    ) -> StoredFile:
        """Write ``data`` and register it as a file (result and batch output files)."""
        path = self.path_for(file_id)
        path.write_bytes(data)
        return self.add(
            StoredFile(
                file_id=file_id,
                filename=filename,
                purpose=purpose,
                path=path,
                size=len(data),
                created_at=created_at,
            )
        )

    def delete(self, file_id: str) -> bool:
        """Forget a file and remove its contents; False if there was none."""
        stored = self.files.pop(file_id, None)
        if stored is None:
            return False
        stored.path.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        """Remove every file's contents."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
