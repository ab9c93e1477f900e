"""The contract suite's own rules: skip without node on a developer's machine, fail under CI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.contract.conftest import (
    GATEWAY_JS,
    GATEWAY_PACKAGE,
    PRISM_JS,
    PRISM_PACKAGE,
    in_ci,
    node_for,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("", False)])
def test_ci_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    """``CI=true`` (or 1) is CI; unset or empty is a developer's machine."""
    monkeypatch.setenv("CI", value)
    assert expected == in_ci()


def test_without_node_a_developer_gets_a_skip_that_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No node on PATH and no CI: skipped, naming node and the install command."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=r"node is not installed.*npm ci"):
        node_for(PRISM_PACKAGE, PRISM_JS)


def test_without_node_ci_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No node on PATH under ``CI=true``: a failure, never a skip."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="may not be skipped"):
        node_for(GATEWAY_PACKAGE, GATEWAY_JS)


def test_a_package_not_installed_skips_or_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Node present but ``npm ci`` not run: the reason names the command; under CI it fails."""
    missing = tmp_path / "start-server.js"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"npm ci --prefix tests/contract"):
        node_for(GATEWAY_PACKAGE, missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"npm ci --prefix tests/contract"):
        node_for(GATEWAY_PACKAGE, missing)
