"""Output formats. Each module renders a ``Report``; ``FORMATS`` maps names to renderers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from bnblint.pipeline import FileResult


@dataclass
class Report:
    results: list[FileResult] = field(default_factory=list)
    files_checked: int = 0
    fix: bool = False
    unsafe_fixes: bool = False
    show_fixes: bool = False
    color: bool = False

    @property
    def findings(self):  # type: ignore[no-untyped-def]
        return sorted((f for r in self.results for f in r.findings), key=lambda f: f.sort_key())

    @property
    def errors(self) -> list[FileResult]:
        return [r for r in self.results if r.error is not None]


Renderer = Callable[[Report, TextIO], None]


def get_renderer(name: str) -> Renderer:
    if name == "json":
        from bnblint.output.json_format import render
    else:
        from bnblint.output.text import render
    return render


FORMAT_NAMES = ("text", "json")
