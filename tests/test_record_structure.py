"""The generated record structure functions give what cattrs' own generated functions give.

``_record_structure`` replaces cattrs' per-class functions on the hot path; these tests hold it to
the same results on every recorded payload (and every nested record in it), and to the same
errors on bad input.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
from cattrs.gen import make_dict_structure_fn

from finetune_async._converter import converter
from finetune_async._record_structure import can_generate, make_record_structure
from finetune_async.types import (
    Batch,
    CheckpointPermission,
    CheckpointPermissionDeleted,
    FileDeleted,
    FileObject,
    FineTuningIntegration,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobStatus,
    Hyperparameters,
    Method,
    MethodType,
    Model,
    ModelDeleted,
    Page,
    StepMetrics,
    WandbIntegration,
)
from finetune_async.types.batches import BatchErrors

PAYLOADS = Path(__file__).parent / "payloads"


def _type_of(name: str) -> Any:
    """The record a recorded payload is structured into, from its file name."""
    named: dict[str, Any] = {
        "batch_list_page.json": Page[Batch],
        "file_deleted.json": FileDeleted,
        "file_list_no_has_more.json": Page[FileObject],
        "file_list_page.json": Page[FileObject],
        "checkpoint_metrics_partial.json": Page[FineTuningJobCheckpoint],
        "checkpoints_list.json": Page[FineTuningJobCheckpoint],
        "event_unknown_level_and_type.json": Page[FineTuningJobEvent],
        "events_list.json": Page[FineTuningJobEvent],
        "jobs_list_empty.json": Page[FineTuningJob],
        "jobs_list_has_more_missing.json": Page[FineTuningJob],
        "permission_deleted.json": CheckpointPermissionDeleted,
        "permissions_list.json": Page[CheckpointPermission],
    }
    if name in named:
        return named[name]
    prefixes: dict[str, Any] = {
        "job_": FineTuningJob,
        "batch_": Batch,
        "file_": FileObject,
        "model_deleted": ModelDeleted,
        "model_": Model,
    }
    for prefix, into in prefixes.items():
        if name.startswith(prefix):
            return into
    return None


CASES = [
    (path.name, _type_of(path.name))
    for path in sorted(PAYLOADS.glob("*.json"))
    if _type_of(path.name) is not None
]


def _records_in(tp: Any) -> list[Any]:
    """The record classes a field type can hold directly or as list items."""
    found = []
    for arg in typing.get_args(tp) if typing.get_origin(tp) else (tp,):
        if typing.get_origin(arg) is list:
            found.extend(_records_in(typing.get_args(arg)[0]))
        elif typing.get_origin(arg) in (typing.Union, types.UnionType):
            found.extend(_records_in(arg))
        elif isinstance(arg, type) and attrs.has(arg):
            found.append(arg)
    return found


def _pairs(value: Any, cls: Any) -> list[tuple[Any, Any]]:
    """``(payload, class)`` for ``cls`` and every nested record the payload holds."""
    if not isinstance(value, dict) or not can_generate(cls):
        return []
    pairs = [(value, cls)]
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        inner = value.get(field.name)
        for nested in _records_in(hints[field.name]):
            items = inner if isinstance(inner, list) else [inner]
            for item in items:
                pairs.extend(_pairs(item, nested))
    return pairs


def _cattrs_reference(value: Any, cls: Any) -> Any:
    """cattrs' own generated function for ``cls`` (nested fields through the converter)."""
    return make_dict_structure_fn(cls, converter)(value, cls)


def _generated(value: Any, cls: Any) -> Any:
    return make_record_structure(cls, converter.get_structure_hook)(value, cls)


def _typed_fields(record: Any) -> list[tuple[str, Any, type]]:
    """Every field with its value and exact type, so ``3 == 3.0`` or enum vs str cannot pass."""
    return [
        (field.name, getattr(record, field.name), type(getattr(record, field.name)))
        for field in attrs.fields(type(record))
    ]


def test_cases_cover_every_payload() -> None:
    """Every recorded payload file has a record type here, so none escapes the comparison."""
    assert len(list(PAYLOADS.glob("*.json"))) == len(CASES)


@pytest.mark.parametrize(("name", "into"), CASES, ids=[name for name, _ in CASES])
def test_generated_equals_cattrs_on_every_recorded_payload(name: str, into: Any) -> None:
    """Each record in each payload, nested ones included, structures as cattrs' function does."""
    payload = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    items = payload.get("data", []) if typing.get_origin(into) is Page else [payload]
    item_type = typing.get_args(into)[0] if typing.get_origin(into) is Page else into
    pairs = [pair for item in items for pair in _pairs(item, item_type)]
    if items:
        assert pairs, "the payload must hold at least one record to compare"
    for value, cls in pairs:
        expected = _cattrs_reference(value, cls)
        assert _typed_fields(expected) == _typed_fields(_generated(value, cls))


