"""``emu.stats.requests``: a ring of the last requests, with every credential redacted."""

from __future__ import annotations

import aiohttp
import pytest

from finetune_async.emulator import Emulator, Limits, RequestLog, RequestRecord

AUTH = {"Authorization": "Bearer sk-secret-1"}
MODEL_PATH = "/models/gpt-4o-mini"
CREDENTIALS = {
    "api-key": "azure-secret",
    "x-portkey-api-key": "pk-secret",
    "x-portkey-virtual-key": "vk-secret",
    "x-portkey-config": "pc-secret",
    "X-Goog-Api-Key": "goog-secret",
    "x-amz-security-token": "amz-secret",
    "X-Client-Secret": "client-secret",
    "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
}
PLAIN = {
    "x-portkey-provider": "openai",
    "x-portkey-trace-id": "trace-1",
    "Idempotency-Key": "idem-1",
    "X-Test": "yes",
}


def record(n: int) -> RequestRecord:
    """A record whose path tells it apart."""
    return RequestRecord(0.0, "GET", f"/v1/{n}", "GET /x", 200, None, {})


def test_the_log_keeps_the_last_maxlen_records_oldest_first() -> None:
    """Appending past ``maxlen`` drops the oldest; ``appended`` counts all of them."""
    log = RequestLog(3)
    for n in range(5):
        log.append(record(n))
    assert ["/v1/2", "/v1/3", "/v1/4"] == [r.path for r in log]
    assert (3, 3, 5) == (len(log), log.maxlen, log.appended)
    assert "/v1/4" == log[-1].path
    assert ["/v1/4", "/v1/3", "/v1/2"] == [r.path for r in reversed(log)]
    assert ["/v1/3", "/v1/4"] == [r.path for r in log[1:]]
    assert [record(2), record(3), record(4)] == log
    assert log == (record(2), record(3), record(4))
    assert [] == RequestLog()
    assert [record(4)] != log


@pytest.mark.asyncio
async def test_the_emulator_keeps_a_configured_number_of_requests_and_counts_them_all() -> None:
    """With ``request_log=5``, 12 requests keep the last 5, ``total`` is 12, reset keeps 5."""
    async with (
        Emulator(limits=Limits(request_log=5)) as emu,
        aiohttp.ClientSession(headers=AUTH) as http,
    ):
        for n in range(12):
            async with http.get(f"{emu.url}/models/m-{n}") as resp:
                await resp.read()
        kept = [r.path for r in emu.stats.requests]
        total = emu.stats.total
        emu.reset_stats()
        fresh = (emu.stats.total, emu.stats.requests.maxlen)
    assert [f"/v1/models/m-{n}" for n in range(7, 12)] == kept
    assert 12 == total
    assert (0, 5) == fresh


@pytest.mark.asyncio
async def test_the_default_log_keeps_ten_thousand_requests() -> None:
    """The default ring is 10,000 records: bounded, and room for any ordinary test."""
    async with Emulator() as emu:
        assert 10_000 == emu.stats.requests.maxlen


@pytest.mark.asyncio
async def test_credentials_are_redacted_and_other_headers_kept() -> None:
    """Authorization, api-key, the Portkey keys and config, and any *key*, *token*, *secret* or
    *authorization* header read ``[redacted]``; Idempotency-Key and the rest are kept as sent."""
    async with (
        Emulator() as emu,
        aiohttp.ClientSession(headers=AUTH) as http,
    ):
        async with http.get(emu.url + MODEL_PATH, headers={**CREDENTIALS, **PLAIN}) as resp:
            assert 200 == resp.status
        (seen,) = emu.stats.requests
    headers = {name.lower(): value for name, value in seen.headers.items()}
    redacted = ["authorization", *(name.lower() for name in CREDENTIALS)]
    assert dict.fromkeys(redacted, "[redacted]") == {name: headers[name] for name in redacted}
    assert {name.lower(): value for name, value in PLAIN.items()} == {
        name.lower(): headers[name.lower()] for name in PLAIN
    }
    secrets = ["sk-secret-1", *CREDENTIALS.values()]
    assert [] == [s for s in secrets if s in repr(seen) or s in repr(emu.stats)]


@pytest.mark.asyncio
async def test_sent_header_tells_which_credential_was_sent_without_keeping_it() -> None:
    """``sent_header`` matches the exact value (any name case) and nothing else."""
    async with (
        Emulator() as emu,
        aiohttp.ClientSession(headers=AUTH) as http,
    ):
        async with http.get(emu.url + MODEL_PATH, headers={"api-key": "azure-secret"}) as resp:
            await resp.read()
        (seen,) = emu.stats.requests
    assert seen.sent_header("authorization", "Bearer sk-secret-1")
    assert seen.sent_header("API-KEY", "azure-secret")
    assert not seen.sent_header("Authorization", "Bearer sk-secret-2")
    assert not seen.sent_header("Authorization", "[redacted]")
    assert not seen.sent_header("x-portkey-api-key", "azure-secret")
    assert seen.sent_header("Host", f"127.0.0.1:{emu.port}")
