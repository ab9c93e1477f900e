"""Client construction: the environment, Portkey and Azure constructors, and ``with_options``."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from finetune_async import AsyncClient, InternalServerError, InvalidParameterError, Timeout
from tests.conftest import API_KEY, BASE_URL, NO_BACKOFF, MockAPI

if TYPE_CHECKING:
    from collections.abc import Mapping

JOB_ID = "ftjob-abc123"
JOB_PAYLOAD: dict[str, Any] = {"object": "fine_tuning.job", "id": JOB_ID, "status": "running"}
PAGE_PAYLOAD: dict[str, Any] = {"object": "list", "data": [JOB_PAYLOAD], "has_more": False}
PORTKEY_URL = "https://api.portkey.ai/v1"
AZURE_ENDPOINT = "https://res.openai.azure.com"
AZURE_VERSION = "2025-04-01-preview"
AZURE_JOB_URL = f"{AZURE_ENDPOINT}/openai/fine_tuning/jobs/{JOB_ID}?api-version={AZURE_VERSION}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with no OPENAI_* / PORTKEY_* / AZURE_* variable set."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "PORTKEY_", "AZURE_")):
            monkeypatch.delenv(name)


def headers_of(kwargs: Mapping[str, Any]) -> dict[str, str]:
    """Return the sent headers with lower-case names (HTTP names are case-insensitive)."""
    return {name.lower(): value for name, value in kwargs["headers"].items()}


def url_parts(url: str) -> tuple[str, list[str]]:
    """Split a URL into what precedes the query and its raw pairs, sorted."""
    head, _, query = url.partition("?")
    return head, sorted(query.split("&")) if query else []


async def retrieve_through(mock_api: MockAPI, client: AsyncClient, url: str) -> dict[str, str]:
    """Retrieve JOB_ID answered at ``url``; return the headers sent (the client is closed)."""
    mock_api.get(url, payload=JOB_PAYLOAD)
    async with client:
        job = await client.fine_tuning.jobs.retrieve(JOB_ID)
    assert JOB_ID == job.id
    calls = mock_api.calls()
    assert [("GET", url_parts(url))] == [(m, url_parts(u)) for m, u, _ in calls]
    return headers_of(calls[0][2])


# --- AsyncClient() and the environment ----------------------------------------------------------


@pytest.mark.asyncio
async def test_api_key_comes_from_openai_api_key(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no api_key=, OPENAI_API_KEY is sent as the bearer token."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    headers = await retrieve_through(
        mock_api, AsyncClient(base_url=BASE_URL), f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}"
    )
    assert "Bearer sk-from-env" == headers["authorization"]


@pytest.mark.asyncio
async def test_explicit_api_key_wins_over_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api_key= is used even when OPENAI_API_KEY is set."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    headers = await retrieve_through(
        mock_api,
        AsyncClient(api_key="sk-explicit", base_url=BASE_URL),
        f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}",
    )
    assert "Bearer sk-explicit" == headers["authorization"]


@pytest.mark.asyncio
async def test_base_url_comes_from_openai_base_url(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no base_url=, OPENAI_BASE_URL is where requests go (its path kept)."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
    await retrieve_through(
        mock_api,
        AsyncClient(api_key=API_KEY),
        f"http://127.0.0.1:8080/v1/fine_tuning/jobs/{JOB_ID}",
    )


@pytest.mark.asyncio
async def test_explicit_base_url_wins_over_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """base_url= is used even when OPENAI_BASE_URL is set."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
    await retrieve_through(
        mock_api,
        AsyncClient(api_key=API_KEY, base_url=BASE_URL),
        f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}",
    )


def test_default_base_url_is_openai() -> None:
    """With neither base_url= nor OPENAI_BASE_URL, the client points at api.openai.com/v1."""
    assert "https://api.openai.com/v1" == AsyncClient(api_key=API_KEY).base_url


@pytest.mark.asyncio
async def test_organization_and_project_come_from_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENAI_ORG_ID and OPENAI_PROJECT_ID become OpenAI-Organization and OpenAI-Project."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_env")
    headers = await retrieve_through(
        mock_api,
        AsyncClient(api_key=API_KEY, base_url=BASE_URL),
        f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}",
    )
    assert ("org-env", "proj_env") == (headers["openai-organization"], headers["openai-project"])


