"""Running the selected rules on one module's analysis model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ast

    from bnblint.diagnostics import Diagnostic
    from bnblint.project import Project
    from bnblint.rules import Rule
    from bnblint.settings import Settings


def diagnose(
    tree: ast.Module,
    text: str,
    rules: Sequence[type[Rule]],
    settings: Settings,
    project: Project | None = None,
    filename: str | None = None,
    notebook: bool = False,
) -> list[tuple[type[Rule], Diagnostic]]:
    """The rules' diagnostics on ``tree`` (the stdlib AST of ``text``), one per (code, node)."""
    from bnblint.analysis.builder import build_model  # only files past the gates

    model = build_model(tree, text, project, filename)
    model.notebook = notebook
    context = settings.context_for(filename)
    found: list[tuple[type[Rule], Diagnostic]] = []
    for rule in rules:
        for diagnostic in rule().check(model, context):
            found.append((rule, diagnostic))
    # A load reached directly and through a call with known arguments can give the same
    # finding twice: keep one, the one its own function sees when there is one.
    found.sort(key=lambda f: len(f[1].site.via) if f[1].site is not None else 0)
    seen: set[tuple[str, int]] = set()
    unique = []
    for rule, d in found:
        key = (d.code, id(d.node))
        if key not in seen:
            seen.add(key)
            unique.append((rule, d))
    return unique
