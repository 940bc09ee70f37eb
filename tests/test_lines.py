"""bnblint.lines: the line rule of Python's tokenizer (and LSP), not str.splitlines's."""

from __future__ import annotations

import ast
import itertools

import pytest

from bnblint.diagnostics import Location
from bnblint.lines import LineIndex, line_ending, split_lines, strip_ending

# Characters str.splitlines breaks at that are not line ends in Python source.
NOT_LINE_ENDS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
TEXTS = ["", "a", "a\n", "\n", "\n\n", "a\r\nb\rc\nd", "\r\r\n\n\r", "x\u2028y\x0cz\n", "a\r"]


@pytest.mark.parametrize("text", TEXTS, ids=repr)
def test_split_lines_keeps_every_character(text: str) -> None:
    lines = split_lines(text)
    assert "".join(lines) == text
    assert all(line for line in lines)
    # Only the last line may lack an ending, and no line has one inside it.
    assert all(line_ending(line) for line in lines[:-1])
    assert not any(c in "\r\n" for line in lines for c in strip_ending(line))


def test_split_lines_breaks_only_at_cr_lf() -> None:
    assert split_lines("a\r\nb\rc\nd") == ["a\r\n", "b\r", "c\n", "d"]
    assert split_lines("\r\r\n") == ["\r", "\r\n"]
    for char in NOT_LINE_ENDS:
        assert split_lines(f"a{char}b\nc") == [f"a{char}b\n", "c"]
        assert len(f"a{char}b\nc".splitlines()) == 3  # what the rule replaces


@pytest.mark.parametrize("char", NOT_LINE_ENDS, ids=repr)
def test_rows_agree_with_pythons_parser(char: str) -> None:
    source = f"s = 'a{char}b'  # c{char}d\r\nt = 1\ru = 2\nv = 3\n"
    index = LineIndex(source)
    names = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)]
    for name in names:
        assert ast.get_source_segment(source, name) == name.id
        offset = source.index(f"{name.id} =")
        assert index.location(offset).row == name.lineno
        assert index.offset(name.lineno, name.col_offset + 1) == offset
    assert index.row_count == len(split_lines(source)) == 4


def test_location_and_offset_are_inverse() -> None:
    text = "ab\r\ncd\re\n\nf\u2028g"
    index = LineIndex(text)
    for offset in range(len(text) + 1):
        loc = index.location(offset)
        if text[offset - 1 : offset + 1] != "\r\n":  # inside a CRLF pair is no position
            assert index.offset(loc.row, loc.column) == offset
            assert index.offset_of(loc) == offset
    assert index.location(0) == Location(1, 1)
    assert index.location(4) == Location(2, 1)
    assert index.location(len(text)) == Location(5, 4)


def test_location_matches_the_fix_modules_index() -> None:
    from bnblint.fix.apply import LineIndex as FixIndex

    for text in TEXTS:
        ours, theirs = LineIndex(text), FixIndex(text)
        for offset in range(len(text) + 1):
            assert ours.location(offset) == theirs.location(offset)


def test_out_of_range_positions() -> None:
    index = LineIndex("ab\ncd\n")
    assert index.offset(1, 99) == 2  # past the end of a line: its content's end (LSP)
    assert index.offset(3, 1) == 6 and index.offset(9, 1) == 6  # past the last row: the end
    with pytest.raises(ValueError):
        index.offset(0, 1)
    with pytest.raises(ValueError):
        index.location(7)


def test_line_and_row_count() -> None:
    index = LineIndex("a\r\nb\u2028c\rd")
    assert index.row_count == 3
    assert [index.line(r) for r in range(1, 4)] == ["a\r\n", "b\u2028c\r", "d"]
    with pytest.raises(IndexError):
        index.line(4)
    assert LineIndex("").row_count == 0 and LineIndex("x\n").row_count == 1


def test_random_texts_round_trip() -> None:
    alphabet = ["a", "\r", "\n", "\u2028", "\x0c"]
    for n in range(6):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            lines = split_lines(text)
            assert "".join(lines) == text
            index = LineIndex(text)
            assert index.row_count == len(lines)
            assert [index.line(r) for r in range(1, index.row_count + 1)] == lines
