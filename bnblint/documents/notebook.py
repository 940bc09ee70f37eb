"""Jupyter notebooks: code cells in order form the program; only changed cells are rewritten.

The notebook's JSON is never re-serialised: each code cell's ``source`` value is located in the
raw text, and only the changed lines of changed cells are replaced: every unchanged list item,
separator and escape stays as written (``\\u00e9`` stays ``\\u00e9``), new items follow the
list's layout, so key order, outputs, metadata and every other byte stay as they were.
nbformat 4 and nbformat 3 (``worksheets[].cells[].input``) are read; other versions are
reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bnblint.documents import Chunk, Document, DocumentError, line_diff, make_nonce
from bnblint.lines import split_lines, strip_ending
from bnblint.parse import parse_ast

# IPython syntax that is not Python: shell escapes, line magics, help.
_SHELL_OR_MAGIC = re.compile(r"^(\s*)(?:[!%?]|[\w.\[\]'\", ]+=\s*[!%])")
_HELP = re.compile(r"^(\s*)[\w.]+\?\??\s*$")
_DECODER = json.JSONDecoder()
# One JSON string character as written: a surrogate pair escape, an escape, or itself.
_PIECE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.|[^\\]",
    re.DOTALL,
)
CONVERT = "convert with `jupyter nbconvert --to notebook --nbformat 4`"


def _parses(text: str) -> bool:
    try:
        parse_ast(text)
    except (SyntaxError, ValueError):
        return False
    return True


@dataclass
class Notebook(Document):
    raw: str = ""
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)  # cell index -> value span
    sources: dict[int, _Source] = field(default_factory=dict)  # cell index -> its value
    added_newline: dict[int, bool] = field(default_factory=dict)  # "\n" appended to the chunk

    @classmethod
    def from_text(cls, text: str) -> Notebook:
        try:
            return cls._read(text)
        except RecursionError:
            raise DocumentError("invalid notebook JSON: nested too deeply") from None

    @classmethod
    def _read(cls, text: str) -> Notebook:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"invalid notebook JSON: {exc}") from exc
        cells, key = _cells_of(data)
        notebook = cls(chunks=[], raw=text)
        if not _is_python(data):
            return notebook
        spans = _source_spans(text, key, v3=key == "input")
        ensure_ascii = "\\u" in text and text.isascii()
        numbered: list[tuple[int, int, str]] = []  # (cell index, code-cell number, source)
        number = 0
        for index, cell in enumerate(cells):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            number += 1
            language = cell.get("language", "python")  # nbformat 3 names each cell's
            if not isinstance(language, str) or language.lower() != "python":
                continue
            span = spans.get(index)
            if span is None:
                continue
            value = _Source.parse(text, span, ensure_ascii)
            # Not a string or a list of strings (invalid nbformat), or the raw value is not the
            # one the parser kept (a duplicated key): not lintable, and not rewritable safely.
            if value is None or value.text != _joined(cell.get(key)):
                continue
            notebook.spans[index], notebook.sources[index] = span, value
            numbered.append((index, number, value.text))
        notebook.nonce = make_nonce(text, *(source for _, _, source in numbered))
        for index, number, source in numbered:
            try:
                masked = notebook.mask(source)
            except (RecursionError, MemoryError):
                # Valid code the parser cannot hold: skipping it would pass it unchecked.
                raise DocumentError(f"cell {number} is nested too deeply to parse") from None
            if masked is None:
                continue  # not Python even with IPython syntax masked: skipped, like ruff's
            notebook.added_newline[index] = bool(masked) and not masked.endswith(("\n", "\r"))
            if notebook.added_newline[index]:
                masked += "\n"
            notebook.chunks.append(Chunk(masked, cell=number, key=index))
        return notebook

    def mask(self, source: str) -> str | None:
        """The cell with IPython-only lines replaced by ``pass`` (restored on output)."""
        if _parses(source):
            return source
        lines = split_lines(source)
        cell_magic = bool(lines) and lines[0].lstrip().startswith("%%")
        out = []
        for line in lines:
            body = strip_ending(line)
            newline = line[len(body) :]
            match = _SHELL_OR_MAGIC.match(body) or _HELP.match(body)
            if cell_magic or match is not None:
                indent = "" if cell_magic or match is None else match.group(1)
                key = len(self.masks)
                self.masks[key] = body
                out.append(f"{indent}pass{self.mask_comment(key)}{newline}")
            else:
                out.append(line)
        masked = "".join(out)
        return masked if _parses(masked) else None

    def with_chunks(self, texts: dict[int, str]) -> str:
        parts, done = [], 0
        for index in sorted(texts):
            start, end = self.spans[index]
            text = texts[index]
            if self.added_newline.get(index) and text.endswith("\n"):
                text = text[:-1]
            parts += [self.raw[done:start], self.sources[index].render(text)]
            done = end
        return "".join(parts) + self.raw[done:]


def _cells_of(data: Any) -> tuple[list[Any], str]:
    """The notebook's cells and the key of their code: nbformat 4, or 3 (worksheets)."""
    if not isinstance(data, dict):
        raise DocumentError("not a Jupyter notebook: the JSON is not an object")
    if isinstance(data.get("cells"), list):
        return data["cells"], "source"
    version = data.get("nbformat")
    if version == 3 and isinstance(data.get("worksheets"), list):
        sheets = [w for w in data["worksheets"] if isinstance(w, dict)]
        return [c for w in sheets if isinstance(w.get("cells"), list) for c in w["cells"]], "input"
    if isinstance(version, int) and not isinstance(version, bool):
        raise DocumentError(f"nbformat {version} notebooks are not supported; {CONVERT}")
    raise DocumentError("not a Jupyter notebook: no `cells` list")


