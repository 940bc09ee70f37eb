"""Parsing a document's program text: the stdlib AST for the cheap gates and the analysis,
LibCST's module for the analysis model and the fixes.

Documents (notebooks, Markdown) import this to check their cells, so it depends on nothing
else of bnblint; LibCST is imported only when a module is parsed with it (about 0.3 s).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libcst as cst


def parse_ast(text: str) -> ast.Module:
    """The stdlib AST; top-level ``await`` is allowed, as notebooks use it."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(text, "<bnblint>", "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def parse_cst(text: str) -> tuple[cst.Module | None, str | None]:
    """LibCST's module of ``text``, or None and the error to report ("cannot parse: ...")."""
    import libcst as cst

    try:
        return cst.parse_module(text), None
    except cst.ParserSyntaxError as exc:
        return None, f"cannot parse: line {exc.raw_line}:{exc.raw_column}: {exc.message}"
    except Exception as exc:  # LibCST raises a few other types on odd input
        return None, f"cannot parse: {type(exc).__name__}: {exc}"
