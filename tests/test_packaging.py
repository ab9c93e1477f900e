"""The repository stands alone: its licence ships, its spec is vendored, its layers hold.

The wheel and the sdist are built with the project's own backend (hatchling's PEP 517 hooks, in a
subprocess), and the import rules of docs/architecture.md are read off the source itself.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import finetune_async
import finetune_async.data
from finetune_async import InvalidParameterError, TrainingFileError
from tests.conftest import SPEC_PATH

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "finetune_async"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist of the working tree."""
    out = tmp_path_factory.mktemp("dist")
    script = (
        "import sys\n"
        "from hatchling.build import build_sdist, build_wheel\n"
        "print(build_wheel(sys.argv[1]))\n"
        "print(build_sdist(sys.argv[1]))\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", script, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    wheel, sdist = done.stdout.split()
    return out / wheel, out / sdist


def test_the_repository_has_an_mit_licence() -> None:
    """LICENSE is the MIT licence the metadata names."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_the_wheel_ships_the_licence(built: tuple[Path, Path]) -> None:
    """The wheel carries LICENSE in its dist-info and says MIT in its metadata."""
    with zipfile.ZipFile(built[0]) as wheel:
        names = wheel.namelist()
        licences = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert 1 == len(licences)
        assert wheel.read(licences[0]) == (ROOT / "LICENSE").read_bytes()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: MIT" in wheel.read(metadata).decode()
    assert not any(n.startswith("tests/") for n in names)


def test_the_sdist_ships_the_licence_and_everything_its_tests_need(
    built: tuple[Path, Path],
) -> None:
    """The sdist has LICENSE, the docs and the vendored spec, and no npm packages."""
    with tarfile.open(built[1]) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    assert "LICENSE" in names
    assert "docs/architecture.md" in names
    assert "tests/contract/spec/openai-finetune-facts.yaml" in names
    assert "tests/contract/spec/README.md" in names
    assert not any("node_modules" in name for name in names)


def test_the_tests_read_the_vendored_spec() -> None:
    """SPEC_PATH is inside the repository, beside its provenance."""
    assert SPEC_PATH.is_relative_to(ROOT)
    assert SPEC_PATH.is_file()
    provenance = (SPEC_PATH.parent / "README.md").read_text(encoding="utf-8")
    assert "f85dbe223d40e1a31cba812ab2d755c7e98a92a3" in provenance
    assert "MIT" in provenance


def test_nothing_in_the_repository_reads_outside_it() -> None:
    """No tracked file points at the ``shared`` folder beside the checkout."""
    listed = _tracked_files()
    # Formatted, so that this test's own source is not one of the offenders.
    folder = "shared"
    needles = (f"../{folder}", f'"{folder}" / "spec"', f'parents[2] / "{folder}"')
    offenders = []
    for name in listed:
        path = ROOT / name
        if path.suffix not in {".py", ".toml", ".md", ".yaml", ".json", ""} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {needle}" for needle in needles if needle in text]
    assert [] == offenders


def test_the_docs_the_code_points_at_are_in_the_repository() -> None:
    """Code, tests and docs cite docs/*.md, never design notes that live outside the repository."""
    outside = ("ARCHITECTURE" + ".md", "COMPAT" + ".md", " API" + ".md", "(API" + ".md")
    offenders = []
    for name in _tracked_files():
        path = ROOT / name
        if path.suffix not in {".py", ".toml", ".md"} or name == "CHANGELOG.md":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {needle}" for needle in outside if needle in text]
        cited = re.findall(r"docs/([a-z_]+\.md)", text)
        missing = [doc for doc in cited if not (ROOT / "docs" / doc).is_file()]
        offenders += [f"{name}: docs/{doc} is missing" for doc in missing]
    assert [] == offenders


def _tracked_files() -> list[str]:
    return subprocess.run(
        ["git", "ls-files"],  # noqa: S607 - git from PATH, in a test
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()


def _package_imports(path: Path) -> set[str]:
    """The package modules a source file imports, ``TYPE_CHECKING`` blocks included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level > 0:
                found.add("." * node.level + (node.module or ""))
            elif (node.module or "").startswith("finetune_async"):
                found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("finetune_async"))
    return found


def test_errors_is_a_leaf_that_imports_nothing_of_the_package() -> None:
    """errors.py imports no module of the package, not even for typing (docs/architecture.md)."""
    assert set() == _package_imports(PACKAGE / "errors.py")


def test_training_file_error_lives_in_data_and_is_reexported() -> None:
    """TrainingFileError is data's, still an InvalidParameterError, and at the top."""
    assert finetune_async.TrainingFileError is finetune_async.data.TrainingFileError
    assert TrainingFileError.__module__.startswith("finetune_async.data")
    assert issubclass(TrainingFileError, InvalidParameterError)
    assert "TrainingFileError" in finetune_async.__all__
    assert "TrainingFileError" in finetune_async.data.__all__
