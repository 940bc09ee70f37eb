"""Multi-file fixtures: analysis across modules, exact reports and fix diffs, and the same
findings whichever subset of the tree is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_cases import project_cases, run_project

PROJECTS = project_cases()


def _expected(root: Path) -> tuple[list[str], str]:
    diag = root.with_suffix(".diagnostics")
    lines = diag.read_text(encoding="utf-8").splitlines() if diag.exists() else []
    diff = root.with_suffix(".fixed.diff")
    return lines, diff.read_text(encoding="utf-8") if diff.exists() else ""


@pytest.mark.parametrize("root", PROJECTS, ids=lambda p: p.name)
def test_project_fixture(root: Path) -> None:
    lines, diff = run_project(root)
    expected_lines, expected_diff = _expected(root)
    assert lines == expected_lines
    assert diff == expected_diff


@pytest.mark.parametrize("root", PROJECTS, ids=lambda p: p.name)
def test_each_file_alone_reports_its_own_findings(root: Path) -> None:
    """pre-commit and editors name one file: the project is still found around it, and the
    file's findings are those of the whole-tree run."""
    expected_lines, _ = _expected(root)
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        lines, _ = run_project(root, [name])
        own = [line for line in expected_lines if line.startswith(f"{name}:")]
        assert lines == own, name