def _joined(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return "".join(value)
    return None


def _is_python(data: dict[str, Any]) -> bool:
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return True
    for key, field_name in (("kernelspec", "language"), ("language_info", "name")):
        section = metadata.get(key)
        name = section.get(field_name) if isinstance(section, dict) else None
        if isinstance(name, str):
            return name.lower() == "python"
    return True


# -- locating values in the raw JSON (already known to be valid) ----------------------------


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _expect(text: str, i: int, char: str) -> int:
    i = _skip_ws(text, i)
    if i >= len(text) or text[i] != char:
        raise DocumentError(f"invalid notebook JSON: expected {char!r} at offset {i}")
    return i + 1


def _value_end(text: str, i: int) -> int:
    return _DECODER.raw_decode(text, i)[1]


def _walk_object(text: str, i: int, member: Callable[[str, int], int | None]) -> int:
    """Call ``member(key, value_start)`` for each member of the object at ``i`` (it returns
    the value's end, or None to skip the value); return the object's end."""
    i = _skip_ws(text, _expect(text, i, "{"))
    if text[i] == "}":
        return i + 1
    while True:
        key, i = _DECODER.raw_decode(text, _skip_ws(text, i))
        i = _skip_ws(text, _expect(text, i, ":"))
        end = member(key, i)
        i = _skip_ws(text, _value_end(text, i) if end is None else end)
        if text[i] == "}":
            return i + 1
        i = _expect(text, i, ",")


def _walk_array(text: str, i: int, element: Callable[[int], int | None]) -> int:
    i = _skip_ws(text, _expect(text, i, "["))
    if text[i] == "]":
        return i + 1
    while True:
        i = _skip_ws(text, i)
        end = element(i)
        i = _skip_ws(text, _value_end(text, i) if end is None else end)
        if text[i] == "]":
            return i + 1
        i = _expect(text, i, ",")


def _source_spans(text: str, key: str, v3: bool) -> dict[int, tuple[int, int]]:
    """Offsets of each cell's code value (``source``, or ``input`` in nbformat 3), by the
    cell's index in the order the parsed notebook lists them."""
    spans: dict[int, tuple[int, int]] = {}
    count = [0]

    def cell(i: int) -> int | None:
        index, count[0] = count[0], count[0] + 1
        if text[i] != "{":
            return None

        def member(name: str, start: int) -> int | None:
            if name != key:
                return None
            spans[index] = (start, _value_end(text, start))
            return spans[index][1]

        return _walk_object(text, i, member)

    def cells(i: int) -> int | None:
        return _walk_array(text, i, cell) if text[i] == "[" else None

    def sheet(i: int) -> int | None:
        if text[i] != "{":
            return None
        return _walk_object(text, i, lambda name, s: cells(s) if name == "cells" else None)

    def top(name: str, i: int) -> int | None:
        if v3:
            return _walk_array(text, i, sheet) if name == "worksheets" and text[i] == "[" else None
        if name != "cells":
            return None
        count[0] = 0  # a repeated key: the parser keeps the last one
        return cells(i)

    _walk_object(text, _skip_ws(text, 0), top)
    return spans


# -- writing a value back ----------------------------------------------------------------------


@dataclass
class _String:
    raw: str  # the JSON token, quotes included
    text: str  # its value

    def pieces(self) -> list[str] | None:
        """The raw spelling of each character of ``text``."""
        pieces: list[str] = _PIECE.findall(self.raw[1:-1])
        return pieces if len(pieces) == len(self.text) else None


@dataclass
class _Source:
    """A cell's code value as written: one string, or a list of strings with its layout."""

    items: list[_String]
    is_list: bool
    ensure_ascii: bool
    open_ws: str = ""  # between "[" and the first item
    seps: list[str] = field(default_factory=list)  # between item i and i + 1, comma included
    close_ws: str = ""  # between the last item and "]"
    indent: str = ""  # the indentation of the line the value starts on

    @property
    def text(self) -> str:
        return "".join(item.text for item in self.items)

    @classmethod
    def parse(cls, raw: str, span: tuple[int, int], ensure_ascii: bool) -> _Source | None:
        start, end = span
        line_start = max(raw.rfind("\n", 0, start), raw.rfind("\r", 0, start)) + 1
        indent = re.match(r"[ \t]*", raw[line_start:start])
        source = cls([], raw[start] == "[", ensure_ascii, indent=indent.group(0) if indent else "")
        if raw[start] == '"':
            source.items.append(_String(raw[start:end], json.loads(raw[start:end])))
            return source
        if raw[start] != "[":
            return None
        i = _skip_ws(raw, start + 1)
        source.open_ws = raw[start + 1 : i]
        if raw[i] == "]":
            source.open_ws = ""
            return source
        while True:
            if raw[i] != '"':
                return None
            value, stop = _DECODER.raw_decode(raw, i)
            source.items.append(_String(raw[i:stop], value))
            after = _skip_ws(raw, stop)
            if raw[after] == "]":
                source.close_ws = raw[stop:after]
                return source
            i = _skip_ws(raw, _expect(raw, after, ","))
            source.seps.append(raw[stop:i])

    def _spell(self, text: str) -> str:
        return json.dumps(text, ensure_ascii=self.ensure_ascii)[1:-1]

    def _respell(self, item: _String | None, text: str) -> str:
        """``text`` as a JSON string, spelt as ``item`` was wherever its characters are kept."""
        pieces = item.pieces() if item is not None else None
        if item is None or pieces is None:
            return f'"{self._spell(text)}"'
        out = []
        for tag, a1, a2, b1, b2 in _char_diff(item.text, text):
            out.extend(pieces[a1:a2] if tag == "equal" else [self._spell(text[b1:b2])])
        return '"' + "".join(out) + '"'

    def render(self, text: str) -> str:
        if not self.is_list:
            return self._respell(self.items[0], text)
        old = [item.text for item in self.items]
        for split in (split_lines, lambda t: t.splitlines(keepends=True)):
            # The list is split into lines by one rule (nbformat's own is str.splitlines).
            if split(self.text) == old:
                return self._join(self._by_line(split(text)))
        return self._join(self._by_piece(text))

    def _by_line(self, new: list[str]) -> list[tuple[str, int | None]]:
        """Items for one line each: unchanged ones as written, changed ones respelt."""
        out: list[tuple[str, int | None]] = []
        old = [item.text for item in self.items]
        for tag, i1, i2, j1, j2 in line_diff(old, new):
            if tag == "equal":
                out.extend((self.items[i].raw, i) for i in range(i1, i2))
                continue
            for t, line in enumerate(new[j1:j2]):
                if i1 + t < i2:
                    out.append((self._respell(self.items[i1 + t], line), i1 + t))
                else:
                    out.append((self._respell(None, line), None))
        return out

    def _by_piece(self, text: str) -> list[tuple[str, int | None]]:
        """Items of an irregular list (several lines in one, a line over several): every kept
        character stays in its item; new text joins the item where it is inserted."""
        owner: list[int] = []
        pieces: list[str] = []
        for n, item in enumerate(self.items):
            spelt = item.pieces()
            if spelt is None:  # cannot happen for a decoded string; be safe anyway
                spelt = [self._spell(ch) for ch in item.text]
            pieces.extend(spelt)
            owner.extend([n] * len(spelt))
        parts: dict[int, list[str]] = {}
        for tag, a1, a2, b1, b2 in _char_diff(self.text, text):
            if tag == "equal":
                for k in range(a1, a2):
                    parts.setdefault(owner[k], []).append(pieces[k])
            elif b2 > b1:
                n = owner[a1] if a1 < a2 else owner[a1 - 1] if a1 else 0
                parts.setdefault(n, []).append(self._spell(text[b1:b2]))
        return [('"' + "".join(parts[n]) + '"', n) for n in sorted(parts)]

    def _join(self, items: list[tuple[str, int | None]]) -> str:
        if not items:
            return "[]"
        open_ws = self.open_ws if self.items else f"\n{self.indent} "
        close_ws = self.close_ws if self.items else f"\n{self.indent}"
        default = self.seps[0] if self.seps else ("," + open_ws if open_ws else ", ")
        out = ["[", open_ws, items[0][0]]
        for (_, a), (token, b) in zip(items, items[1:]):
            adjacent = a is not None and b == a + 1
            out += [self.seps[a] if adjacent and a is not None else default, token]
        out += [close_ws, "]"]
        return "".join(out)


def _char_diff(old: str, new: str) -> list[tuple[str, int, int, int, int]]:
    """Opcodes over characters: lines matched first, each changed run of lines narrowed to
    the characters that differ."""
    a, b = split_lines(old), split_lines(new)
    ao, bo = [0], [0]
    for line in a:
        ao.append(ao[-1] + len(line))
    for line in b:
        bo.append(bo[-1] + len(line))
    out: list[tuple[str, int, int, int, int]] = []
    for tag, i1, i2, j1, j2 in line_diff(a, b):
        a1, a2, b1, b2 = ao[i1], ao[i2], bo[j1], bo[j2]
        if tag == "equal":
            out.append(("equal", a1, a2, b1, b2))
            continue
        p = 0
        while a1 + p < a2 and b1 + p < b2 and old[a1 + p] == new[b1 + p]:
            p += 1
        s = 0
        while a2 - s > a1 + p and b2 - s > b1 + p and old[a2 - s - 1] == new[b2 - s - 1]:
            s += 1
        if p:
            out.append(("equal", a1, a1 + p, b1, b1 + p))
        out.append(("replace", a1 + p, a2 - s, b1 + p, b2 - s))
        if s:
            out.append(("equal", a2 - s, a2, b2 - s, b2))
    return out
