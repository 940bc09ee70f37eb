"""Jupyter notebooks: code cells in order form the program; only changed cells are rewritten.

The notebook's JSON is never re-serialised: each code cell's ``source`` value is located in the
raw text, and only the values of changed cells are replaced, in the style they were written
(a list of lines or one string, the same indentation, the same escaping), so key order, outputs,
metadata and every other byte stay as they were.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from bnblint.documents import MASK, Chunk, Document, DocumentError
from bnblint.pipeline import parse_ast

# IPython syntax that is not Python: shell escapes, line magics, help.
_SHELL_OR_MAGIC = re.compile(r"^(\s*)(?:[!%?]|[\w.\[\]'\", ]+=\s*[!%])")
_HELP = re.compile(r"^(\s*)[\w.]+\?\??\s*$")
_DECODER = json.JSONDecoder()


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
    trailing_newline: dict[int, bool] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str) -> Notebook:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"invalid notebook JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise DocumentError("not a Jupyter notebook: no `cells` list")
        notebook = cls(chunks=[], raw=text)
        if not _is_python(data):
            return notebook
        notebook.spans = _source_spans(text)
        number = 0
        for index, cell in enumerate(data["cells"]):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            number += 1
            source = cell.get("source", "")
            if isinstance(source, list):
                source = "".join(s for s in source if isinstance(s, str))
            if not isinstance(source, str) or index not in notebook.spans:
                continue
            masked = notebook.mask(source)
            if masked is None:
                continue  # not Python even with IPython syntax masked: skipped, like ruff's
            notebook.trailing_newline[index] = source.endswith("\n")
            if masked and not masked.endswith("\n"):
                masked += "\n"
            notebook.chunks.append(Chunk(masked, cell=number, key=index))
        return notebook

    def mask(self, source: str) -> str | None:
        """The cell with IPython-only lines replaced by ``pass`` (restored on output)."""
        if _parses(source):
            return source
        lines = source.splitlines(keepends=True)
        cell_magic = bool(lines) and lines[0].lstrip().startswith("%%")
        out = []
        for line in lines:
            body = line.rstrip("\r\n")
            newline = line[len(body) :]
            match = _SHELL_OR_MAGIC.match(body) or _HELP.match(body)
            if cell_magic or match is not None:
                indent = "" if cell_magic or match is None else match.group(1)
                key = len(self.masks)
                self.masks[key] = body
                out.append(f"{indent}pass{MASK.format(key)}{newline or chr(10)}")
            else:
                out.append(line)
        masked = "".join(out)
        return masked if _parses(masked) else None

    def with_chunks(self, texts: dict[int, str]) -> str:
        raw = self.raw
        for index in sorted(texts, reverse=True):
            start, end = self.spans[index]
            text = texts[index]
            if not self.trailing_newline.get(index, True) and text.endswith("\n"):
                text = text[:-1]
            raw = raw[:start] + _render_source(raw[start:end], text, raw, start) + raw[end:]
        return raw


def _is_python(data: dict) -> bool:  # type: ignore[type-arg]
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return True
    for key, field_name in (("kernelspec", "language"), ("language_info", "name")):
        section = metadata.get(key)
        if isinstance(section, dict) and isinstance(section.get(field_name), str):
            return section[field_name].lower() == "python"
    return True


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _expect(text: str, i: int, char: str) -> int:
    i = _skip_ws(text, i)
    if i >= len(text) or text[i] != char:
        raise DocumentError(f"invalid notebook JSON: expected {char!r} at offset {i}")
    return i + 1


def _members(text: str, i: int):  # type: ignore[no-untyped-def]
    """Yield (key, value_start) of an object starting at ``i``; the caller reports the end."""
    i = _expect(text, i, "{")
    i = _skip_ws(text, i)
    if text[i] == "}":
        return
    while True:
        key, i = _DECODER.raw_decode(text, _skip_ws(text, i))
        i = _skip_ws(text, _expect(text, i, ":"))
        end = yield key, i
        i = _skip_ws(text, end)
        if text[i] == "}":
            return
        i = _expect(text, i, ",")


def _value_end(text: str, i: int) -> int:
    return _DECODER.raw_decode(text, i)[1]


def _source_spans(text: str) -> dict[int, tuple[int, int]]:
    """Offsets of each cell's ``source`` value in the raw JSON."""
    spans: dict[int, tuple[int, int]] = {}
    top = _members(text, 0)
    try:
        key, start = next(top)
        while True:
            if key == "cells":
                end = _cells(text, start, spans)
            else:
                end = _value_end(text, start)
            key, start = top.send(end)
    except StopIteration:
        pass
    return spans


def _cells(text: str, i: int, spans: dict[int, tuple[int, int]]) -> int:
    i = _expect(text, i, "[")
    index = 0
    i = _skip_ws(text, i)
    if text[i] == "]":
        return i + 1
    while True:
        cell = _members(text, i)
        try:
            key, start = next(cell)
            while True:
                end = _value_end(text, start)
                if key == "source":
                    spans[index] = (start, end)
                key, start = cell.send(end)
        except StopIteration:
            pass
        i = _skip_ws(text, _object_end(text, i))
        index += 1
        if text[i] == "]":
            return i + 1
        i = _expect(text, i, ",")


def _object_end(text: str, i: int) -> int:
    return _value_end(text, _skip_ws(text, i))


def _render_source(old: str, text: str, raw: str, start: int) -> str:
    """``text`` as a JSON ``source`` value written the way ``old`` was."""
    ensure_ascii = "\\u" in old and not any(ord(c) > 127 for c in old)
    if not old.startswith("["):
        return json.dumps(text, ensure_ascii=ensure_ascii)
    lines = text.splitlines(keepends=True)
    opening = re.match(r"\[(\s*)", old)
    closing = re.search(r"(\s*)\]$", old)
    if opening is None or closing is None or old.strip() == "[]":
        line_start = raw.rfind("\n", 0, start) + 1
        indent = re.match(r"\s*", raw[line_start:start])
        base = indent.group(0) if indent else ""
        open_ws, close_ws = f"\n{base} ", f"\n{base}"
    else:
        open_ws, close_ws = opening.group(1), closing.group(1)
    if not lines:
        return "[]"
    items = [json.dumps(line, ensure_ascii=ensure_ascii) for line in lines]
    return "[" + open_ws + ("," + open_ws).join(items) + close_ws + "]"
