"""The one cattrs converter of finetune_async, and every hook it uses.

Built on ``cattrs.preconf.orjson`` (ARCHITECTURE.md rule 7). ``detailed_validation`` is off: it
makes every structuring call build error-path bookkeeping, which costs CPU on the polling hot path,
and the single call site turns any failure into an ``APIResponseValidationError`` anyway.

Leniency (COMPAT.md, "Parsing") lives here, in one visible block:

- open enums: ``SomeEnum | str`` gives the member for a known value, the string otherwise;
- ``JobError`` accepts a bare string (some providers send ``"error": "..."``);
- ``FineTuningJob`` accepts Azure's ``organisation_id`` spelling;
- timestamps and counts accept a float where an int is expected (kept as the int it denotes);
- unknown keys are ignored (cattrs' default; keep it so).

Request records are unstructured without their ``None`` fields, so an unset option is left out of
the JSON body instead of being sent as ``null``.
"""

from __future__ import annotations

import types
import typing
from enum import StrEnum
from typing import Any, TypeVar

import attrs
from cattrs.gen import make_dict_structure_fn
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from .types import FineTuningJob, JobError

if typing.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["converter"]

T = TypeVar("T")

converter: OrjsonConverter = make_converter(detailed_validation=False)


def _open_enum_of(tp: Any) -> type[StrEnum] | None:
    """Return the StrEnum of a ``SomeEnum | str [| None]`` union, else None."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(tp)
    if str not in args:
        return None
    enums = [a for a in args if isinstance(a, type) and issubclass(a, StrEnum)]
    return enums[0] if len(enums) == 1 else None


def _structure_open_enum(tp: Any) -> Callable[[Any, Any], Any]:
    enum_cls = _open_enum_of(tp)
    if enum_cls is None:  # pragma: no cover - the factory's predicate rules this out
        raise TypeError(tp)
    members: Mapping[str, StrEnum] = enum_cls._value2member_map_  # type: ignore[assignment]
    nullable = type(None) in typing.get_args(tp)

    def structure(value: Any, _: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            value = str(value)
        return members.get(value, value)

    return structure


def _structure_lenient_int(value: Any, _: Any) -> int | None:
    """An ``int | None`` field: ints pass, a float becomes the int it denotes, null stays None."""
    if value is None or type(value) is int:
        return value
    if isinstance(value, float | str):
        return int(float(value))
    msg = f"expected an integer, got {value!r}"
    raise TypeError(msg)


def _structure_job_error(value: Any, _: Any) -> JobError:
    if isinstance(value, str):
        return JobError(message=value)
    return _job_error_from_dict(value, JobError)


def _make_job_structure() -> Callable[[Any, Any], FineTuningJob]:
    generated = make_dict_structure_fn(FineTuningJob, converter)

    def structure(value: Any, tp: Any) -> FineTuningJob:
        # Azure writes the British spelling (COMPAT.md); the wire name wins when both are present.
        if "organization_id" not in value and "organisation_id" in value:
            value = {**value, "organization_id": value["organisation_id"]}
        return generated(value, tp)

    return structure


def _unstructure_without_nones(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    names = [a.name for a in attrs.fields(cls)]
    unstructure = converter.unstructure

    def to_dict(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            value = getattr(obj, name)
            if value is not None:
                out[name] = unstructure(value)
        return out

    return to_dict


# --- every hook, in one block ------------------------------------------------------------------
converter.register_structure_hook_factory(
    lambda tp: _open_enum_of(tp) is not None, _structure_open_enum
)
converter.register_structure_hook(int | None, _structure_lenient_int)
_job_error_from_dict = make_dict_structure_fn(JobError, converter)
converter.register_structure_hook(JobError, _structure_job_error)
converter.register_structure_hook(FineTuningJob, _make_job_structure())
converter.register_unstructure_hook_factory(attrs.has, _unstructure_without_nones)