@pytest.mark.asyncio
async def test_explicit_organization_and_project_win_over_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """organization= and project= are used even when the environment names others."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_env")
    headers = await retrieve_through(
        mock_api,
        AsyncClient(api_key=API_KEY, base_url=BASE_URL, organization="org-x", project="proj_x"),
        f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}",
    )
    assert ("org-x", "proj_x") == (headers["openai-organization"], headers["openai-project"])


def test_missing_api_key_raises_and_names_the_variable() -> None:
    """No api_key= and no OPENAI_API_KEY raises InvalidParameterError mentioning OPENAI_API_KEY."""
    with pytest.raises(InvalidParameterError, match="OPENAI_API_KEY") as info:
        AsyncClient(base_url=BASE_URL)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("ftp://api.test/v1", id="ftp"),
        pytest.param("api.test/v1", id="no-scheme"),
        pytest.param("//api.test/v1", id="scheme-relative"),
        pytest.param("file:///etc/passwd", id="file"),
    ],
)
def test_base_url_must_be_http_or_https(base_url: str) -> None:
    """A base URL that is not http:// or https:// raises InvalidParameterError naming base_url."""
    with pytest.raises(InvalidParameterError, match="base_url"):
        AsyncClient(api_key=API_KEY, base_url=base_url)


