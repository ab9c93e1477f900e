"""The SDK against broken and hostile servers: no credential in any error, no redirect followed.

Every server here writes raw bytes on loopback (``tests.hostile.RawServer``), as the outside
audit's probes did: malformed answers, redirects, oversized and inflating bodies.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import traceback
import tracemalloc
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import pytest

from finetune_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AsyncClient,
    Client,
    FinetuneError,
    InvalidParameterError,
)
from tests.conftest import NO_BACKOFF
from tests.hostile import RawServer, fixed, json_answer

if TYPE_CHECKING:
    from collections.abc import Awaitable

T = TypeVar("T")

JOB = {
    "object": "fine_tuning.job",
    "id": "ftjob-hostile",
    "model": "gpt-4o-mini",
    "created_at": 1721764800,
    "status": "queued",
    "training_file": "file-train",
}

#: A distinct secret in every credential a client can send.
SECRETS = {
    "bearer": "sk-SECRET-bearer-1111",
    "azure": "SECRET-azure-key-2222",
    "portkey": "SECRET-portkey-key-3333",
    "virtual": "SECRET-virtual-key-4444",
    "config": "SECRET-config-key-5555",
    "provider": "SECRET-provider-key-6666",
}

#: The audit's malformed answers: each breaks the HTTP parser or the body framing.
MALFORMED: dict[str, bytes] = {
    "bad status line": b"HTTP/1.1 abc\r\n\r\n",
    "not HTTP at all": b"\x00\x01\x02garbage\r\n\r\n",
    "bad header line": b"HTTP/1.1 200 OK\r\nthis is not a header\r\nContent-Length: 2\r\n\r\n{}",
    "header line over 8190 bytes": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    "bad chunk size": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    ),
    "body shorter than its length": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
    ),
}


async def bounded(call: Awaitable[T]) -> T:
    """Await a call, failing the test instead of hanging."""
    return await asyncio.wait_for(call, 20)


def clients_for(url: str) -> dict[str, AsyncClient]:
    """Every way of building a client, each carrying its own planted secrets."""
    options: dict[str, Any] = {"backoff": NO_BACKOFF, "max_retries": 0}
    endpoint = url.removesuffix("/v1")
    return {
        "openai": AsyncClient(api_key=SECRETS["bearer"], base_url=url, **options),
        "azure": AsyncClient.for_azure(
            endpoint=endpoint, api_key=SECRETS["azure"], api_version="2025-04-01", **options
        ),
        "portkey": AsyncClient.for_portkey(
            api_key=SECRETS["portkey"],
            virtual_key=SECRETS["virtual"],
            config={"provider": "openai", "api_key": SECRETS["config"]},
            provider_api_key=SECRETS["provider"],
            base_url=url,
            **options,
        ),
    }


def leaked(text: str) -> list[str]:
    """The planted secrets that appear in ``text``."""
    return [name for name, secret in SECRETS.items() if secret in text]


def everything_shown(exc: BaseException) -> str:
    """What a user, a log or a traceback can show of an exception, its causes included."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_answers_leak_no_credential(case: str) -> None:
    """For every client kind, the error names the failure and holds none of the secrets."""
    async with RawServer(fixed(MALFORMED[case])) as server:
        for kind, client in clients_for(server.url).items():
            async with client:
                with pytest.raises(FinetuneError) as caught:
                    await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))
            exc = caught.value
            assert isinstance(exc, APIConnectionError | APIResponseValidationError), (kind, exc)
            assert [] == leaked(everything_shown(exc)), (kind, case)
            assert "RequestInfo" not in str(exc)
        # Each client's request did carry its secrets: the test would catch a leak.
        sent = "\n".join(str(r.headers) for r in server.requests)
        assert set(SECRETS) == {name for name, secret in SECRETS.items() if secret in sent}


@pytest.mark.asyncio
async def test_a_server_that_echoes_the_key_sees_it_scrubbed_from_the_message() -> None:
    """Server bytes quoted in a message are scrubbed of the request's credentials."""
    echo = b"HTTP/1.1 200 OK\r\nX-Echo: Bearer " + SECRETS["bearer"].encode() + b"\r\n" * 1
    echo += b"Bad " + SECRETS["bearer"].encode() + b"\r\n\r\n"
    async with RawServer(fixed(echo)) as server, clients_for(server.url)["openai"] as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))
    assert [] == leaked(str(caught.value))


