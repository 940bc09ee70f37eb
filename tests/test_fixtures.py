"""Every fixture: exact diagnostics, exact fixed output, idempotent fixes that parse."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fixture_cases import (
    FIXTURES,
    SETTINGS,
    case_id,
    cases,
    diagnostics_path,
    fixed_path,
    run,
)

from bnblint.pipeline import lint_source
from bnblint.rules import ALL_RULES

CASES = cases()


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_fixture(path: Path) -> None:
    lines, text, fixed = run(path)
    diag = diagnostics_path(path)
    expected = diag.read_text(encoding="utf-8").splitlines() if diag.exists() else []
    assert lines == expected
    target = fixed_path(path)
    if target.exists():
        assert fixed == target.read_bytes().decode(_encoding(target))
    else:
        assert fixed == text, "no .fixed file: the fix must change nothing"


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_fix_is_idempotent_and_parses(path: Path) -> None:
    _, _, fixed = run(path)
    if path.suffix == ".py":
        ast.parse(fixed)
    again = lint_source(fixed, case_id(path), SETTINGS, fix=True, unsafe_fixes=True)
    assert again.fixed_text is None  # fix(fix(x)) == fix(x)


def test_silent_fixtures_have_no_expectations() -> None:
    silent = [p for p in CASES if p.parent.name == "silent"]
    assert len(silent) >= 10
    for path in silent:
        assert not diagnostics_path(path).exists() and not fixed_path(path).exists()


def test_every_rule_has_bad_and_fixed_fixtures() -> None:
    for rule in ALL_RULES:
        folder = FIXTURES / rule.code
        fixed = list(folder.glob("*.fixed.py"))
        assert fixed, f"{rule.code} has no fixed fixture"
        reported = [
            p
            for p in folder.glob("*.diagnostics")
            if f" {rule.code} " in p.read_text(encoding="utf-8")
        ]
        assert reported, f"{rule.code} has no fixture that reports it"


def _encoding(path: Path) -> str:
    from bnblint.source import read_source

    return read_source(path).encoding
