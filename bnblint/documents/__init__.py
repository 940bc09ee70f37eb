"""Documents: files whose Python code comes in chunks (notebook cells, Markdown code blocks).

Each document is turned into one Python *program*: its chunks in order, separated by sentinel
comment lines, with IPython syntax masked. The pipeline lints the program as it would a ``.py``
file; positions are mapped back to the file (cell and row, or the file's own line), and a fixed
program is split at the sentinels and written back into the chunks it came from, every other
byte of the file unchanged. ``.py`` files need none of this and do not go through here.

The sentinel and mask comments carry a nonce derived from the document that occurs nowhere in
it, so no text a user writes can be taken for one. Positions are mapped by the chunks' row
counts, not by finding sentinels in the text. Rows follow ``bnblint.lines`` (``\\r\\n``, ``\\r``,
``\\n``), as the pipeline's positions do.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from bisect import bisect_right
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cached_property
from itertools import accumulate

from bnblint.diagnostics import Finding, Location, TextEdit
from bnblint.lines import LINE_BREAK, line_ending, split_lines, strip_ending


class DocumentError(Exception):
    """A document that cannot be read as its format (broken JSON, not a notebook)."""


@dataclass
class Chunk:
    text: str  # Python source, every line ending in a line break
    cell: int | None = None  # 1-based code-cell number (notebooks)
    first_line: int = 1  # the file line of the chunk's first line (Markdown)
    indent: str = ""  # prefix removed from the block's lines (indented code blocks)
    key: int = 0  # which chunk of the container it is (for writing back)
    prefixes: list[str] = field(default_factory=list)  # per row: what was removed before it


def make_nonce(*texts: str) -> str:
    """A token derived from ``texts`` that occurs in none of them (deterministic, so the
    program of a document is the same on every run)."""
    seed = "\0".join(texts)
    while True:
        nonce = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if not any(nonce in text for text in texts):
            return nonce
        seed = nonce + seed


@dataclass
class Document(ABC):
    chunks: list[Chunk]
    masks: dict[int, str] = field(default_factory=dict)  # mask id -> original line
    nonce: str = ""

    def sentinel(self, index: int) -> str:
        return f"# bnblint-chunk-{self.nonce} {index}"

    def mask_comment(self, key: int) -> str:
        return f"  # bnblint-mask-{self.nonce} {key}"

    @property
    def program(self) -> str:
        parts = []
        for i, chunk in enumerate(self.chunks):
            if i:
                parts.append(self.sentinel(i) + "\n")
            parts.append(chunk.text)
        return "".join(parts)

    @classmethod
    @abstractmethod
    def from_text(cls, text: str) -> Document: ...

    @abstractmethod
    def with_chunks(self, texts: dict[int, str]) -> str:
        """The file's text with chunk ``key``'s code replaced by ``texts[key]``."""

    # -- mapping positions ------------------------------------------------------------------

    @cached_property
    def _starts(self) -> list[int]:
        """Program row (1-based) where each chunk starts: one sentinel row between chunks.
        (Computed once: a document's chunks do not change after ``from_text``.)"""
        rows = [len(split_lines(chunk.text)) + 1 for chunk in self.chunks]
        return [1, *(1 + r for r in accumulate(rows[:-1]))] if rows else [1]

    def locate(self, loc: Location, starts: list[int]) -> tuple[Chunk, Location]:
        index = max(bisect_right(starts, loc.row) - 1, 0)
        chunk = self.chunks[min(index, len(self.chunks) - 1)]
        row = loc.row - starts[index] + 1
        prefix = chunk.prefixes[row - 1] if 0 < row <= len(chunk.prefixes) else chunk.indent
        return chunk, Location(chunk.first_line + row - 1, loc.column + len(prefix))

    def map_finding(self, finding: Finding, program: str | None = None) -> Finding:
        """``finding``, positioned in this document's program, positioned in the file.
        (``program``, once used to find the sentinels, is no longer needed.)"""
        starts = self._starts
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
        if chunk.indent:
            content = LINE_BREAK.sub(lambda m: m.group(0) + chunk.indent, content)
        return TextEdit(content, start, end)

    # -- writing back -----------------------------------------------------------------------

    def rebuild(self, fixed_program: str) -> str:
        """The file's new text for a fixed program."""
        sentinel = re.compile(rf"# bnblint-chunk-{self.nonce} (\d+)")
        texts: list[list[str]] = [[]]
        for line in split_lines(fixed_program):
            match = sentinel.fullmatch(strip_ending(line))
            if match is not None:
                if int(match.group(1)) != len(texts):
                    raise DocumentError("a fix changed the chunk structure")
                texts.append([])
                continue
            texts[-1].append(self._unmask_line(line))
        if len(texts) != max(len(self.chunks), 1) or (not self.chunks and texts[0]):
            raise DocumentError("a fix changed the chunk structure")
        changed = {
            chunk.key: "".join(lines)
            for chunk, lines in zip(self.chunks, texts)
            if "".join(lines) != self.unmask(chunk.text)
        }
        return self.with_chunks(changed)

    def unmask(self, text: str) -> str:
        return "".join(self._unmask_line(line) for line in split_lines(text))

    @cached_property
    def _mask_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"  # bnblint-mask-{self.nonce} (\d+)$")

    def _unmask_line(self, line: str) -> str:
        if not self.masks:
            return line
        body = strip_ending(line)
        match = self._mask_pattern.search(body)
        if match is None:
            return line
        original = self.masks.get(int(match.group(1)))
        if original is None:
            raise DocumentError("a fix changed a masked line")
        return original + line[len(body) :]


def line_diff(old: list[str], new: list[str]) -> list[tuple[str, int, int, int, int]]:
    """Opcodes turning ``old`` into ``new`` (difflib's), without its junk heuristic, which
    would call a repeated line (``)``, a blank) changed."""
    return list(SequenceMatcher(None, old, new, autojunk=False).get_opcodes())


def nearest_ending(lines: list[str], index: int, default: str) -> str:
    """The line ending of ``lines[index]``, else of the closest line that has one."""
    for distance in range(len(lines)):
        for i in (index - distance, index + distance):
            if 0 <= i < len(lines) and line_ending(lines[i]):
                return line_ending(lines[i])
    return default


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