def test_base_url_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-http OPENAI_BASE_URL raises like an explicit one."""
    monkeypatch.setenv("OPENAI_BASE_URL", "ftp://api.test/v1")
    with pytest.raises(InvalidParameterError, match="base_url"):
        AsyncClient(api_key=API_KEY)


@pytest.mark.parametrize("max_retries", [-1, True, 1.5, "2"])
def test_max_retries_must_be_a_non_negative_integer(max_retries: Any) -> None:
    """max_retries=-1 (or a bool, float or string) raises InvalidParameterError."""
    with pytest.raises(InvalidParameterError, match="max_retries"):
        AsyncClient(api_key=API_KEY, base_url=BASE_URL, max_retries=max_retries)


@pytest.mark.parametrize("max_retries", [0, 2, 10])
def test_max_retries_accepts_non_negative_integers(max_retries: int) -> None:
    """max_retries of 0 or more is kept as given."""
    assert max_retries == AsyncClient(api_key=API_KEY, max_retries=max_retries).max_retries


def test_repr_does_not_show_the_key() -> None:
    """repr(client) shows where it points but never the API key."""
    client = AsyncClient(api_key="sk-very-secret-key", base_url=BASE_URL)
    text = repr(client)
    assert "sk-very-secret-key" not in text
    assert BASE_URL in text


def test_repr_of_provider_clients_does_not_show_keys() -> None:
    """repr() of Portkey and Azure clients shows none of their keys."""
    portkey = AsyncClient.for_portkey(
        api_key="pk-secret", virtual_key="vk-secret", provider_api_key="sk-secret"
    )
    azure = AsyncClient.for_azure(
        endpoint=AZURE_ENDPOINT, api_key="az-secret", api_version=AZURE_VERSION
    )
    for text in (repr(portkey), repr(azure)):
        assert not any(s in text for s in ("pk-secret", "vk-secret", "sk-secret", "az-secret"))


# --- with_options -------------------------------------------------------------------------------


def base_client(**options: Any) -> AsyncClient:
    """Return a client with every setting given, for with_options to change."""
    return AsyncClient(
        api_key=API_KEY,
        base_url=BASE_URL,
        organization="org-1",
        project="proj_1",
        timeout=Timeout(connect=1.0, read=2.0, total=3.0),
        max_retries=4,
        default_headers={"X-Team": "ml"},
        default_query={"tenant": "acme"},
        backoff=NO_BACKOFF,
        **options,
    )


def test_with_options_changes_the_timeout_only() -> None:
    """with_options(timeout=) gives a client with the new timeout and the old retries."""
    client = base_client()
    changed = client.with_options(timeout=9.0)
    assert Timeout(connect=9.0, read=9.0, total=9.0) == changed.timeout
    assert 4 == changed.max_retries
    assert BASE_URL == changed.base_url
    assert Timeout(connect=1.0, read=2.0, total=3.0) == client.timeout


def test_with_options_changes_max_retries_only() -> None:
    """with_options(max_retries=) gives a client with the new count and the old timeout."""
    client = base_client()
    changed = client.with_options(max_retries=0)
    assert 0 == changed.max_retries
    assert Timeout(connect=1.0, read=2.0, total=3.0) == changed.timeout
    assert 4 == client.max_retries


@pytest.mark.asyncio
async def test_with_options_max_retries_governs_the_retries(mock_api: MockAPI) -> None:
    """A 500 on a GET is tried once with max_retries=0, while the original client retries."""
    url = f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}?tenant=acme"
    mock_api.get(url, status=500, payload={"error": {"message": "boom"}}, repeat=True)
    async with base_client() as client:
        with pytest.raises(InternalServerError, match="boom"):
            await client.with_options(max_retries=0).fine_tuning.jobs.retrieve(JOB_ID)
        assert 1 == len(mock_api.calls())
        with pytest.raises(InternalServerError, match="boom"):
            await client.fine_tuning.jobs.retrieve(JOB_ID)
        assert 1 + 5 == len(mock_api.calls())


def test_with_options_refuses_bad_values() -> None:
    """with_options checks max_retries and base_url like the constructor."""
    client = base_client()
    with pytest.raises(InvalidParameterError, match="max_retries"):
        client.with_options(max_retries=-1)
    with pytest.raises(InvalidParameterError, match="base_url"):
        client.with_options(base_url="ftp://x")


@pytest.mark.asyncio
async def test_with_options_keeps_every_setting_not_given(mock_api: MockAPI) -> None:
    """A client from with_options(max_retries=) sends the same URL and headers as the original."""
    url = f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}?tenant=acme"
    mock_api.get(url, payload=JOB_PAYLOAD, repeat=True)
    async with base_client() as client:
        await client.fine_tuning.jobs.retrieve(JOB_ID)
        await client.with_options(max_retries=1).fine_tuning.jobs.retrieve(JOB_ID)
    calls = mock_api.calls()
    assert 2 == len(calls)
    original, derived = headers_of(calls[0][2]), headers_of(calls[1][2])
    assert original == derived
    assert {
        "authorization": f"Bearer {API_KEY}",
        "openai-organization": "org-1",
        "openai-project": "proj_1",
        "x-team": "ml",
    } == {
        k: derived[k] for k in ("authorization", "openai-organization", "openai-project", "x-team")
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "url", "expected_headers"),
    [
        pytest.param(
            {"api_key": "sk-new"},
            f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}?tenant=acme",
            {"authorization": "Bearer sk-new", "x-team": "ml", "openai-organization": "org-1"},
            id="api_key",
        ),
        pytest.param(
            {"base_url": "http://127.0.0.1:9999/v2"},
            f"http://127.0.0.1:9999/v2/fine_tuning/jobs/{JOB_ID}?tenant=acme",
            {"authorization": f"Bearer {API_KEY}", "x-team": "ml", "openai-project": "proj_1"},
            id="base_url",
        ),
        pytest.param(
            {"default_headers": {"X-Other": "1"}},
            f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}?tenant=acme",
            {"authorization": f"Bearer {API_KEY}", "x-other": "1", "openai-organization": "org-1"},
            id="default_headers",
        ),
        pytest.param(
            {"organization": "org-2", "project": "proj_2"},
            f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}?tenant=acme",
            {"openai-organization": "org-2", "openai-project": "proj_2", "x-team": "ml"},
            id="organization-project",
        ),
        pytest.param(
            {"default_query": {"region": "eu"}},
            f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}?region=eu",
            {"authorization": f"Bearer {API_KEY}", "x-team": "ml"},
            id="default_query",
        ),
    ],
)
async def test_with_options_changes_what_is_sent(
    mock_api: MockAPI,
    changes: dict[str, Any],
    url: str,
    expected_headers: dict[str, str],
) -> None:
    """with_options sends the changed setting and keeps the others; the original is unchanged."""
    async with base_client() as client:
        headers = await retrieve_through(mock_api, client.with_options(**changes), url)
        assert expected_headers == {k: headers[k] for k in expected_headers}
        mock_api.get(f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}?tenant=acme", payload=JOB_PAYLOAD)
        await client.fine_tuning.jobs.retrieve(JOB_ID)
    original = headers_of(mock_api.calls()[-1][2])
    assert f"Bearer {API_KEY}" == original["authorization"]
    assert "ml" == original["x-team"]


# --- Portkey ------------------------------------------------------------------------------------

PORTKEY_JOB_URL = f"{PORTKEY_URL}/fine_tuning/jobs/{JOB_ID}"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kwargs", "header", "expected"),
    [
        pytest.param({"api_key": "pk-1", "virtual_key": "vk-1"}, "x-portkey-api-key", "pk-1"),
        pytest.param({"virtual_key": "vk-1"}, "x-portkey-virtual-key", "vk-1"),
        pytest.param({"provider": "openai"}, "x-portkey-provider", "openai"),
        pytest.param({"config": "pc-config-123"}, "x-portkey-config", "pc-config-123"),
        pytest.param(
            {"provider": "openai", "custom_host": "http://127.0.0.1:8080/v1"},
            "x-portkey-custom-host",
            "http://127.0.0.1:8080/v1",
        ),
        pytest.param(
            {"provider": "openai", "trace_id": "trace-42"}, "x-portkey-trace-id", "trace-42"
        ),
        pytest.param(
            {"provider": "openai", "organization": "org-9"},
            "x-portkey-openai-organization",
            "org-9",
        ),
        pytest.param(
            {"provider": "openai", "project": "proj_9"}, "x-portkey-openai-project", "proj_9"
        ),
    ],
)
async def test_portkey_sends_its_headers(
    mock_api: MockAPI, kwargs: dict[str, Any], header: str, expected: str
) -> None:
    """Each for_portkey argument is sent as its x-portkey-* header."""
    headers = await retrieve_through(mock_api, AsyncClient.for_portkey(**kwargs), PORTKEY_JOB_URL)
    assert expected == headers[header]


@pytest.mark.asyncio
async def test_portkey_sends_a_config_dict_as_json(mock_api: MockAPI) -> None:
    """A config dict is sent as its JSON text in x-portkey-config."""
    config = {"provider": "openai", "api_key": "sk-x", "retry": {"attempts": 3}}
    headers = await retrieve_through(
        mock_api, AsyncClient.for_portkey(config=config), PORTKEY_JOB_URL
    )
    assert config == json.loads(headers["x-portkey-config"])


@pytest.mark.asyncio
async def test_portkey_sends_metadata_as_json(mock_api: MockAPI) -> None:
    """metadata is sent as JSON in x-portkey-metadata."""
    metadata = {"_user": "u-1", "env": "prod"}
    headers = await retrieve_through(
        mock_api, AsyncClient.for_portkey(provider="openai", metadata=metadata), PORTKEY_JOB_URL
    )
    assert metadata == json.loads(headers["x-portkey-metadata"])


@pytest.mark.asyncio
async def test_portkey_forwards_the_idempotency_key(mock_api: MockAPI) -> None:
    """A POST through Portkey sends Idempotency-Key and lists it in x-portkey-forward-headers."""
    mock_api.post(f"{PORTKEY_URL}/fine_tuning/jobs/{JOB_ID}/cancel", payload=JOB_PAYLOAD)
    async with AsyncClient.for_portkey(provider="openai", provider_api_key="sk-p") as client:
        await client.fine_tuning.jobs.cancel(JOB_ID)
    (_, _, kwargs) = mock_api.calls()[0]
    headers = headers_of(kwargs)
    forwarded = [name.strip().lower() for name in headers["x-portkey-forward-headers"].split(",")]
    assert "idempotency-key" in forwarded
    assert headers["idempotency-key"]
    assert "application/json" == headers["content-type"]


@pytest.mark.asyncio
async def test_portkey_sends_authorization_only_with_provider_api_key(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authorization carries provider_api_key; without it (even with OPENAI_API_KEY) none."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-must-not-leak")
    with_key = await retrieve_through(
        mock_api,
        AsyncClient.for_portkey(provider="openai", provider_api_key="sk-provider"),
        PORTKEY_JOB_URL,
    )
    assert "Bearer sk-provider" == with_key["authorization"]
    mock_api.requests.clear()
    without = await retrieve_through(
        mock_api, AsyncClient.for_portkey(api_key="pk-1", virtual_key="vk-1"), PORTKEY_JOB_URL
    )
    assert "authorization" not in without


@pytest.mark.asyncio
async def test_portkey_sends_no_header_for_arguments_not_given(mock_api: MockAPI) -> None:
    """Only the x-portkey-* headers of given arguments are sent (and the forward list)."""
    headers = await retrieve_through(
        mock_api, AsyncClient.for_portkey(provider="openai"), PORTKEY_JOB_URL
    )
    portkey = sorted(name for name in headers if name.startswith("x-portkey-"))
    assert ["x-portkey-forward-headers", "x-portkey-provider"] == portkey


@pytest.mark.asyncio
async def test_portkey_default_base_url_is_the_hosted_gateway(mock_api: MockAPI) -> None:
    """for_portkey sends to https://api.portkey.ai/v1 unless told otherwise."""
    client = AsyncClient.for_portkey(virtual_key="vk-1")
    assert PORTKEY_URL == client.base_url
    await retrieve_through(mock_api, client, PORTKEY_JOB_URL)


