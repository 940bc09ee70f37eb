"""Every rule's valid/invalid cases (on the rule class, next to its docs), each checked with only
that rule selected, and each rule's `fixable` declaration checked against its cases."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from bnblint.diagnostics import Applicability
from bnblint.pipeline import lint_text
from bnblint.rules import ALL_RULES, Rule
from bnblint.rules.base import Case, Position
from bnblint.settings import Settings

VALID = [
    pytest.param(rule, item if isinstance(item, Case) else Case(item), id=f"{rule.code}-valid-{i}")
    for rule in ALL_RULES
    for i, item in enumerate(rule.valid)
]
INVALID = [
    pytest.param(rule, case, id=f"{rule.code}-invalid-{i}")
    for rule in ALL_RULES
    for i, case in enumerate(rule.invalid)
]


def only(rule: type[Rule]) -> Settings:
    return Settings(select=(rule.code,))


def position(code: str, at: Position) -> tuple[int, int]:
    if isinstance(at, tuple):
        return at
    assert code.count(at) == 1, f"{at!r} must occur exactly once in the case"
    before = code[: code.index(at)]
    return before.count("\n") + 1, len(before) - before.rfind("\n")


@pytest.mark.parametrize(("rule", "case"), VALID)
def test_valid(rule: type[Rule], case: Case) -> None:
    ast.parse(case.code)  # a case that does not parse would be silent for the wrong reason
    result = lint_text(case.code, "case.py", only(rule))
    assert result.error is None
    assert result.findings == []


@pytest.mark.parametrize(("rule", "case"), INVALID)
def test_invalid(rule: type[Rule], case: Case) -> None:
    ast.parse(case.code)
    settings = only(rule)
    result = lint_text(case.code, "case.py", settings)
    assert result.error is None
    assert {f.code for f in result.findings} == {rule.code}
    assert case.at is not None, "an invalid case states where the finding is"
    expected = [position(case.code, p) for p in (case.at, *case.more)]
    assert [(f.location.row, f.location.column) for f in result.findings] == expected
    for finding in result.findings:
        assert case.message in finding.message

    fixed = lint_text(case.code, "case.py", settings, fix=True, unsafe_fixes=True)
    if case.fixed is None:
        assert not any(f.fixable for f in result.findings)
        assert fixed.fixed_text is None
        return
    kinds = {f.applicability for f in result.findings if f.fixable}
    assert kinds == {Applicability.UNSAFE if case.unsafe else Applicability.SAFE}
    assert fixed.fix_problems == []
    assert fixed.fixed_text == case.fixed
    ast.parse(case.fixed)
    assert fixed.findings == [], "the fix leaves nothing of its rule to report"
    again = lint_text(case.fixed, "case.py", settings, fix=True, unsafe_fixes=True)
    assert again.fixed_text is None, "fixing the fixed text changes nothing"
    safe_only = lint_text(case.code, "case.py", settings, fix=True).fixed_text
    assert safe_only == (None if case.unsafe else case.fixed)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_fixable_matches_the_cases(rule: type[Rule]) -> None:
    assert "fixable" in vars(rule), f"{rule.code} declares whether it can fix"
    assert rule.invalid, f"{rule.code} has invalid cases"
    with_fix = [case.fixed is not None for case in rule.invalid]
    if rule.fixable == "always":
        assert all(with_fix)
    elif rule.fixable == "never":
        assert not any(with_fix)
    else:
        # "sometimes" is shown by the cases: one that is fixed and one that is not.
        assert rule.fixable == "sometimes"
        assert any(with_fix) and not all(with_fix)


def run_cli(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bnblint", *args], capture_output=True, text=True, check=True
    )
    return proc.stdout


def test_rule_listing_shows_the_fix_column() -> None:
    header, *lines = run_cli("rule", "--all").splitlines()
    assert [line.split()[0] for line in lines] == [r.code for r in ALL_RULES]
    column = header.index("Fix")
    for line, rule in zip(lines, ALL_RULES):
        assert line[column:].split()[0] == rule.fixable  # the same column on every row
        assert line.endswith(rule.summary)


def test_rule_page_shows_fix_and_cases() -> None:
    rule = ALL_RULES[0]
    page = run_cli("rule", rule.code)
    assert f"\nFix: {rule.fixable}\n" in page
    assert f"Cases: {len(rule.valid)} valid, {len(rule.invalid)} invalid" in page
