"""Schemathesis against the emulator, with the vendored facts spec: no request gets a 5xx.

One test per spec operation that the emulator serves, each fed by schemathesis (its examples,
coverage and fuzzing phases) with a fixed seed and a fixed number of generated cases, in
process, against an ``Emulator`` on 127.0.0.1 that the module starts on its own thread. The one
check is "not a server error": the emulator answers every malformed request with a 4xx in the
API's ``{"error": ...}`` shape and keeps 500 for its own bugs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok

from finetune_async.emulator import Emulator
from tests.conftest import SPEC_PATH

if TYPE_CHECKING:
    from collections.abc import Iterator

    from schemathesis import BaseSchema

#: Fixed: the same cases on every run (schemathesis is pinned in the tests group).
SEED = 2026
#: Generated cases per operation in the fuzzing phase: 23 operations, about 350 in all. The
#: examples and coverage phases add their own deterministic cases (about 2,000 more requests).
MAX_EXAMPLES = 15
AUTH = {"Authorization": "Bearer test"}
#: Operations of the facts spec that the emulator does not serve yet (docs/architecture.md's second
#: wave): the Uploads API (four operations) and the graders (run and validate).
UNSERVED = r"^/(uploads|fine_tuning/alpha/graders)(/|$)"

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # No example database: a run replays nothing from an earlier one.
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
    }
)
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH, config=CONFIG).exclude(path_regex=UNSERVED)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the whole module, on its own thread (the cases are sent blocking)."""
    with Emulator(speed=0, seed=SEED) as running:
        yield running


def operations(schema: BaseSchema) -> set[str]:
    """``"METHOD /path"`` of every operation in ``schema``; a schema error fails the test."""
    names = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        names.add(f"{operation.method.upper()} {operation.path}")
    return names


def test_the_unserved_operations_are_the_only_ones_left_out() -> None:
    """Every operation of the spec is tested except the six the emulator does not serve."""
    everything = schemathesis.openapi.from_path(SPEC_PATH, config=CONFIG)
    assert [
        "POST /fine_tuning/alpha/graders/run",
        "POST /fine_tuning/alpha/graders/validate",
        "POST /uploads",
        "POST /uploads/{upload_id}/cancel",
        "POST /uploads/{upload_id}/complete",
        "POST /uploads/{upload_id}/parts",
    ] == sorted(operations(everything) - operations(SCHEMA))
    assert 23 == len(operations(SCHEMA))


@SCHEMA.parametrize()
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case[Any], emu: Emulator
) -> None:
    """A generated request, valid or not, never gets a 5xx from the emulator."""
    response = case.call(base_url=emu.url, headers=AUTH, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
