"""``# noqa`` comments: which lines suppress which codes."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bnblint.lines import line_ending, split_lines, strip_ending

if TYPE_CHECKING:
    from bnblint.diagnostics import Finding

_NOQA = re.compile(
    r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)
ALL = frozenset({"*"})


def noqa_lines(source: str) -> dict[int, frozenset[str]]:
    """Row -> suppressed codes (``ALL`` for a bare ``# noqa``), from real comments only."""
    found: dict[int, frozenset[str]] = {}
    if "noqa" not in source.lower():
        return found
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.COMMENT:
                continue
            match = _NOQA.search(tok.string)
            if match is None:
                continue
            codes = match.group("codes")
            row = tok.start[0]
            if codes is None:
                found[row] = ALL
            else:
                found[row] = found.get(row, frozenset()) | frozenset(
                    c.upper() for c in re.split(r"[\s,]+", codes) if c
                )
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return found


def suppressed(code: str, row: int, lines: dict[int, frozenset[str]]) -> bool:
    codes = lines.get(row)
    return codes is not None and (codes is ALL or code in codes)


def _string_rows(source: str) -> tuple[set[int], dict[int, tuple[int, str]]]:
    """Rows whose line end lies inside a string (a comment there would change the string),
    and row -> (column, text) of each comment."""
    inside: set[int] = set()
    comments: dict[int, tuple[int, str]] = {}
    # f-strings (3.12+) and t-strings (3.14+) come as start/middle/end tokens: track the span.
    starts = {getattr(tokenize, n, -1) for n in ("FSTRING_START", "TSTRING_START")}
    ends = {getattr(tokenize, n, -1) for n in ("FSTRING_END", "TSTRING_END")}
    open_rows: list[int] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.start[1], tok.string)
        elif tok.type in starts:
            open_rows.append(tok.start[0])
        elif tok.type in ends and open_rows:
            inside.update(range(open_rows.pop(), tok.end[0]))
        elif tok.type == tokenize.STRING:
            inside.update(range(tok.start[0], tok.end[0]))
    return inside, comments


def _edit_line(line: str, codes: set[str], comment: tuple[int, str] | None) -> str | None:
    """The line with the codes added to its noqa comment (or a new one); None: leave it."""
    cr = "\r" if line.endswith("\r") else ""
    body = line[: len(line) - len(cr)]
    new = ", ".join(sorted(codes))
    match = _NOQA.search(comment[1]) if comment else None
    if comment and match and match.group("codes"):
        at = comment[0] + match.end()
        return f"{body[:at]}, {new}{body[at:]}{cr}"
    if not comment and body.rstrip().endswith("\\"):
        return None  # a comment after a line continuation is a syntax error
    gap = len(body) - len(body.rstrip())
    return f"{body}{' ' * max(0, 2 - gap)}# noqa: {new}{cr}"


def _ast_dump(text: str) -> str | None:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        return ast.dump(compile(text, "<noqa>", "exec", flags=flags, dont_inherit=True))
    except (SyntaxError, ValueError):
        return None


def add_noqa_directives(source: str, findings: Iterable[Finding]) -> tuple[str, int]:
    """``source`` with ``# noqa: CODE`` on each finding's ``noqa_row``, and how many lines
    changed. Existing ``# noqa: X`` comments keep their codes and get the new ones appended;
    lines ending inside a string or in a backslash continuation are left alone."""
    existing = noqa_lines(source)
    wanted: dict[int, set[str]] = {}
    for f in findings:
        if f.cell is None and not suppressed(f.code, f.noqa_row, existing):
            wanted.setdefault(f.noqa_row, set()).add(f.code)
    if not wanted:
        return source, 0
    try:
        inside, comments = _string_rows(source)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return source, 0
    lines = split_lines(source)  # the rows tokenize (and the pipeline) count, with their ends
    edits: dict[int, str] = {}
    for row, codes in wanted.items():
        if row in inside or not 1 <= row <= len(lines):
            continue
        line = lines[row - 1]
        new_line = _edit_line(strip_ending(line), codes, comments.get(row))
        if new_line is not None:
            edits[row] = new_line + line_ending(line)

    def apply(rows: Iterable[int]) -> str:
        out = list(lines)
        for row in rows:
            out[row - 1] = edits[row]
        return "".join(out)

    result = apply(edits)
    before = _ast_dump(source) if edits else None
    if before is None or _ast_dump(result) == before:
        return result, len(edits)  # (unverifiable when this Python cannot parse the source)
    # Comments never change the AST, so something the checks above missed did: keep only the
    # lines that are safe on their own (rare, so one parse per line is affordable).
    safe = [row for row in edits if _ast_dump(apply([row])) == before]
    return apply(safe), len(safe)


def add_noqa(source: str, findings: Iterable[Finding]) -> str:
    """``source`` with a ``# noqa`` directive for each finding (see ``add_noqa_directives``)."""
    return add_noqa_directives(source, findings)[0]