@pytest.mark.asyncio
async def test_malformed_answer_message_names_the_failure() -> None:
    """The message says what was wrong (not valid HTTP), and which call it was."""
    answer = fixed(MALFORMED["bad status line"])
    async with RawServer(answer) as server, clients_for(server.url)["openai"] as client:
        with pytest.raises(APIConnectionError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))
    message = str(caught.value)
    assert "not valid HTTP" in message
    assert "GET http://127.0.0.1:" in message


def test_cli_stderr_on_a_malformed_answer_holds_no_credential() -> None:
    """The command line prints one error line, without the key, for every malformed answer."""
    for case, data in MALFORMED.items():
        with RawServer(fixed(data)).in_thread() as server:
            env = {**os.environ, "NO_COLOR": "1"}
            env.pop("OPENAI_API_KEY", None)
            result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
                [
                    sys.executable,
                    "-m",
                    "finetune_async",
                    "jobs",
                    "get",
                    "ftjob-hostile",
                    "--base-url",
                    server.url,
                    "--api-key",
                    SECRETS["bearer"],
                    "--max-retries",
                    "0",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
                check=False,
            )
        assert 1 == result.returncode, (case, result.stderr)
        assert [] == leaked(result.stdout + result.stderr), case
        assert "Traceback" not in result.stderr


def test_settings_repr_masks_every_key() -> None:
    """The client's private settings record shows no credential in its repr."""
    clients = clients_for("http://127.0.0.1:9/v1")
    shown = "\n".join(repr(c._settings) for c in clients.values())
    assert [] == leaked(shown)
    assert "***" in shown
    extra = AsyncClient(
        api_key=SECRETS["bearer"],
        base_url="http://127.0.0.1:9/v1",
        default_headers={"X-Api-Key": SECRETS["azure"], "X-Trace": "visible"},
    )
    assert [] == leaked(repr(extra._settings))
    assert "visible" in repr(extra._settings)


# --- redirects ----------------------------------------------------------------------------------


def redirect(status: str, location: str) -> bytes:
    body = b'{"moved": true}'
    return json_answer(body, status=status, extra=f"Location: {location}\r\n")


@pytest.mark.asyncio
@pytest.mark.parametrize("status", ["301 Moved Permanently", "302 Found", "307 Temporary Redirect"])
async def test_redirects_are_reported_not_followed(status: str) -> None:
    """A 3xx raises APIStatusError with the Location; nothing reaches the other origin."""
    async with RawServer(fixed(json_answer(orjson.dumps(JOB)))) as elsewhere:
        target = f"{elsewhere.url}/fine_tuning/jobs"
        async with RawServer(fixed(redirect(status, target))) as server:
            for kind, client in clients_for(server.url).items():
                async with client:
                    with pytest.raises(APIStatusError) as caught:
                        await bounded(
                            client.fine_tuning.jobs.create(
                                model="gpt-4o-mini", training_file="file-train"
                            )
                        )
                exc = caught.value
                assert int(status[:3]) == exc.status_code, kind
                assert target in str(exc)
                assert "not followed" in str(exc)
                assert [] == leaked(everything_shown(exc))
            assert 3 == len(server.requests)
        assert [] == elsewhere.requests


@pytest.mark.asyncio
async def test_a_redirect_loop_ends_at_the_first_answer() -> None:
    """A server redirecting to itself gets one request per call, and a clear error."""
    async with RawServer() as server:
        server._answers = [fixed(redirect("302 Found", f"{server.url}/fine_tuning/jobs/x"))]
        async with clients_for(server.url)["openai"] as client:
            with pytest.raises(APIStatusError) as caught:
                await bounded(client.fine_tuning.jobs.retrieve("x"))
        assert 1 == len(server.requests)
    assert 302 == caught.value.status_code


@pytest.mark.asyncio
async def test_a_download_redirect_is_reported_and_leaves_no_file(tmp_path: Any) -> None:
    """files.download of a redirecting server raises and leaves nothing behind."""
    answer = fixed(redirect("302 Found", "http://127.0.0.1:9/elsewhere"))
    async with RawServer(answer) as server, clients_for(server.url)["openai"] as client:
        with pytest.raises(APIStatusError):
            await bounded(client.files.download("file-x", tmp_path / "out.jsonl"))
    assert [] == list(tmp_path.iterdir())


