"""Rule classes carry complete docs whose examples behave as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bnblint.pipeline import lint_text
from bnblint.rules import ALL_RULES, Rule
from bnblint.rules.base import SECTIONS
from bnblint.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_docs_have_every_section(rule: type[Rule]) -> None:
    titles = re.findall(r"^## (.+)$", rule.docs, flags=re.MULTILINE)
    assert titles == list(SECTIONS)
    for title in SECTIONS:
        assert rule.section(title).strip(), f"{rule.code}: empty section {title}"
    assert re.fullmatch(r"BNB\d{3}", rule.code)
    assert re.fullmatch(r"[a-z0-9-]+", rule.name)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_example_triggers_and_use_instead_is_clean(rule: type[Rule]) -> None:
    settings = Settings(select=(rule.code,))
    bad = lint_text(rule.example_code("Example"), "example.py", settings)
    assert [f.code for f in bad.findings] == [rule.code]
    good = lint_text(rule.example_code("Use instead"), "example.py", settings)
    assert good.findings == []


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_evidence_cites_versions(rule: type[Rule]) -> None:
    evidence = rule.section("Evidence")
    assert re.search(r"transformers \d+\.\d+", evidence)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_readme_rule_table_lists_rule(rule: type[Rule]) -> None:
    table = README.read_text(encoding="utf-8")
    assert re.search(rf"^\| {rule.code} \| `{rule.name}` \|", table, flags=re.MULTILINE)


def test_rule_words_are_bytes_and_nonempty() -> None:
    for rule in ALL_RULES:
        assert rule.words and all(isinstance(w, bytes) for w in rule.words)


def test_evidence_references_point_into_the_repository() -> None:
    """Users read the docs in `bnblint rule`: every file they cite must be in this repository."""
    root = Path(__file__).resolve().parent.parent
    for rule in ALL_RULES:
        assert "../" not in rule.docs, f"{rule.code} cites a path outside the repository"
        for cited in re.findall(r"`(evidence/[^`\s]+)`", rule.docs):
            assert (root / cited).exists(), f"{rule.code} cites {cited}, which does not exist"
