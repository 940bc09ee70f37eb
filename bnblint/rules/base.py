"""The rule interface. One class per rule: code, name, level, docs and the check itself."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Union

from bnblint.analysis.model import ModuleModel
from bnblint.diagnostics import Diagnostic, Level
from bnblint.versions import Target

DOCS_URL = "https://github.com/bnblint/bnblint/blob/main/docs/rules.md"
SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety", "Evidence")


# Where a finding starts: (row, column), both 1-based, or the text it starts at, which must occur
# exactly once in the case's code (robust to edits above it, readable in a template).
Position = Union[tuple[int, int], str]
Fixable = Literal["always", "sometimes", "never"]


@dataclass(frozen=True)
class Case:
    """A short single-rule example, checked with only its rule selected (Fixit's VALID/INVALID).

    ``code`` and ``fixed`` are dedented and lose a leading newline, so they can be written as
    indented triple-quoted strings. For an invalid case: ``at`` is where the first finding of the
    rule starts and ``more`` where the others do, in report order; ``message`` is a substring of
    every finding's message; ``fixed`` is the exact text of ``--fix --unsafe-fixes`` (``None``: no
    fix is offered); ``unsafe`` says the fix needs ``--unsafe-fixes`` (``--fix`` alone leaves the
    code unchanged), else ``--fix`` alone gives ``fixed`` too. ``note``: why the case is there.
    """

    code: str
    at: Position | None = None
    more: tuple[Position, ...] = ()
    message: str = ""
    fixed: str | None = None
    unsafe: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", _unindent(self.code))
        if self.fixed is not None:
            object.__setattr__(self, "fixed", _unindent(self.fixed))


def _unindent(text: str) -> str:
    return textwrap.dedent(text.removeprefix("\n"))


@dataclass(frozen=True)
class RuleContext:
    """Settings a rule may read, for one file."""

    compute_dtype: str = "float16"
    # The transformers the file runs on (``target-transformers``, else the project's pin,
    # else the newest): messages and fixes that differ between releases follow it.
    target: Target = field(default_factory=Target)


class Rule:
    """Base class. Subclasses read the analysis model, never the CST, and yield diagnostics.

    The model's nodes are stdlib ``ast`` nodes (and ``DictItem``s, see
    ``bnblint.analysis.syntax``); a rule reads source text through ``ModuleModel.source_of``
    (``options.written``) and builds fixes from ast nodes and text, never importing LibCST: it
    is parsed only where a fix is rendered.

    ``words``: byte strings of which at least one must occur in a file for the rule to be able
    to fire; files without any word of any selected rule are never parsed.
    ``docs``: Markdown with the sections in ``SECTIONS``; its Example must trigger the rule and its
    Use instead must not (checked by the test suite).
    ``valid``/``invalid``: short cases that must not / must produce this rule's finding, checked
    by ``tests/test_rule_cases.py``; multi-rule, notebook and project cases live in ``fixtures/``.
    ``fixable``: whether a finding of the rule comes with a fix always, sometimes or never
    (checked against the invalid cases, shown by ``bnblint rule``).
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    level: ClassVar[Level]
    words: ClassVar[tuple[bytes, ...]]
    docs: ClassVar[str]
    fixable: ClassVar[Fixable]
    valid: ClassVar[tuple[Case | str, ...]] = ()
    invalid: ClassVar[tuple[Case, ...]] = ()

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        raise NotImplementedError

    @classmethod
    def url(cls) -> str:
        return f"{DOCS_URL}#{cls.code.lower()}-{cls.name}"

    @classmethod
    def section(cls, title: str) -> str:
        """The text of one docs section (used for the embedded examples)."""
        lines = cls.docs.strip("\n").splitlines()
        out: list[str] = []
        inside = False
        for line in lines:
            if line.startswith("## "):
                inside = line[3:].strip() == title
                continue
            if inside:
                out.append(line)
        return "\n".join(out).strip("\n")

    @classmethod
    def example_code(cls, title: str) -> str:
        """The first fenced Python block of a docs section."""
        text = cls.section(title)
        start = text.index("```python\n") + len("```python\n")
        return text[start : text.index("```", start)]