@pytest.mark.asyncio
async def test_portkey_self_hosted_base_url(mock_api: MockAPI) -> None:
    """base_url= points the client at a self-hosted gateway."""
    client = AsyncClient.for_portkey(provider="openai", base_url="http://127.0.0.1:18787/v1")
    await retrieve_through(mock_api, client, f"http://127.0.0.1:18787/v1/fine_tuning/jobs/{JOB_ID}")


@pytest.mark.asyncio
async def test_portkey_keys_come_from_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PORTKEY_API_KEY and PORTKEY_VIRTUAL_KEY fill in the missing arguments."""
    monkeypatch.setenv("PORTKEY_API_KEY", "pk-env")
    monkeypatch.setenv("PORTKEY_VIRTUAL_KEY", "vk-env")
    headers = await retrieve_through(mock_api, AsyncClient.for_portkey(), PORTKEY_JOB_URL)
    assert ("pk-env", "vk-env") == (headers["x-portkey-api-key"], headers["x-portkey-virtual-key"])


@pytest.mark.asyncio
async def test_portkey_explicit_keys_win_over_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api_key= and virtual_key= are used even when the PORTKEY_* variables are set."""
    monkeypatch.setenv("PORTKEY_API_KEY", "pk-env")
    monkeypatch.setenv("PORTKEY_VIRTUAL_KEY", "vk-env")
    headers = await retrieve_through(
        mock_api, AsyncClient.for_portkey(api_key="pk-x", virtual_key="vk-x"), PORTKEY_JOB_URL
    )
    assert ("pk-x", "vk-x") == (headers["x-portkey-api-key"], headers["x-portkey-virtual-key"])


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"api_key": "pk-1"}, id="api-key-only"),
        pytest.param({"api_key": "pk-1", "provider_api_key": "sk-1"}, id="keys-only"),
        pytest.param({"custom_host": "http://127.0.0.1:8080/v1"}, id="custom-host-only"),
    ],
)
def test_portkey_needs_a_virtual_key_provider_or_config(kwargs: dict[str, Any]) -> None:
    """for_portkey without virtual_key, provider or config raises InvalidParameterError."""
    with pytest.raises(InvalidParameterError, match="virtual_key") as info:
        AsyncClient.for_portkey(**kwargs)
    assert isinstance(info.value, ValueError)


