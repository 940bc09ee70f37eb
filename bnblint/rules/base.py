"""The rule interface. One class per rule: code, name, level, docs and the check itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from bnblint.analysis.model import ModuleModel
from bnblint.diagnostics import Diagnostic, Level

DOCS_URL = "https://github.com/bnblint/bnblint/blob/main/docs/rules.md"
SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety", "Evidence")


@dataclass(frozen=True)
class RuleContext:
    """Settings a rule may read."""

    compute_dtype: str = "float16"


class Rule:
    """Base class. Subclasses read the analysis model, never the CST, and yield diagnostics.

    ``words``: byte strings of which at least one must occur in a file for the rule to be able
    to fire; files without any word of any selected rule are never parsed.
    ``docs``: Markdown with the sections in ``SECTIONS``; its Example must trigger the rule and its
    Use instead must not (checked by the test suite).
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    level: ClassVar[Level]
    words: ClassVar[tuple[bytes, ...]]
    docs: ClassVar[str]

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
