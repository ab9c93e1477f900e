"""The spec and the SDK agree on the surface: every operation has a call, every property a field.

The walk goes from each operation's 200 answer schema into the record the SDK returns for it,
following ``$ref``, ``anyOf`` / ``oneOf`` / ``allOf``, arrays and the records' own field types, so a
property the spec adds anywhere in an answer fails here until a record has the field. A field
typed as a plain dict (``metadata``, a reinforcement ``grader``) keeps that JSON object whole on
purpose; the walk stops there.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Final

import attrs
import pytest
import yaml  # type: ignore[import-untyped]

from finetune_async.types import FineTuningJob, Model, Page
from tests.conftest import SPEC_PATH
from tests.contract.operations import CALLS

SPEC: Final[dict[str, Any]] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
HTTP_METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
#: How many operations the vendored spec has; a change here is a change of the contract.
OPERATION_COUNT: Final = 29
#: The spec's operations the SDK has no call for yet (the Uploads, graders and models-list issue).
#: Each one leaves this set when its call is built and joins ``CALLS``.
NOT_YET_BUILT: Final = frozenset(
    {
        "addUploadPart",
        "cancelUpload",
        "completeUpload",
        "createUpload",
        "listModels",
        "runGrader",
        "validateGrader",
    }
)


def all_spec_operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every operation of the spec by ``operationId``: (METHOD, path, operation)."""
    return {
        operation["operationId"]: (method.upper(), path, operation)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def spec_operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """The spec's operations that the SDK has a call for (all but ``NOT_YET_BUILT``)."""
    return {op: value for op, value in all_spec_operations().items() if op not in NOT_YET_BUILT}


def deref(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` to the component schema (the spec only refers within itself)."""
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = SPEC["components"]["schemas"][name]
    return schema


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def field_types(record: Any) -> dict[str, Any]:
    """The resolved field types of a record type, with ``Page[X]``'s ``T`` replaced by X."""
    cls = typing.get_origin(record) or record
    hints = typing.get_type_hints(cls)
    bound = dict(zip(getattr(cls, "__parameters__", ()), typing.get_args(record), strict=False))
    if not bound:
        return hints
    resolved = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is list and typing.get_args(hint)[0] in bound:
            resolved[name] = list[bound[typing.get_args(hint)[0]]]  # type: ignore[misc]
        else:
            resolved[name] = hint
    return resolved


@attrs.define
class Walk:
    """What a walk of answer schemas against record types found."""

    missing: list[str] = attrs.field(factory=list)
    checked: int = 0

    def schema(self, schema: dict[str, Any], tp: Any, where: str) -> None:
        """Check ``schema`` (at ``where``) against the Python type ``tp`` that holds it."""
        schema = deref(schema)
        for key in ("anyOf", "oneOf", "allOf"):
            for alternative in schema.get(key, ()):
                self.schema(alternative, tp, where)
        kinds = _union_args(tp)
        if "items" in schema:
            for kind in kinds:
                if typing.get_origin(kind) is list:
                    self.schema(schema["items"], typing.get_args(kind)[0], f"{where}[]")
        properties: dict[str, Any] = schema.get("properties", {})
        if not properties:
            return
        records = [k for k in kinds if attrs.has(typing.get_origin(k) or k)]
        if not records:
            if not any(k is Any or typing.get_origin(k) is dict or k is dict for k in kinds):
                self.missing.append(f"{where}: an object, held by {tp!r}")
            return
        for record in records:
            fields = field_types(record)
            for name, sub in properties.items():
                self.checked += 1
                if name not in fields:
                    owner = (typing.get_origin(record) or record).__name__
                    self.missing.append(f"{where}.{name}: no field {name!r} in {owner}")
                else:
                    self.schema(sub, fields[name], f"{where}.{name}")


def answer_schema(operation: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an operation's 200 answer."""
    content = operation["responses"]["200"]["content"]
    return deref(content["application/json"]["schema"])


def returns_by_operation() -> dict[str, Any]:
    """What the SDK returns for each operation, from ``CALLS`` (the same for all its variants)."""
    returns: dict[str, set[Any]] = {}
    for call in CALLS:
        returns.setdefault(call.operation_id, set()).add(call.returns)
    assert {} == {op: kinds for op, kinds in returns.items() if len(kinds) != 1}
    return {op: next(iter(kinds)) for op, kinds in returns.items()}


def test_the_spec_has_29_operations_and_each_built_one_has_an_sdk_call() -> None:
    """``CALLS`` covers exactly the spec's operations bar ``NOT_YET_BUILT``, by method and path."""
    assert OPERATION_COUNT == len(all_spec_operations())
    assert set() == NOT_YET_BUILT - set(all_spec_operations())
    operations = spec_operations()
    assert OPERATION_COUNT - len(NOT_YET_BUILT) == len(operations)
    assert set(operations) == {call.operation_id for call in CALLS}
    declared = {(call.operation_id, call.method, call.path) for call in CALLS}
    assert {(op, method, path) for op, (method, path, _) in operations.items()} == declared


@pytest.mark.parametrize("operation_id", sorted(spec_operations()))
def test_every_property_of_the_answer_is_a_field_of_its_record(operation_id: str) -> None:
    """Each property of the operation's answer schema, at any depth, is a record field."""
    _, _, operation = spec_operations()[operation_id]
    returns = returns_by_operation()[operation_id]
    schema = answer_schema(operation)
    walk = Walk()
    if returns is bytes:
        # The content of a file: the spec declares a JSON string, the SDK gives the bytes.
        assert "string" == schema["type"]
        return
    walk.schema(schema, returns, operation_id)
    assert [] == walk.missing
    assert walk.checked >= 3  # the walk did reach the answer's properties


def test_the_walk_reports_a_property_that_no_field_holds() -> None:
    """A record lacking one of the schema's properties, here or nested in a list, is reported."""

    @attrs.frozen
    class PartialModel:
        id: str
        created: int | None = None
        shutdown_date: str | None = None
        object: str | None = None

    walk = Walk()
    walk.schema(SPEC["components"]["schemas"]["Model"], PartialModel, "Model")
    list_walk = Walk()
    list_walk.schema(
        answer_schema(spec_operations()["listPaginatedFineTuningJobs"][2]),
        Page[PartialModel],
        "jobs",
    )
    assert ["Model.owned_by: no field 'owned_by' in PartialModel"] == walk.missing
    assert "jobs.data[].status: no field 'status' in PartialModel" in list_walk.missing


def test_the_walk_reports_an_object_held_by_a_scalar() -> None:
    """A nested object the SDK keeps in a str (neither a record nor a dict) is reported."""

    @attrs.frozen
    class FlatJob:
        id: str
        status: str
        error: str | None = None

    walk = Walk()
    walk.schema(SPEC["components"]["schemas"]["FineTuningJob"], FlatJob, "job")
    assert "job.error: an object, held by str | None" in walk.missing


def test_the_walk_follows_the_real_records_deep() -> None:
    """The walk reaches nested records (method hyperparameters, errors), not just the top."""
    walk = Walk()
    walk.schema(SPEC["components"]["schemas"]["FineTuningJob"], FineTuningJob, "job")
    assert [] == walk.missing
    top_level = len(SPEC["components"]["schemas"]["FineTuningJob"]["properties"])
    assert walk.checked > top_level + 20
    model_walk = Walk()
    model_walk.schema(SPEC["components"]["schemas"]["Model"], Model, "model")
    assert [] == model_walk.missing
