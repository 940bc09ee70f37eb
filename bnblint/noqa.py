"""``# noqa`` comments: which lines suppress which codes."""

from __future__ import annotations

import io
import re
import tokenize

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
