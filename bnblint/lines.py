"""The one line-splitting rule of bnblint: a line ends at ``\\r\\n``, ``\\r`` or ``\\n``.

That is the rule of Python's tokenizer, LibCST's positions and the Language Server Protocol, so
rows computed here agree with the rows of every finding. ``str.splitlines`` is *not* that rule:
it also breaks at ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028`` and ``\\u2029``,
which are ordinary characters inside Python strings and comments; splitting there shifts every
later row. Use these helpers instead of ``splitlines`` wherever rows or line ends matter.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from bnblint.diagnostics import Location

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its line ending (the last one may have none).

    ``"".join(split_lines(text)) == text`` always; ``""`` has no lines.
    """
    return _LINE.findall(text)


def line_ending(line: str) -> str:
    """The ending of one line as ``split_lines`` returns it: ``"\\r\\n"``, ``"\\r"``, ``"\\n"``
    or ``""``."""
    if line.endswith("\r\n"):
        return "\r\n"
    if line.endswith(("\r", "\n")):
        return line[-1]
    return ""


def strip_ending(line: str) -> str:
    """``line`` without its line ending (only one: ``"a\\r\\r"`` keeps its first ``\\r``)."""
    return line[: len(line) - len(line_ending(line))]


class LineIndex:
    """Offsets in one text <-> 1-based (row, column) positions, columns in characters.

    Built once per text (one pass); each lookup is a binary search. Rows run from 1 to
    ``row_count``; a text ending in a line break also has the position (``row_count + 1``, 1),
    its end.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in LINE_BREAK.finditer(text)]
        # A text ending in a line break has no line after it, only the end position.
        self.row_count = len(self.starts) - (1 if self.starts[-1] == len(text) else 0)

    def location(self, offset: int) -> Location:
        """The position of ``offset`` (0 to ``len(text)``)."""
        if not 0 <= offset <= len(self.text):
            raise ValueError(f"offset {offset} outside a text of {len(self.text)} characters")
        row = bisect_right(self.starts, offset) - 1
        return Location(row + 1, offset - self.starts[row] + 1)

    def offset(self, row: int, column: int) -> int:
        """The offset of a position. As in LSP, a column past the line's end means the end of
        its content (before the line break) and a row past the last one the end of the text."""
        if row < 1 or column < 1:
            raise ValueError(f"no position {row}:{column}: rows and columns start at 1")
        if row > len(self.starts):
            return len(self.text)
        start = self.starts[row - 1]
        end = self.starts[row] if row < len(self.starts) else len(self.text)
        content_end = start + len(strip_ending(self.text[start:end]))
        return min(start + column - 1, content_end)

    def offset_of(self, location: Location) -> int:
        """``offset`` for a ``Location`` (what ``bnblint.fix.apply.LineIndex.offset`` took)."""
        return self.offset(location.row, location.column)

    def line(self, row: int) -> str:
        """Row ``row`` (1 to ``row_count``) with its line ending."""
        if not 1 <= row <= self.row_count:
            raise IndexError(f"no row {row} in a text of {self.row_count} rows")
        end = self.starts[row] if row < len(self.starts) else len(self.text)
        return self.text[self.starts[row - 1] : end]
