"""Documents: files whose Python code comes in chunks (notebook cells, Markdown code blocks).

Each document is turned into one Python *program*: its chunks in order, separated by sentinel
comment lines, with IPython syntax masked. The pipeline lints the program as it would a ``.py``
file; positions are mapped back to the file (cell and row, or the file's own line), and a fixed
program is split at the sentinels and written back into the chunks it came from, every other
byte of the file unchanged. ``.py`` files need none of this and do not go through here.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from bnblint.diagnostics import Finding, Location, TextEdit

SENTINEL = "# bnblint-chunk {}"
_SENTINEL = re.compile(r"^# bnblint-chunk (\d+)$")
MASK = "  # bnblint-mask {}"
_MASK = re.compile(r"  # bnblint-mask (\d+)$")


class DocumentError(Exception):
    """A document that cannot be read as its format (broken JSON, not a notebook)."""


@dataclass
class Chunk:
    text: str  # Python source, every line ending in a newline
    cell: int | None = None  # 1-based code-cell number (notebooks)
    first_line: int = 1  # the file line of the chunk's first line (Markdown)
    indent: str = ""  # prefix removed from every line (indented code blocks)
    key: int = 0  # which chunk of the container it is (for writing back)


@dataclass
class Document(ABC):
    chunks: list[Chunk]
    masks: dict[int, str] = field(default_factory=dict)  # mask id -> original line

    @property
    def program(self) -> str:
        parts = []
        for i, chunk in enumerate(self.chunks):
            if i:
                parts.append(SENTINEL.format(i) + "\n")
            parts.append(chunk.text)
        return "".join(parts)

    @classmethod
    @abstractmethod
    def from_text(cls, text: str) -> Document: ...

    @abstractmethod
    def with_chunks(self, texts: dict[int, str]) -> str:
        """The file's text with chunk ``key``'s code replaced by ``texts[key]``."""

    # -- mapping positions ------------------------------------------------------------------

    def _starts(self, program: str) -> list[int]:
        """Program row (1-based) where each chunk starts."""
        starts = [1]
        for row, line in enumerate(program.splitlines(), start=1):
            if _SENTINEL.match(line):
                starts.append(row + 1)
        return starts

    def locate(self, loc: Location, starts: list[int]) -> tuple[Chunk, Location]:
        index = max(i for i, s in enumerate(starts) if s <= loc.row)
        chunk = self.chunks[min(index, len(self.chunks) - 1)]
        row = loc.row - starts[index] + 1
        column = loc.column + len(chunk.indent) if chunk.indent else loc.column
        return chunk, Location(chunk.first_line + row - 1, column)

    def map_finding(self, finding: Finding, program: str) -> Finding:
        starts = self._starts(program)
        chunk, location = self.locate(finding.location, starts)
        _, end = self.locate(finding.end_location, starts)
        finding.location, finding.end_location = location, end
        finding.cell = chunk.cell
        finding.noqa_row = location.row
        if finding.load_site is not None:
            site_chunk, site = self.locate(finding.load_site, starts)
            # A load in another cell: keep the row, the cell is named in the message.
            finding.load_site = site
            if site_chunk.cell is not None and site_chunk.cell != chunk.cell:
                finding.message += f" (load in cell {site_chunk.cell})"
        finding.edits = [self._map_edit(e, starts) for e in finding.edits]
        return finding

    def _map_edit(self, edit: TextEdit, starts: list[int]) -> TextEdit:
        chunk, start = self.locate(edit.location, starts)
        _, end = self.locate(edit.end_location, starts)
        content = edit.content
        if chunk.indent and "\n" in content:
            content = content.replace("\n", "\n" + chunk.indent)
        return TextEdit(content, start, end)

    # -- writing back -----------------------------------------------------------------------

    def rebuild(self, fixed_program: str) -> str:
        """The file's new text for a fixed program."""
        texts: list[list[str]] = [[]]
        for line in fixed_program.splitlines(keepends=True):
            if _SENTINEL.match(line.rstrip("\r\n")):
                texts.append([])
                continue
            match = _MASK.search(line.rstrip("\r\n"))
            if match is not None:
                newline = line[len(line.rstrip("\r\n")) :]
                line = self.masks[int(match.group(1))] + newline
            texts[-1].append(line)
        if len(texts) != len(self.chunks):
            raise DocumentError("a fix changed the chunk structure")
        changed = {
            chunk.key: "".join(lines)
            for chunk, lines in zip(self.chunks, texts)
            if "".join(lines) != self.unmask(chunk.text)
        }
        return self.with_chunks(changed)

    def unmask(self, text: str) -> str:
        out = []
        for line in text.splitlines(keepends=True):
            match = _MASK.search(line.rstrip("\r\n"))
            if match is not None:
                line = self.masks[int(match.group(1))] + line[len(line.rstrip("\r\n")) :]
            out.append(line)
        return "".join(out)


NOTEBOOK_SUFFIXES = (".ipynb",)
DOCS_SUFFIXES = (".md", ".markdown", ".rst")


def document_type(filename: str) -> type[Document] | None:
    """The document class for a file name, or None for plain Python."""
    name = filename.lower()
    if name.endswith(NOTEBOOK_SUFFIXES):
        from bnblint.documents.notebook import Notebook

        return Notebook
    if name.endswith((".md", ".markdown")):
        from bnblint.documents.markdown import MarkdownDocument

        return MarkdownDocument
    if name.endswith(".rst"):
        from bnblint.documents.markdown import RstDocument

        return RstDocument
    return None