# --- size caps ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    """`Content-Length: 2147483648` is refused at once, without reading the body."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n"
    )
    async with (
        RawServer(fixed(head + b"{", close=False)) as server,
        AsyncClient(api_key="sk-test", base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(APIResponseValidationError) as caught:
            await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))
    assert "declares 2,147,483,648 bytes" in str(caught.value)
    assert "max_response_size" in str(caught.value)


@pytest.mark.asyncio
async def test_a_gzip_bomb_stops_at_the_cap_without_inflating_it_all() -> None:
    """A small gzip body that inflates past the cap raises, and memory stays near the cap."""
    inflated = 64 * 2**20
    bomb = gzip.compress(b'{"id": "' + b"a" * inflated + b'"}', compresslevel=9)
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(bomb)}\r\n\r\n"
    ).encode()
    cap = 2**20
    async with (
        RawServer(fixed(head + bomb)) as server,
        AsyncClient(
            api_key="sk-test", base_url=server.url, max_retries=0, max_response_size=cap
        ) as client,
    ):
        tracemalloc.start()
        try:
            with pytest.raises(APIResponseValidationError) as caught:
                await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(bomb) < cap  # the declared size passed: only decoding can catch it
    assert "decodes to more than 1,048,576 bytes" in str(caught.value)
    assert peak < 16 * cap  # far below the 64 MiB the body inflates to


@pytest.mark.asyncio
async def test_answers_within_the_cap_and_compressed_ones_are_read() -> None:
    """A gzip answer under the cap, and a chunked one, structure as usual."""
    body = orjson.dumps(JOB)
    packed = gzip.compress(body)
    gz = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(packed)}\r\n\r\n"
    ).encode() + packed
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    async with (
        RawServer(fixed(gz), fixed(chunked)) as server,
        AsyncClient(api_key="sk-test", base_url=server.url, max_response_size=len(body)) as client,
    ):
        first = await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))
        second = await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))
    assert "ftjob-hostile" == first.id == second.id


@pytest.mark.asyncio
async def test_a_chunked_answer_over_the_cap_is_refused() -> None:
    """An answer without a length is counted as it arrives."""
    body = b'{"id": "' + b"a" * 5000 + b'"}'
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    async with (
        RawServer(fixed(chunked)) as server,
        AsyncClient(
            api_key="sk-test", base_url=server.url, max_retries=0, max_response_size=1000
        ) as client,
    ):
        with pytest.raises(APIResponseValidationError):
            await bounded(client.fine_tuning.jobs.retrieve("ftjob-hostile"))


@pytest.mark.asyncio
async def test_file_content_is_not_capped() -> None:
    """files.content reads a file's bytes whole, whatever max_response_size says."""
    data = b"x" * 5000
    answer = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    async with (
        RawServer(fixed(answer)) as server,
        AsyncClient(api_key="sk-test", base_url=server.url, max_response_size=100) as client,
    ):
        assert data == await bounded(client.files.content("file-x"))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "64MB", True])
def test_a_bad_max_response_size_is_refused(bad: object) -> None:
    """max_response_size must be a positive integer or None."""
    with pytest.raises(InvalidParameterError, match="max_response_size"):
        AsyncClient(api_key="sk-test", max_response_size=bad)  # type: ignore[arg-type]


def test_the_blocking_client_takes_max_response_size() -> None:
    """Client accepts the same setting (and refuses the same bad values)."""
    with Client(api_key="sk-test", max_response_size=None) as client:
        assert client._async._settings.max_response_size is None
    with pytest.raises(InvalidParameterError):
        Client(api_key="sk-test", max_response_size=0)


# --- empty keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_api_key_is_refused_like_a_missing_one(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty key (OPENAI_API_KEY= in a .env file) is a local error, not a 401."""
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with pytest.raises(InvalidParameterError, match="no API key"):
        AsyncClient()
    with pytest.raises(InvalidParameterError, match="empty"):
        AsyncClient(api_key=key)