def test_lenient_values_match_cattrs() -> None:
    """A float timestamp, a number for a string and unknown keys come out as cattrs makes them."""
    payload = {
        "id": 12345,
        "status": "queued",
        "created_at": 1714000000.0,
        "model": 7,
        "surprise": {"nested": True},
    }
    expected = _cattrs_reference(payload, FineTuningJob)
    assert _typed_fields(expected) == _typed_fields(_generated(payload, FineTuningJob))
    assert ("12345", 1714000000, "7") == (expected.id, expected.created_at, expected.model)


def test_known_status_is_the_enum_member_and_unknown_stays_a_string() -> None:
    """Open enums: a known value gives the member, an unknown one the string as sent."""
    known = converter.structure({"id": "j", "status": "running"}, FineTuningJob)
    unknown = converter.structure({"id": "j", "status": "compressing"}, FineTuningJob)
    assert (FineTuningJobStatus.RUNNING, FineTuningJobStatus) == (known.status, type(known.status))
    assert ("compressing", str) == (unknown.status, type(unknown.status))


def test_hyperparameters_keep_auto_and_numbers_as_sent() -> None:
    """``"auto"``, an int and a float are kept with their own types."""
    record = converter.structure(
        {"batch_size": "auto", "learning_rate_multiplier": 1.8, "n_epochs": 3}, Hyperparameters
    )
    assert [("auto", str), (1.8, float), (3, int)] == [
        (value, type(value)) for value in attrs.astuple(record)
    ]


def test_bad_hyperparameter_value_is_refused() -> None:
    """A hyperparameter that is neither "auto" nor a number raises TypeError naming the value."""
    with pytest.raises(TypeError, match=r"\[1, 2\]"):
        converter.structure({"n_epochs": [1, 2]}, Hyperparameters)


def test_missing_required_field_raises_key_error() -> None:
    """A job without ``status`` raises KeyError('status'), as cattrs' function does."""
    with pytest.raises(KeyError, match="status"):
        _generated({"id": "ftjob-1"}, FineTuningJob)


@pytest.mark.parametrize("value", [[], "ftjob-1", 3, None])
def test_non_object_is_refused(value: Any) -> None:
    """Only a JSON object becomes a record: anything else raises TypeError naming the record."""
    with pytest.raises(TypeError, match="expected a JSON object for FineTuningJob"):
        converter.structure(value, FineTuningJob)


def test_absent_fields_take_their_defaults_and_factories() -> None:
    """Absent keys give the class defaults; a factory default is a fresh object each time."""
    first = converter.structure({}, BatchErrors)
    second = converter.structure({}, BatchErrors)
    assert ([], None) == (first.data, first.object)
    assert first.data is not second.data


def test_non_none_default_is_kept_when_the_key_is_absent() -> None:
    """``FineTuningIntegration.type`` defaults to "wandb" when the key is left out."""
    integration = converter.structure({"wandb": {"project": "p"}}, FineTuningIntegration)
    assert ("wandb", WandbIntegration(project="p")) == (integration.type, integration.wandb)


def test_azure_spelling_fills_organization_id_and_wire_name_wins() -> None:
    """``organisation_id`` is read when ``organization_id`` is absent, never over it."""
    azure = converter.structure(
        {"id": "j", "status": "queued", "organisation_id": "o"}, FineTuningJob
    )
    both = converter.structure(
        {"id": "j", "status": "queued", "organisation_id": "a", "organization_id": "b"},
        FineTuningJob,
    )
    assert ("o", "b") == (azure.organization_id, both.organization_id)


def test_nested_method_structures_to_records() -> None:
    """A method's nested records are records, not dicts."""
    method = converter.structure({"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}, Method)
    assert MethodType.DPO == method.type
    assert method.dpo is not None
    assert method.dpo.hyperparameters is not None
    assert 0.1 == method.dpo.hyperparameters.beta


def test_step_metrics_extra_factory_default() -> None:
    """A record with a factory default and a required int is generated too."""
    rows = converter.structure({"step": 3.0}, StepMetrics)
    assert (3, {}) == (rows.step, rows.extra)


def test_generic_records_are_left_to_cattrs() -> None:
    """``Page[T]`` is generic: its type variable is cattrs' to resolve, not generated here."""
    assert (False, False, True) == (
        can_generate(Page),
        can_generate(Page[FineTuningJob]),
        can_generate(FineTuningJob),
    )
