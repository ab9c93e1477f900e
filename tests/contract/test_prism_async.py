"""Every operation of the official spec, through ``AsyncClient``, against Stoplight Prism.

Prism serves ``openai-finetune-facts.yaml`` with ``--errors``: a request that breaks the spec gets
a 422 instead of an answer, and its log names the violation. Static mode answers the spec's
examples; dynamic mode (one server per seed) answers random schema-valid JSON with extra keys and
nulls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pytest

from finetune_async import AsyncClient, UnprocessableEntityError
from tests.contract.conftest import PRISM_MODES, PRISM_SEEDS
from tests.contract.operations import (
    BASE_MODEL,
    CALLS,
    Call,
    RecordingTransport,
    assert_contract,
    call_async,
    mismatches,
    nulls,
    unknown_keys,
    violations,
)

if TYPE_CHECKING:
    from tests.contract.conftest import NodeServer

API_KEY = "sk-contract"


def prism_client(prism: NodeServer, wire: RecordingTransport) -> AsyncClient:
    """A client on Prism's origin (no ``/v1``) that surfaces the first error as it is."""
    return AsyncClient(api_key=API_KEY, base_url=prism.origin, max_retries=0, transport=wire)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", PRISM_MODES)
@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.name)
async def test_every_operation_is_valid_and_answers_its_typed_record(
    prism_servers: dict[str, NodeServer], mode: str, call: Call
) -> None:
    """One valid request to the operation's path, and the answer kept whole in its record."""
    prism = prism_servers[mode]
    wire = RecordingTransport()
    offset = prism.log_size()
    async with prism_client(prism, wire) as client:
        result = await call_async(client, call)
    assert_contract(call, result, wire.exchanges, prism.origin, prism.log_since(offset))


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", PRISM_SEEDS)
async def test_dynamic_answers_carry_unknown_keys_and_nulls_that_are_tolerated(
    prism_servers: dict[str, NodeServer], seed: int
) -> None:
    """Dynamic mode really sends what leniency is for (unknown keys, nulls), and all structures."""
    prism = prism_servers[f"dynamic-{seed}"]
    wire = RecordingTransport()
    unknown: list[str] = []
    null_count = 0
    async with prism_client(prism, wire) as client:
        for call in CALLS:
            if call.returns is bytes:
                continue
            result = await call_async(client, call)
            raw = orjson.loads(wire.exchanges[-1][1].body)
            assert [] == mismatches(raw, result), call.name
            unknown += unknown_keys(raw, result)
            null_count += nulls(raw)
    assert [] != unknown
    assert null_count > 0


@pytest.mark.asyncio
async def test_a_request_that_breaks_the_spec_gets_a_422_and_a_logged_violation(
    prism_servers: dict[str, NodeServer],
) -> None:
    """The checks above can fail: a job without ``training_file`` is refused and logged."""
    prism = prism_servers["static"]
    wire = RecordingTransport()
    offset = prism.log_size()
    async with prism_client(prism, wire) as client:
        with pytest.raises(UnprocessableEntityError) as caught:
            await client.request("POST", "/fine_tuning/jobs", dict, body={"model": BASE_MODEL})
    assert 422 == caught.value.status_code
    assert "training_file" in orjson.dumps(caught.value.body).decode()
    logged = violations(prism.log_since(offset))
    assert any("training_file" in line for line in logged), logged
