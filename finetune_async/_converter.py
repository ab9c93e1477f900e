"""The one cattrs converter of finetune_async, and every hook it uses.

Built on ``cattrs.preconf.orjson`` (docs/architecture.md rule 7). ``detailed_validation`` is off: it
makes every structuring call build error-path bookkeeping, which costs CPU on the polling hot path,
and the single call site turns any failure into an ``APIResponseValidationError`` anyway.

Leniency (docs/compat.md, "Parsing") lives here, in one visible block:

- open enums: ``SomeEnum | str`` gives the member for a known value, the string otherwise;
- ``JobError`` accepts a bare string (some providers send ``"error": "..."``);
- ``FineTuningJob`` accepts Azure's ``organisation_id`` spelling;
- ``WebhookEventData`` keeps the whole ``data`` object of a webhook event beside its ``id``;
- timestamps and counts accept a float where an int is expected (kept as the int it denotes);
- records are made only from JSON objects and lists only from JSON arrays, so a wrong shape
  raises instead of turning into empty defaults;
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

from ._record_structure import can_generate, make_record_structure
from .types import FineTuningJob, JobError, WebhookEventData
from .types.fine_tuning import HyperparameterValue

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
        if value is None:
            if nullable:
                return None
            msg = f"expected a {enum_cls.__name__} value, got null"
            raise TypeError(msg)
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


def _structure_bool(value: Any, _: Any) -> bool:
    """A JSON boolean; ``"true"`` / ``"false"`` strings are read as such, never as truthiness."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    msg = f"expected a boolean, got {value!r}"
    raise TypeError(msg)


def _is_record(tp: Any) -> bool:
    return attrs.has(typing.get_origin(tp) or tp)


def _structure_record(tp: Any) -> Callable[[Any, Any], Any]:
    """Structure an attrs record, but only from a JSON object.

    cattrs' generated function reads keys with ``in`` tests, so a list or a string would quietly
    become a record of defaults (a list answered for a page would read as an empty last page).
    Plain records get a faster generated function of our own (``_record_structure``); generic
    ones (``Page[T]``) keep cattrs', behind the same shape check.
    """
    if can_generate(tp):
        return make_record_structure(tp, converter.get_structure_hook)
    generated = make_dict_structure_fn(tp, converter)
    name = getattr(tp, "__name__", repr(tp))

    def structure(value: Any, target: Any) -> Any:
        if not isinstance(value, dict):
            msg = f"expected a JSON object for {name}, got {type(value).__name__}"
            raise TypeError(msg)
        return generated(value, target)

    return structure


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) is list


def _structure_list(tp: Any) -> Callable[[Any, Any], list[Any]]:
    """Structure a list only from a JSON array (a string would otherwise become its characters)."""
    (item_type,) = typing.get_args(tp) or (Any,)
    item_hook = converter.get_structure_hook(item_type)

    def structure(value: Any, _: Any) -> list[Any]:
        if not isinstance(value, list):
            msg = f"expected a JSON array, got {type(value).__name__}"
            raise TypeError(msg)
        return [item_hook(item, item_type) for item in value]

    return structure


def _is_optional(tp: Any) -> bool:
    """``X | None`` for one X (open enums and ``int | None`` have hooks of their own)."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return False
    args = typing.get_args(tp)
    return len(args) == 2 and type(None) in args  # noqa: PLR2004 - X and None


def _structure_optional(tp: Any) -> Callable[[Any, Any], Any]:
    """Resolve the inner hook once; cattrs' own Optional handling dispatches on every value."""
    (inner,) = (arg for arg in typing.get_args(tp) if arg is not type(None))
    if inner is str:

        def structure_str(value: Any, _: Any) -> Any:
            if value is None or type(value) is str:
                return value
            return str(value)

        return structure_str
    inner_hook = converter.get_structure_hook(inner)

    def structure(value: Any, _: Any) -> Any:
        return None if value is None else inner_hook(value, inner)

    return structure


def _structure_str_list(value: Any, _: Any) -> list[str] | None:
    """A ``list[str] | None`` field (result files, tags) without a hook call per item."""
    if value is None:
        return None
    if type(value) is not list:
        msg = f"expected a JSON array, got {type(value).__name__}"
        raise TypeError(msg)
    return [item if type(item) is str else str(item) for item in value]


def _structure_str_dict(value: Any, _: Any) -> dict[str, str] | None:
    """A ``dict[str, str] | None`` field (metadata) without a hook call per key and value."""
    if value is None:
        return None
    if type(value) is not dict:
        msg = f"expected a JSON object, got {type(value).__name__}"
        raise TypeError(msg)
    return {key: item if type(item) is str else str(item) for key, item in value.items()}


_HYPERPARAMETER_TYPES = frozenset({str, int, float, type(None)})


def _structure_hyperparameter(value: Any, _: Any) -> HyperparameterValue | None:
    """``"auto"`` or a number, kept as sent; cattrs' union passthrough does the same, slower."""
    if type(value) in _HYPERPARAMETER_TYPES:
        return value  # type: ignore[no-any-return]
    msg = f'expected "auto" or a number, got {value!r}'
    raise TypeError(msg)


def _is_exactly(expected: Any) -> Callable[[Any], bool]:
    def predicate(tp: Any) -> bool:
        return bool(tp == expected)

    return predicate


def _structure_job_error(value: Any, _: Any) -> JobError:
    if isinstance(value, str):
        return JobError(message=value)
    return _job_error_from_dict(value, JobError)  # type: ignore[no-any-return]


def _make_job_structure() -> Callable[[Any, Any], FineTuningJob]:
    # Azure writes the British spelling (docs/compat.md); the wire name wins when both are present.
    return make_record_structure(
        FineTuningJob,
        converter.get_structure_hook,
        fallback_keys={"organization_id": "organisation_id"},
    )


def _structure_webhook_event_data(value: Any, _: Any) -> WebhookEventData:
    """A webhook event's ``data``: its ``id``, and the object as sent (OpenAI's are thin)."""
    if type(value) is not dict:
        msg = f"expected a JSON object for WebhookEventData, got {type(value).__name__}"
        raise TypeError(msg)
    ident = value.get("id")
    return WebhookEventData(None if ident is None else str(ident), value)


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
# Factories registered later are tried first; direct hooks win over every factory.
converter.register_structure_hook_factory(_is_record, _structure_record)
converter.register_structure_hook_factory(_is_list, _structure_list)
converter.register_structure_hook_factory(_is_optional, _structure_optional)
converter.register_structure_hook_factory(
    lambda tp: _open_enum_of(tp) is not None, _structure_open_enum
)
# Unions are matched by predicate: a plain hook for a union is ignored under union passthrough.
for _union, _hook in (
    (int | None, _structure_lenient_int),
    (list[str] | None, _structure_str_list),
    (dict[str, str] | None, _structure_str_dict),
    (HyperparameterValue | None, _structure_hyperparameter),
):
    converter.register_structure_hook_func(_is_exactly(_union), _hook)
converter.register_structure_hook(bool, _structure_bool)
_job_error_from_dict = _structure_record(JobError)
converter.register_structure_hook(JobError, _structure_job_error)
converter.register_structure_hook(FineTuningJob, _make_job_structure())
converter.register_structure_hook(WebhookEventData, _structure_webhook_event_data)
converter.register_unstructure_hook_factory(attrs.has, _unstructure_without_nones)
