"""The structure function of one record class, generated once per class for the converter.

cattrs' generated functions call one hook per field and gather the fields in a dict that becomes
the keyword arguments of the record: on the polling hot path (every poll of every job, every item
of a page) that was most of the client's CPU beyond aiohttp's, and many short-lived objects for
the garbage collector. Here the common field types (strings, integers, hyperparameter values,
open enums) are checked inline, and the record is built with one positional call. Every other
field type goes through the converter's own hook for it, so the leniency rules stay in
``_converter.py``, and the results are the same as cattrs' (the type tests walk every record).

Only plain (non-generic) attrs classes whose fields are all positional ``__init__`` arguments are
generated here; ``can_generate`` says which, and the converter leaves the rest to cattrs.
"""

from __future__ import annotations

import keyword
import types
import typing
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["can_generate", "make_record_structure"]

_MISSING = object()


def can_generate(cls: Any) -> bool:
    """Whether ``cls`` is an attrs class this module can generate a function for."""
    if not isinstance(cls, type) or not attrs.has(cls) or typing.get_origin(cls) is not None:
        return False
    if getattr(cls, "__parameters__", ()):  # a generic such as Page[T]: cattrs maps its T
        return False
    return all(a.init and not a.kw_only and a.alias == a.name for a in attrs.fields(cls))


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _open_enum_members(tp: Any) -> Mapping[str, StrEnum] | None:
    """The value map of ``SomeEnum | str [| None]``, else None."""
    args = _union_args(tp)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, StrEnum)]
    if str not in args or len(enums) != 1:
        return None
    return enums[0]._value2member_map_  # type: ignore[return-value]


def _conversion(
    index: int, tp: Any, hook_for: Callable[[Any], Callable[[Any, Any], Any]], names: dict[str, Any]
) -> list[str]:
    """The lines that turn the raw value ``v<index>`` into the field's value."""
    var = f"v{index}"
    args = _union_args(tp)
    nullable = type(None) in args
    plain = tuple(a for a in args if a is not type(None))
    if plain == (str,):
        # A string, or what the server sent in its place, as a string; null stays null.
        test = f"type({var}) is not str" + (f" and {var} is not None" if nullable else "")
        return [f"if {test}:", f"    {var} = str({var})"]
    if nullable and len(plain) == 1 and attrs.has(plain[0]):
        # A nested record: call the record's own hook, skipping the ``X | None`` one around it.
        names[f"h{index}"] = hook_for(plain[0])
        names[f"t{index}"] = plain[0]
        return [f"if {var} is not None:", f"    {var} = h{index}({var}, t{index})"]
    names[f"h{index}"] = hook_for(tp)
    names[f"t{index}"] = tp
    call = f"{var} = h{index}({var}, t{index})"
    members = _open_enum_members(tp)
    if members is not None:
        names[f"m{index}"] = members
        return [
            f"if type({var}) is str:",
            f"    {var} = m{index}.get({var}, {var})",
            "else:",
            f"    {call}",
        ]
    if all(a in (str, int, float) for a in plain):
        # Numbers and "auto" are kept as sent when their type is one the field allows; anything
        # else (a float for an int, a bad value) is the converter hook's to convert or refuse.
        names[f"ok{index}"] = frozenset((*plain, type(None)) if nullable else plain)
        return [f"if type({var}) not in ok{index}:", f"    {call}"]
    return [call]


def make_record_structure(
    cls: type[Any],
    hook_for: Callable[[Any], Callable[[Any, Any], Any]],
    *,
    fallback_keys: Mapping[str, str] | None = None,
) -> Callable[[Any, Any], Any]:
    """Return ``structure(value, cls)`` for the attrs class ``cls``.

    Args:
        cls: A class for which ``can_generate`` is true.
        hook_for: The converter's hook for a field type (``converter.get_structure_hook``).
        fallback_keys: Field name to another key read when the field's own key is absent
            (Azure's ``organisation_id`` for ``organization_id``).

    The function accepts only a dict, raises ``KeyError`` for a missing required field and
    ignores unknown keys, as cattrs' generated functions do.
    """
    hints = typing.get_type_hints(cls)
    fallback_keys = fallback_keys or {}
    prefix = f"expected a JSON object for {cls.__name__}, got "
    names: dict[str, Any] = {"cls": cls, "MISSING": _MISSING, "TypeError": TypeError}
    lines = [
        "def structure(o, _=None):",
        "    if type(o) is not dict and not isinstance(o, dict):",
        f"        raise TypeError({prefix!r} + type(o).__name__)",
    ]
    arguments = []
    for index, field in enumerate(attrs.fields(cls)):
        if keyword.iskeyword(field.name) or not field.name.isidentifier():  # pragma: no cover
            msg = f"{cls.__name__}.{field.name} cannot be generated"
            raise TypeError(msg)
        var = f"v{index}"
        key = field.name
        tp = hints[field.name]
        body = _conversion(index, tp, hook_for, names)
        other = fallback_keys.get(key)
        if field.default is attrs.NOTHING:
            lines.append(f"    {var} = o[{key!r}]")
            lines.extend(f"    {line}" for line in body)
        else:
            lines.append(f"    {var} = o.get({key!r}, MISSING)")
            if other is not None:
                lines.append(f"    if {var} is MISSING:")
                lines.append(f"        {var} = o.get({other!r}, MISSING)")
            lines.append(f"    if {var} is MISSING:")
            factory = getattr(field.default, "factory", None)  # an attrs.Factory default
            if factory is not None:
                names[f"f{index}"] = factory
                lines.append(f"        {var} = f{index}()")
            else:
                names[f"d{index}"] = field.default
                lines.append(f"        {var} = d{index}")
            lines.append("    else:")
            lines.extend(f"        {line}" for line in body)
        arguments.append(var)
    lines.append(f"    return cls({', '.join(arguments)})")
    source = "\n".join(lines) + "\n"
    namespace = dict(names)
    code = compile(source, f"<finetune_async structure {cls.__qualname__}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own source, built from the class's field names
    function: Callable[[Any, Any], Any] = namespace["structure"]
    return function
