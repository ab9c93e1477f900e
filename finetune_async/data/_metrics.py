"""A fine-tuning job's result file (``step_metrics.csv``) read into typed rows.

The file has a header row naming its columns and one row per training step. Which columns appear
varies: the emulator and older OpenAI jobs write ``step,train_loss,train_accuracy,valid_loss,
valid_mean_token_accuracy``; newer jobs write ``train_mean_token_accuracy`` and the
``full_valid_*`` columns, and leave cells empty at steps without validation. So every metric is
optional: a missing column or an empty cell is None. A column ``StepMetrics`` does not know is
kept, as text, in ``extra`` (the parser does not guess its type). Only ``step`` is required.

OpenAI serves this file base64-encoded (users decode it by hand, e.g.
``xing61/zzz-api#21``); such content is decoded first, so both forms parse the same.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from typing import Final

import attrs

from ..errors import InvalidParameterError
from ..types import StepMetrics

__all__ = ["parse_step_metrics"]

#: The float columns of ``StepMetrics``, by their CSV name.
_METRIC_COLUMNS: Final = tuple(
    field.name for field in attrs.fields(StepMetrics) if field.name not in {"step", "extra"}
)


def _fail(message: str) -> InvalidParameterError:
    return InvalidParameterError(message, param="content")


def _first_line(data: bytes) -> bytes:
    return data.lstrip().split(b"\n", 1)[0]


def _decoded(data: bytes) -> bytes:
    """Return CSV bytes, decoding base64 content (OpenAI's form) when that is what ``data`` is."""
    if b"," in _first_line(data):
        return data
    try:
        decoded = base64.b64decode(b"".join(data.split()), validate=True)
    except binascii.Error:
        return data
    return decoded if b"step" in _first_line(decoded).lower() else data


def _number(text: str, column: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        msg = f"line {line}: {column} must be a number, got {text!r}"
        raise _fail(msg) from None


def _step(text: str | None, line: int) -> int:
    if text is None or not text.strip():
        raise _fail(f"line {line}: step is empty")
    value = _number(text, "step", line)
    if not value.is_integer():
        raise _fail(f"line {line}: step must be a whole number, got {text!r}")
    return int(value)


def parse_step_metrics(content: bytes | str) -> list[StepMetrics]:
    """Return the rows of a job's result file, in file order.

    Args:
        content: The file's contents (as ``files.content`` returns them), plain or base64.

    Raises:
        InvalidParameterError: The content has no header with a ``step`` column, or a cell of a
            known column is not a number (the message names the line and column).
    """
    data = content.encode() if isinstance(content, str) else bytes(content)
    text = _decoded(data).decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    names = [name.strip().lower() for name in header or ()]
    if "step" not in names:
        shown = ",".join(names) if names else "nothing"
        raise _fail(f"not a step-metrics CSV: its header must name a 'step' column, got {shown}")
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        line = reader.line_num
        row = dict(zip(names, (cell.strip() for cell in cells), strict=False))
        metrics: dict[str, float | None] = {}
        for column in _METRIC_COLUMNS:
            cell = row.get(column)
            metrics[column] = _number(cell, column, line) if cell else None
        extra = {
            name: cell
            for name, cell in row.items()
            if cell and name != "step" and name not in metrics
        }
        rows.append(StepMetrics(step=_step(row.get("step"), line), extra=extra, **metrics))
    return rows
