"""``jobs.list(metadata=...)``: None lists every job, ``{}`` only the jobs without metadata.

The spec's ``metadata`` query parameter is a nullable deepObject: ``metadata[k]=v`` pairs, or
``metadata=null`` for the jobs that have none. The SDK spells that ``metadata={}``, since None has
always meant "no filter". The wire form is checked against a recording server, the emulator and
Prism (which refuses only the null, as a query string cannot carry one). The blocking twin is
checked here too, against an emulator on its own thread (never the blocking client on a loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from finetune_async import AsyncClient, Client, InvalidParameterError, UnprocessableEntityError
from finetune_async.emulator import Emulator
from tests.contract.conftest import (
    PRISM_JS,
    PRISM_PACKAGE,
    NodeServer,
    node_for,
    prism_argv,
    start_all,
)
from tests.contract.operations import violations

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from finetune_async.types import FineTuningJob, Page

MODEL = "gpt-4o-mini-2024-07-18"
EMPTY_PAGE = {"object": "list", "data": [], "has_more": False}


def training_file() -> bytes:
    """A valid ten-example supervised file."""
    rows: list[dict[str, Any]] = [
        {"messages": [{"role": "user", "content": f"{i}?"}, {"role": "assistant", "content": "ok"}]}
        for i in range(10)
    ]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def three_jobs(api: AsyncClient) -> dict[str, str]:
    """A job tagged ``team=a``, one without metadata, one with ``{}``; ids by name."""
    uploaded = await api.files.create(file=("t.jsonl", training_file()), purpose="fine-tune")
    tagged = await api.fine_tuning.jobs.create(
        model=MODEL, training_file=uploaded.id, metadata={"team": "a"}
    )
    untagged = await api.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
    empty = await api.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id, metadata={})
    return {"tagged": tagged.id, "untagged": untagged.id, "empty": empty.id}


@pytest_asyncio.fixture
async def recorder() -> AsyncIterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 answering empty job pages; its base URL and the query strings."""
    seen: list[str] = []

    async def list_jobs(request: web.Request) -> web.Response:
        seen.append(request.query_string)
        return web.json_response(EMPTY_PAGE)

    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs", list_jobs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1", seen
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_an_empty_dict_sends_metadata_null_and_none_sends_no_filter(
    recorder: tuple[str, list[str]],
) -> None:
    """``{}`` is sent as ``metadata=null``; None (or nothing) sends no metadata parameter."""
    url, seen = recorder
    async with AsyncClient(base_url=url, api_key="test", max_retries=0) as api:
        for metadata in ({}, None, {"team": "a"}):
            assert [] == [job async for job in api.fine_tuning.jobs.list(metadata=metadata)]
        assert [] == [job async for job in api.fine_tuning.jobs.list()]
    assert ["metadata=null", "", "metadata[team]=a", ""] == [
        "&".join(p for p in query.split("&") if p.startswith("metadata")) for query in seen
    ]


@pytest.mark.asyncio
async def test_the_filters_select_the_jobs_on_the_emulator() -> None:
    """None: all three jobs; ``{}``: the two without metadata; a pair: the tagged one."""
    async with (
        Emulator(speed=0) as emu,
        AsyncClient(base_url=emu.url, api_key="test", max_retries=0) as api,
    ):
        ids = await three_jobs(api)
        every = [job.id async for job in api.fine_tuning.jobs.list()]
        explicit_none = [job.id async for job in api.fine_tuning.jobs.list(metadata=None)]
        without = [job.id async for job in api.fine_tuning.jobs.list(metadata={})]
        tagged = [job.id async for job in api.fine_tuning.jobs.list(metadata={"team": "a"})]
    assert [ids["empty"], ids["untagged"], ids["tagged"]] == every == explicit_none
    assert [ids["empty"], ids["untagged"]] == without
    assert [ids["tagged"]] == tagged


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("metadata", "param"),
    [("team=a", "metadata"), ([], "metadata"), ({"team": 1}, "metadata[team]")],
)
async def test_bad_metadata_raises_before_sending(metadata: object, param: str) -> None:
    """A string, a list or a non-string value fails at the call, and nothing reaches the server."""
    async with (
        Emulator(speed=0) as emu,
        AsyncClient(base_url=emu.url, api_key="test", max_retries=0) as api,
    ):
        with pytest.raises(InvalidParameterError) as caught:
            api.fine_tuning.jobs.list(metadata=metadata)  # type: ignore[arg-type]
        sent = emu.stats.total
    assert param == caught.value.param
    assert 0 == sent


# --- through Prism ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeServer]:
    """Prism serving the facts spec with ``--errors`` (static answers), as the contract tests."""
    node = node_for(PRISM_PACKAGE, PRISM_JS)
    log = tmp_path_factory.mktemp("prism-metadata") / "static.log"
    server = NodeServer("prism static (jobs.list metadata)", prism_argv(node, None), log)
    start_all([server])
    yield server
    server.stop()


async def first_page(api: AsyncClient, metadata: dict[str, str]) -> Page[FineTuningJob]:
    """The first page of ``jobs.list(limit=5, metadata=...)`` (Prism always has more)."""
    pages = api.fine_tuning.jobs.list(limit=5, metadata=metadata).pages()
    try:
        return await anext(pages)
    finally:
        await pages.aclose()


@pytest.mark.asyncio
async def test_through_prism_only_the_null_a_query_string_cannot_carry_is_refused(
    prism: NodeServer,
) -> None:
    """Prism takes the pair filter, and of ``metadata=null`` refuses only the null itself.

    A query string has no null: Prism reads ``metadata=null`` as the string "null" against the
    parameter's ``object | null`` schema. The rest of the request (path, ``limit``) passes, and
    the pair form is valid, so the one disagreement is that documented spelling (the API
    reference: "set metadata=null to indicate no metadata"), which the emulator honours.
    """
    async with AsyncClient(base_url=prism.origin, api_key="sk-contract", max_retries=0) as api:
        offset = prism.log_size()
        tagged = await first_page(api, {"team": "nlp"})
        accepted = violations(prism.log_since(offset))
        with pytest.raises(UnprocessableEntityError) as caught:
            await first_page(api, {})
    assert [] == accepted
    assert tagged.data
    assert isinstance(caught.value.body, dict)
    assert [
        {
            "location": ["query", "metadata"],
            "severity": "Error",
            "code": "type",
            "message": "Request query parameter metadata must be object,null",
        }
    ] == caught.value.body["validation"]


# --- the blocking twin ---------------------------------------------------------------------------


def test_the_blocking_twin_takes_the_same_spellings() -> None:
    """``Client.fine_tuning.jobs.list``: None every job, ``{}`` the ones without metadata."""
    with Emulator(speed=0) as emu, Client(base_url=emu.url, api_key="test") as client:
        uploaded = client.files.create(file=("t.jsonl", training_file()), purpose="fine-tune")
        tagged = client.fine_tuning.jobs.create(
            model=MODEL, training_file=uploaded.id, metadata={"team": "a"}
        )
        untagged = client.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
        every = [job.id for job in client.fine_tuning.jobs.list()]
        without = [job.id for job in client.fine_tuning.jobs.list(metadata={})]
        with pytest.raises(InvalidParameterError):
            client.fine_tuning.jobs.list(metadata=["team"])  # type: ignore[arg-type]
        sent = emu.stats.total
    assert [untagged.id, tagged.id] == every
    assert [untagged.id] == without
    # Upload, two creates and two listings: the bad call sent nothing.
    assert 5 == sent
