"""Parsing a document's program text: the stdlib AST for the gates and the analysis model,
LibCST's module only where a fix is rendered or applied (``bnblint.fix.nodes``).

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


def parse_failure(exc: Exception) -> str:
    """The one line a user sees for text ``parse_ast`` rejects: ``cannot parse: line L:C:
    message`` (C 1-based, in characters, as the findings' columns)."""
    if isinstance(exc, SyntaxError):
        message = (exc.msg or "invalid syntax").splitlines()[0]
        if exc.lineno is not None:
            return f"cannot parse: line {exc.lineno}:{exc.offset or 1}: {message}"
        return f"cannot parse: {message}"
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return f"cannot parse: {type(exc).__name__}: {detail}".rstrip(": ")


def parse_module(text: str) -> tuple[ast.Module | None, str | None]:
    """The stdlib AST of ``text``, or None and the error to report (``parse_failure``)."""
    try:
        return parse_ast(text), None
    except (SyntaxError, ValueError, MemoryError) as exc:  # ValueError: a NUL byte (3.11)
        return None, parse_failure(exc)


def parse_cst(text: str) -> tuple[cst.Module | None, str | None]:
    """LibCST's module of ``text``, or None and why not ("cannot parse: ..."). Only the fix
    layer calls it: LibCST may reject (rarely) text that ``ast`` accepts."""
    import libcst as cst

    try:
        return cst.parse_module(text), None
    except cst.ParserSyntaxError as exc:
        return None, f"cannot parse: line {exc.raw_line}:{exc.raw_column}: {exc.message}"
    except Exception as exc:  # LibCST raises a few other types on odd input
        return None, f"cannot parse: {type(exc).__name__}: {exc}"
