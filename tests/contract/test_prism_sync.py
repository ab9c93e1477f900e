"""Every operation of the official spec, through the blocking ``Client``, against Prism.

The same calls as ``test_prism_async`` (one line each, run on either client), checked the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from finetune_async import Client
from tests.contract.conftest import PRISM_MODES
from tests.contract.operations import (
    CALLS,
    Call,
    RecordingTransport,
    assert_contract,
    call_blocking,
)

if TYPE_CHECKING:
    from tests.contract.conftest import NodeServer


@pytest.mark.parametrize("mode", PRISM_MODES)
@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.name)
def test_every_operation_is_valid_and_answers_its_typed_record(
    prism_servers: dict[str, NodeServer], mode: str, call: Call
) -> None:
    """One valid request to the operation's path, and the answer kept whole in its record."""
    prism = prism_servers[mode]
    wire = RecordingTransport()
    offset = prism.log_size()
    with Client(
        api_key="sk-contract", base_url=prism.origin, max_retries=0, transport=wire
    ) as client:
        result = call_blocking(client, call)
    assert_contract(call, result, wire.exchanges, prism.origin, prism.log_since(offset))
