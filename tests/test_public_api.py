"""The public surface of finetune_async: explicit, sorted exports and a typed package."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import pkgutil
from typing import TYPE_CHECKING

import pytest

import finetune_async
from finetune_async import errors, types

if TYPE_CHECKING:
    from types import ModuleType

EXPORTING_MODULES: list[ModuleType] = [finetune_async, types, errors]
TYPES_MODULES: list[ModuleType] = [
    importlib.import_module(info.name)
    for info in pkgutil.iter_modules(types.__path__, types.__name__ + ".")
]


def module_id(module: ModuleType) -> str:
    """Name a module in test ids."""
    return module.__name__


def public_definitions(module: ModuleType) -> list[str]:
    """Return the public classes and functions defined in ``module`` itself, sorted."""
    return sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == module.__name__
    )


@pytest.mark.parametrize("module", EXPORTING_MODULES, ids=module_id)
def test_all_is_sorted(module: ModuleType) -> None:
    """``__all__`` is in sorted order."""
    assert sorted(module.__all__) == list(module.__all__)


@pytest.mark.parametrize("module", EXPORTING_MODULES, ids=module_id)
def test_all_has_no_duplicates(module: ModuleType) -> None:
    """No name appears twice in ``__all__``."""
    assert sorted(set(module.__all__)) == sorted(module.__all__)


@pytest.mark.parametrize("module", EXPORTING_MODULES, ids=module_id)
def test_all_names_exist(module: ModuleType) -> None:
    """Every name in ``__all__`` is an attribute of its module."""
    assert [] == [name for name in module.__all__ if not hasattr(module, name)]


def test_types_modules_are_scanned() -> None:
    """The scan of finetune_async.types finds the modules that define the records and enums."""
    defined = {name for module in TYPES_MODULES for name in public_definitions(module)}
    assert {"FineTuningJob", "FineTuningJobStatus", "Page"} <= defined


@pytest.mark.parametrize("module", TYPES_MODULES, ids=module_id)
def test_public_types_are_exported(module: ModuleType) -> None:
    """Every public class or function defined in a finetune_async.types module is in its __all__."""
    missing = [name for name in public_definitions(module) if name not in types.__all__]
    assert [] == missing


@pytest.mark.parametrize("module", TYPES_MODULES, ids=module_id)
def test_exported_types_are_the_defined_objects(module: ModuleType) -> None:
    """A name exported by finetune_async.types is the very object its module defines."""
    names = [name for name in public_definitions(module) if name in types.__all__]
    assert [getattr(module, name) for name in names] == [getattr(types, name) for name in names]


ERROR_CLASSES = sorted(
    name
    for name, obj in vars(errors).items()
    if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__
)


def test_errors_module_defines_exceptions() -> None:
    """The scan of finetune_async.errors finds its exception classes, the base included."""
    assert {"APIError", "APIStatusError", "FinetuneError"} <= set(ERROR_CLASSES)


@pytest.mark.parametrize("name", ERROR_CLASSES)
def test_exception_is_exported_at_the_top(name: str) -> None:
    """Every exception class of finetune_async.errors is in finetune_async.__all__ and errors'."""
    assert (True, True) == (name in finetune_async.__all__, name in errors.__all__)
    assert getattr(errors, name) is getattr(finetune_async, name)


def test_version_is_a_non_empty_string() -> None:
    """``finetune_async.__version__`` is a non-empty string."""
    version = finetune_async.__version__
    assert str is type(version)
    assert "" != version.strip()


def test_package_ships_py_typed() -> None:
    """The package carries the PEP 561 ``py.typed`` marker."""
    marker = importlib.resources.files("finetune_async").joinpath("py.typed")
    assert True is marker.is_file()
