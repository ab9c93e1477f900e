"""Every public async method and namespace has a blocking twin with the same signature.

The walk is data-driven: it starts at an ``AsyncClient`` instance and follows every public
attribute, so an async method or namespace added later without its sync twin fails
``test_client_has_every_async_method`` without anyone editing this file.
"""

from __future__ import annotations

import inspect
from typing import Any

import attrs

from finetune_async import AsyncClient, AsyncPager, Client

#: Async names whose sync twin has another name.
RENAMED = {
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
#: Dunders that are part of the public surface (the constructor and the context managers).
PUBLIC_DUNDERS = ("__init__", "__aenter__", "__aexit__")


def _is_namespace(value: object) -> bool:
    """Whether ``value`` is a resource namespace: an instance of an attrs class named ``Async*``."""
    cls = type(value)
    return attrs.has(cls) and cls.__name__.startswith("Async")


def _instance_names(obj: object) -> list[str]:
    """Public names of ``obj``, plus the public dunders (a namespace's attrs ``__init__`` is not:
    the client builds namespaces, users do not)."""
    dunders = {n for n in PUBLIC_DUNDERS if n in dir(obj)}
    if attrs.has(type(obj)):
        dunders.discard("__init__")
    return sorted({n for n in dir(obj) if not n.startswith("_")} | dunders)


def _is_async_method(func: Any) -> bool:
    """Coroutine functions, and list-style methods that return an ``AsyncPager``."""
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        return True
    returns = inspect.signature(func).return_annotation
    if isinstance(returns, str):  # `from __future__ import annotations`: the text of the hint
        return returns.startswith(f"{AsyncPager.__name__}[")
    return returns is AsyncPager or getattr(returns, "__origin__", None) is AsyncPager


def _parameters(func: Any) -> list[inspect.Parameter]:
    return list(inspect.signature(func).parameters.values())


def parity_problems(async_obj: object, sync_obj: object, path: str = "client") -> list[str]:
    """Return every way ``sync_obj`` fails to mirror ``async_obj``, recursively; [] when none.

    Namespaces (attrs ``Async*`` instances) must have a twin named without ``Async``; every
    public method, class method and property of the async class must exist on the sync class;
    methods must have equal parameters (names, kinds, defaults, annotations) and the sync ones
    must not be coroutine functions.
    """
    problems: list[str] = []
    async_cls, sync_cls = type(async_obj), type(sync_obj)
    for name in _instance_names(async_obj):
        where = f"{path}.{name}"
        twin_name = RENAMED.get(name, name)
        static = inspect.getattr_static(async_cls, name, None)
        if isinstance(static, property):
            if not isinstance(inspect.getattr_static(sync_cls, twin_name, None), property):
                problems.append(f"{where}: property missing on {sync_cls.__name__}")
            continue
        value = getattr(async_obj, name)
        if _is_namespace(value):
            twin = getattr(sync_obj, twin_name, None)
            expected_cls = type(value).__name__.removeprefix("Async")
            if twin is None:
                problems.append(f"{where}: namespace missing on {sync_cls.__name__}")
            elif expected_cls != type(twin).__name__:
                problems.append(
                    f"{where}: twin is a {type(twin).__name__}, expected a {expected_cls}"
                )
            else:
                problems.extend(parity_problems(value, twin, where))
            continue
        if not callable(value):
            continue
        # Every public callable needs a twin: coroutine methods, AsyncPager lists, class methods,
        # and any plain helper added later.
        is_classmethod = isinstance(static, classmethod)
        twin_value = getattr(sync_obj, twin_name, None)
        if twin_value is None or not callable(twin_value):
            problems.append(f"{where}: method missing on {sync_cls.__name__} (as {twin_name})")
            continue
        if inspect.iscoroutinefunction(twin_value) or inspect.isasyncgenfunction(twin_value):
            problems.append(f"{where}: the sync twin {twin_name} is a coroutine function")
        if is_classmethod != isinstance(inspect.getattr_static(sync_cls, twin_name), classmethod):
            problems.append(f"{where}: classmethod on one side only")
        async_params, sync_params = _parameters(value), _parameters(twin_value)
        if async_params != sync_params:
            problems.append(
                f"{where}: signatures differ: async ({', '.join(map(str, async_params))})"
                f" != sync ({', '.join(map(str, sync_params))})"
            )
    return problems


def visited_methods(async_obj: object, path: str = "client") -> set[str]:
    """Return the dotted path of every async method the walk checks."""
    found: set[str] = set()
    for name in _instance_names(async_obj):
        if isinstance(inspect.getattr_static(type(async_obj), name, None), property):
            continue
        value = getattr(async_obj, name)
        if _is_namespace(value):
            found |= visited_methods(value, f"{path}.{name}")
        elif callable(value) and _is_async_method(value):
            found.add(f"{path}.{name}")
    return found


def _clients() -> tuple[AsyncClient, Client]:
    options: dict[str, Any] = {"api_key": "test", "base_url": "http://127.0.0.1:9/v1"}
    return AsyncClient(**options), Client(**options)


def test_client_has_every_async_method() -> None:
    """Client mirrors every namespace, method, class method and property of AsyncClient."""
    async_client, client = _clients()
    try:
        assert [] == parity_problems(async_client, client)
    finally:
        client.close()


def test_walk_reaches_every_area() -> None:
    """The walk really visits the nested namespaces, so the parity test is not vacuous."""
    async_client, client = _clients()
    client.close()
    expected = {
        "client.aclose",
        "client.request",
        "client.download",
        "client.batches.create",
        "client.batches.list",
        "client.files.create",
        "client.files.download",
        "client.files.list",
        "client.fine_tuning.checkpoints.permissions.create",
        "client.fine_tuning.checkpoints.permissions.delete",
        "client.fine_tuning.checkpoints.permissions.list",
        "client.fine_tuning.jobs.checkpoints.list",
        "client.fine_tuning.jobs.create",
        "client.fine_tuning.jobs.list",
        "client.fine_tuning.jobs.list_events",
        "client.fine_tuning.jobs.resume",
        "client.models.delete",
        "client.models.retrieve",
    }
    assert set() == expected - visited_methods(async_client)


def test_client_level_surface() -> None:
    """The client-level methods, properties and context managers pair up as the issue lists."""
    pairs = {
        "for_portkey": "for_portkey",
        "for_azure": "for_azure",
        "with_options": "with_options",
        "request": "request",
        "download": "download",
        "aclose": "close",
        "__aenter__": "__enter__",
        "__aexit__": "__exit__",
        "__init__": "__init__",
    }
    for async_name, sync_name in pairs.items():
        async_func = getattr(AsyncClient, async_name)
        sync_func = getattr(Client, sync_name)
        assert _parameters(async_func) == _parameters(sync_func), async_name
        assert not inspect.iscoroutinefunction(sync_func), sync_name
    for name in ("base_url", "timeout", "max_retries", "is_closed"):
        assert isinstance(inspect.getattr_static(Client, name), property), name
    assert isinstance(inspect.getattr_static(Client, "for_portkey"), classmethod)
    assert isinstance(inspect.getattr_static(Client, "for_azure"), classmethod)


# --- the checker itself catches what it must ----------------------------------------------------


@attrs.frozen
class AsyncWidgets:
    """A synthetic async namespace."""

    async def fetch(self, widget_id: str, *, deep: bool = False) -> str:
        """A coroutine method."""
        return widget_id

    async def remove(self, widget_id: str) -> None:
        """A coroutine method the sync twin forgets."""

    def list(self, *, limit: int | None = None) -> AsyncPager[str]:
        """A list-style method."""
        raise NotImplementedError


@attrs.frozen
class AsyncGadgets:
    """A synthetic namespace the sync client forgets entirely."""

    async def spin(self) -> None:
        """A coroutine method."""


@attrs.frozen
class Widgets:
    """A flawed sync twin: a default differs, a method is missing, one is still async."""

    def fetch(self, widget_id: str, *, deep: bool = True) -> str:
        """A default that differs from the async one."""
        return widget_id

    async def list(self, *, limit: int | None = None) -> list[str]:
        """Still a coroutine function."""
        return []


class AsyncThing:
    """A synthetic async client."""

    def __init__(self) -> None:
        self.widgets = AsyncWidgets()
        self.gadgets = AsyncGadgets()

    @property
    def base_url(self) -> str:
        """A property the sync twin lacks."""
        return ""

    async def aclose(self) -> None:
        """Closes (its twin is ``close``)."""


class Thing:
    """A flawed synthetic sync client."""

    def __init__(self) -> None:
        self.widgets = Widgets()

    def close(self) -> None:
        """The twin of ``aclose``."""


def test_checker_reports_missing_and_differing() -> None:
    """The helper reports a missing method, namespace and property, a signature and a coroutine."""
    problems = parity_problems(AsyncThing(), Thing(), "thing")
    assert 5 == len(problems), problems
    assert any(p.startswith("thing.base_url: property missing") for p in problems)
    assert any(p.startswith("thing.gadgets: namespace missing") for p in problems)
    assert any(p.startswith("thing.widgets.remove: method missing") for p in problems)
    assert any(p.startswith("thing.widgets.fetch: signatures differ") for p in problems)
    assert any(
        p.startswith("thing.widgets.list: the sync twin list is a coroutine") for p in problems
    )


def test_checker_accepts_a_faithful_twin() -> None:
    """A twin with equal signatures and plain methods yields no problem."""

    class Faithful:
        def aclose(self) -> None:
            """Unused: the twin is ``close``."""

        def close(self) -> None:
            """The twin of ``aclose``."""

    @attrs.frozen
    class AsyncOne:
        async def go(self, x: int, *, y: str = "a") -> None:
            """A coroutine method."""

    @attrs.frozen
    class One:
        def go(self, x: int, *, y: str = "a") -> None:
            """Its faithful twin."""

    class AsyncTop:
        def __init__(self) -> None:
            self.one = AsyncOne()

        async def aclose(self) -> None:
            """Closes."""

    class Top(Faithful):
        def __init__(self) -> None:
            self.one = One()

    assert [] == parity_problems(AsyncTop(), Top())