def test_portkey_virtual_key_from_the_environment_is_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PORTKEY_VIRTUAL_KEY alone satisfies the routing requirement."""
    monkeypatch.setenv("PORTKEY_VIRTUAL_KEY", "vk-env")
    assert PORTKEY_URL == AsyncClient.for_portkey().base_url


@pytest.mark.asyncio
async def test_portkey_with_options_keeps_the_portkey_headers(mock_api: MockAPI) -> None:
    """with_options(default_headers=) on a Portkey client still sends the x-portkey-* headers."""
    async with AsyncClient.for_portkey(api_key="pk-1", provider="openai") as client:
        headers = await retrieve_through(
            mock_api, client.with_options(default_headers={"X-Extra": "1"}), PORTKEY_JOB_URL
        )
    assert {"x-portkey-api-key": "pk-1", "x-portkey-provider": "openai", "x-extra": "1"} == {
        k: headers[k] for k in ("x-portkey-api-key", "x-portkey-provider", "x-extra")
    }


# --- Azure --------------------------------------------------------------------------------------


def azure(**kwargs: Any) -> AsyncClient:
    """Return an Azure client on AZURE_ENDPOINT with key az-key and AZURE_VERSION."""
    options: dict[str, Any] = {
        "endpoint": AZURE_ENDPOINT,
        "api_key": "az-key",
        "api_version": AZURE_VERSION,
    }
    return AsyncClient.for_azure(**{**options, **kwargs})


@pytest.mark.asyncio
async def test_azure_url_has_openai_prefix_and_api_version(mock_api: MockAPI) -> None:
    """Azure calls go to {endpoint}/openai/... with ?api-version= and the api-key header."""
    headers = await retrieve_through(mock_api, azure(), AZURE_JOB_URL)
    assert "az-key" == headers["api-key"]
    assert "authorization" not in headers


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(AZURE_ENDPOINT, id="bare"),
        pytest.param(f"{AZURE_ENDPOINT}/", id="trailing-slash"),
        pytest.param(f"{AZURE_ENDPOINT}/openai", id="with-openai"),
        pytest.param(f"{AZURE_ENDPOINT}/openai/", id="with-openai-slash"),
    ],
)
async def test_azure_endpoint_spellings_give_the_same_url(mock_api: MockAPI, endpoint: str) -> None:
    """The endpoint with or without a trailing slash or /openai gives the same URLs."""
    await retrieve_through(mock_api, azure(endpoint=endpoint), AZURE_JOB_URL)


@pytest.mark.asyncio
async def test_azure_api_version_is_on_every_call(mock_api: MockAPI) -> None:
    """A list with a query and a POST with no query both carry api-version."""
    list_url = f"{AZURE_ENDPOINT}/openai/fine_tuning/jobs?limit=5&api-version={AZURE_VERSION}"
    create_url = f"{AZURE_ENDPOINT}/openai/fine_tuning/jobs?api-version={AZURE_VERSION}"
    mock_api.get(list_url, payload=PAGE_PAYLOAD)
    mock_api.post(create_url, status=201, payload=JOB_PAYLOAD)
    async with azure() as client:
        assert [JOB_ID] == [job.id async for job in client.fine_tuning.jobs.list(limit=5)]
        job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-1")
    assert JOB_ID == job.id
    assert [("GET", url_parts(list_url)), ("POST", url_parts(create_url))] == [
        (m, url_parts(u)) for m, u, _ in mock_api.calls()
    ]
    assert ["az-key", "az-key"] == [headers_of(kw)["api-key"] for _, _, kw in mock_api.calls()]


@pytest.mark.asyncio
async def test_azure_ad_token_is_sent_as_bearer(mock_api: MockAPI) -> None:
    """azure_ad_token= is sent as Authorization: Bearer, with no api-key header."""
    client = AsyncClient.for_azure(
        endpoint=AZURE_ENDPOINT, azure_ad_token="entra-token", api_version=AZURE_VERSION
    )
    headers = await retrieve_through(mock_api, client, AZURE_JOB_URL)
    assert "Bearer entra-token" == headers["authorization"]
    assert "api-key" not in headers


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(f"{AZURE_ENDPOINT}/openai/v1", id="v1"),
        pytest.param(f"{AZURE_ENDPOINT}/openai/v1/", id="v1-slash"),
    ],
)
async def test_azure_v1_endpoint_needs_no_api_version(mock_api: MockAPI, endpoint: str) -> None:
    """An endpoint ending in /openai/v1 works without api_version and sends none."""
    client = AsyncClient.for_azure(endpoint=endpoint, api_key="az-key")
    headers = await retrieve_through(
        mock_api, client, f"{AZURE_ENDPOINT}/openai/v1/fine_tuning/jobs/{JOB_ID}"
    )
    assert "az-key" == headers["api-key"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        pytest.param({"api_key": "k", "api_version": AZURE_VERSION}, "endpoint", id="no-endpoint"),
        pytest.param({"endpoint": AZURE_ENDPOINT, "api_key": "k"}, "api_version", id="no-version"),
        pytest.param(
            {"endpoint": AZURE_ENDPOINT, "api_version": AZURE_VERSION},
            "api_key",
            id="no-credential",
        ),
        pytest.param(
            {"endpoint": "res.openai.azure.com", "api_key": "k", "api_version": AZURE_VERSION},
            "base_url",
            id="endpoint-without-scheme",
        ),
    ],
)
def test_azure_refuses_missing_settings(kwargs: dict[str, Any], param: str) -> None:
    """A missing endpoint, api_version or credential raises InvalidParameterError naming it."""
    with pytest.raises(InvalidParameterError) as info:
        AsyncClient.for_azure(**kwargs)
    assert param == info.value.param
    assert isinstance(info.value, ValueError)


@pytest.mark.asyncio
async def test_azure_settings_come_from_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY and OPENAI_API_VERSION fill in for_azure()."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", AZURE_ENDPOINT)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-env")
    monkeypatch.setenv("OPENAI_API_VERSION", AZURE_VERSION)
    headers = await retrieve_through(mock_api, AsyncClient.for_azure(), AZURE_JOB_URL)
    assert "az-env" == headers["api-key"]


@pytest.mark.asyncio
async def test_azure_explicit_settings_win_over_the_environment(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arguments to for_azure are used even when the environment names others."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://other.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-env")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    headers = await retrieve_through(mock_api, azure(), AZURE_JOB_URL)
    assert "az-key" == headers["api-key"]


@pytest.mark.asyncio
async def test_azure_does_not_use_openai_api_key(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENAI_API_KEY is not sent to Azure: only the api-key header authenticates."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-leak")
    headers = await retrieve_through(mock_api, azure(), AZURE_JOB_URL)
    assert "authorization" not in headers
    assert "sk-openai-must-not-leak" not in headers.values()


@pytest.mark.asyncio
async def test_azure_with_options_api_key_changes_the_api_key_header(mock_api: MockAPI) -> None:
    """with_options(api_key=) on an Azure client sends the new key as api-key."""
    async with azure() as client:
        headers = await retrieve_through(
            mock_api, client.with_options(api_key="az-new"), AZURE_JOB_URL
        )
    assert "az-new" == headers["api-key"]
    assert "authorization" not in headers


@pytest.mark.asyncio
async def test_azure_with_options_default_query_keeps_the_api_version(mock_api: MockAPI) -> None:
    """with_options(default_query=) on an Azure client still sends api-version on every call."""
    url = f"{AZURE_JOB_URL}&tenant=acme"
    mock_api.get(url, payload=JOB_PAYLOAD)
    async with azure() as client:
        await client.with_options(default_query={"tenant": "acme"}).fine_tuning.jobs.retrieve(
            JOB_ID
        )
    assert [url_parts(url)] == [url_parts(u) for _, u, _ in mock_api.calls()]


@pytest.mark.asyncio
async def test_portkey_with_options_organization_travels_as_a_portkey_header(
    mock_api: MockAPI,
) -> None:
    """with_options(organization=, project=) on Portkey changes the x-portkey-openai-* pair."""
    base = AsyncClient.for_portkey(provider="openai", organization="org-1", project="proj_1")
    async with base as client:
        changed = client.with_options(organization="org-2", project="proj_2")
        headers = await retrieve_through(mock_api, changed, PORTKEY_JOB_URL)
    assert ("org-2", "proj_2") == (
        headers["x-portkey-openai-organization"],
        headers["x-portkey-openai-project"],
    )
