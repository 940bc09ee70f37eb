"""Output formats. Each module renders a ``Report``; ``get_renderer`` finds it by format name."""

from __future__ import annotations

import importlib
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


# Format name -> module under bnblint.output, imported only when that format is used.
_MODULES: dict[str, str] = {
    "text": "text",
    "concise": "concise",
    "full": "full",
    "grouped": "grouped",
    "json": "json_format",
    "json-lines": "json_lines",
    "github": "github",
    "sarif": "sarif",
    "junit": "junit",
    "gitlab": "gitlab",
}
FORMAT_NAMES = tuple(_MODULES)
# Formats that show fixes as edits: the pipeline must compute them (it costs a little).
EDIT_FORMATS = frozenset({"full", "json", "json-lines", "sarif"})


def get_renderer(name: str) -> Renderer:
    try:
        module = _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown output format `{name}`") from None
    render: Renderer = importlib.import_module(f"{__name__}.{module}").render
    return render


def wants_edits(name: str) -> bool:
    return name in EDIT_FORMATS
