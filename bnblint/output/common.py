"""Helpers the output formats share: paths as CI tools want them, source lines, edits."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bnblint import lines as _lines
from bnblint.diagnostics import Finding, Location, TextEdit
from bnblint.pipeline import FileResult
from bnblint.source import SourceError, read_source


def relative_path(filename: str, base: Path | None = None) -> str:
    """``filename`` relative to ``base`` (default: the working directory), with ``/``.

    Paths outside ``base`` (and stdin's ``-``) are returned as given: CI tools then show them
    as they are, which beats a ``../..`` chain they cannot map to the repository.
    """
    if filename == "-":
        return filename
    root = Path(os.path.abspath(base if base is not None else Path.cwd()))
    path = Path(os.path.abspath(filename))
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return filename


# The rows the pipeline's positions use: one line rule for the whole code base.
split_lines = _lines.split_lines
strip_end = _lines.strip_ending


def result_text(result: FileResult) -> str | None:
    """The text the result's positions refer to (the fixed text after ``--fix``)."""
    if result.fixed_text is not None:
        return result.fixed_text
    if result.source is not None:
        return result.source.text
    if result.filename == "-" or result.error is not None:
        return None
    try:
        return read_source(Path(result.filename)).text
    except SourceError:
        return None


def lines_by_file(results: Iterable[FileResult]) -> dict[str, list[str]]:
    """Filename -> source lines, for the results that have findings."""
    found: dict[str, list[str]] = {}
    for result in results:
        if result.findings:
            text = result_text(result)
            if text is not None:
                found[result.filename] = split_lines(text)
    return found


def cells_by_file(results: Iterable[FileResult]) -> dict[str, dict[int, list[str]]]:
    """Notebook filename -> code-cell number -> the cell's lines, for results with findings."""
    from bnblint.documents import DocumentError, document_type

    found: dict[str, dict[int, list[str]]] = {}
    for result in results:
        if not any(f.cell is not None for f in result.findings):
            continue
        text, kind = result_text(result), document_type(result.filename)
        if text is None or kind is None:
            continue
        try:
            document = kind.from_text(text)
        except DocumentError:
            continue
        found[result.filename] = {
            c.cell: split_lines(document.unmask(c.text))
            for c in document.chunks
            if c.cell is not None
        }
    return found


class SourceLines:
    """The lines each finding's positions refer to: its file's, or its notebook cell's."""

    def __init__(self, results: Iterable[FileResult]) -> None:
        results = list(results)
        self.files = lines_by_file(results)
        self.cells = cells_by_file(results)

    def of(self, f: Finding) -> list[str]:
        if f.cell is None:
            return self.files.get(f.filename, [])
        return self.cells.get(f.filename, {}).get(f.cell, [])


def line_starts(lines: list[str]) -> list[int]:
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return starts


def apply_edits(text: str, edits: Iterable[TextEdit]) -> str:
    """The text with the edits applied (edits must not overlap, as the pipeline makes them)."""
    starts = line_starts(split_lines(text))

    def offset(loc: Location) -> int:
        return starts[loc.row - 1] + loc.column - 1

    spans = sorted(
        ((offset(e.location), offset(e.end_location), e.content) for e in edits), reverse=True
    )
    for start, end, content in spans:
        text = text[:start] + content + text[end:]
    return text


def located_message(f: Finding) -> str:
    """The message, led by the cell and position for a notebook finding: formats whose
    positions are the file's lines (GitHub, SARIF) cannot point into a cell."""
    if f.cell is None:
        return f.message
    return f"cell {f.cell}, line {f.location.row}, column {f.location.column}: {f.message}"
