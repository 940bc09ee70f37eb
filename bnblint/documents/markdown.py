"""Python code blocks in Markdown (fenced, tagged python/py) and reStructuredText
(``.. code-block:: python``). Blocks that do not parse (prose, shell sessions, partial snippets)
are skipped; the rest form one program, as tutorials define a config in one block and load in
the next. Positions are the file's own lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bnblint.documents import Chunk, Document
from bnblint.pipeline import parse_ast

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*\{?\.?(?P<info>[\w+-]*)")
_RST = re.compile(r"^(?P<indent>[ \t]*)\.\. (?:code-block|code|sourcecode)::[ \t]*(?P<lang>\S*)")


@dataclass
class Block:
    start: int  # 0-based index of the first content line
    count: int  # number of content lines
    indent: str


@dataclass
class TextDocument(Document):
    lines: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @classmethod
    def from_text(cls, text: str) -> TextDocument:
        doc = cls(chunks=[], lines=text.splitlines(keepends=True))
        for block in doc.find_blocks():
            content = [
                _strip(line, block.indent)
                for line in doc.lines[block.start : block.start + block.count]
            ]
            code = "".join(line if line.endswith("\n") else line + "\n" for line in content)
            try:
                parse_ast(code)
            except (SyntaxError, ValueError):
                continue
            key = len(doc.blocks)
            doc.blocks.append(block)
            doc.chunks.append(Chunk(code, first_line=block.start + 1, indent=block.indent, key=key))
        return doc

    def find_blocks(self) -> list[Block]:
        raise NotImplementedError

    def with_chunks(self, texts: dict[int, str]) -> str:
        lines = list(self.lines)
        newline = "\r\n" if any(line.endswith("\r\n") for line in lines) else "\n"
        for key in sorted(texts, reverse=True):
            block = self.blocks[key]
            new = [
                (block.indent + line if line.strip() else "") + newline
                for line in texts[key].splitlines()
            ]
            lines[block.start : block.start + block.count] = new
        return "".join(lines)


def _strip(line: str, indent: str) -> str:
    if line.startswith(indent):
        return line[len(indent) :]
    return line.lstrip(" \t") if not line.strip() else line


class MarkdownDocument(TextDocument):
    def find_blocks(self) -> list[Block]:
        blocks = []
        i = 0
        while i < len(self.lines):
            match = _FENCE.match(self.lines[i])
            if match is None:
                i += 1
                continue
            fence = match.group("fence")
            close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
            end = i + 1
            while end < len(self.lines) and not close.match(self.lines[end].rstrip("\r\n")):
                end += 1
            if match.group("info").lower() in PYTHON_TAGS:
                blocks.append(Block(i + 1, end - i - 1, match.group("indent")))
            i = end + 1
        return blocks


class RstDocument(TextDocument):
    def find_blocks(self) -> list[Block]:
        blocks = []
        for i, line in enumerate(self.lines):
            match = _RST.match(line)
            if match is None or match.group("lang").lower() not in PYTHON_TAGS:
                continue
            base = len(match.group("indent").expandtabs())
            j = i + 1
            # directive options (":linenos:") and blank lines before the content
            while j < len(self.lines) and (
                not self.lines[j].strip() or self.lines[j].strip().startswith(":")
            ):
                j += 1
            if j >= len(self.lines):
                continue
            indent = re.match(r"[ \t]*", self.lines[j])
            if indent is None or len(indent.group(0).expandtabs()) <= base:
                continue
            end = j
            while end < len(self.lines) and (
                not self.lines[end].strip() or self.lines[end].startswith(indent.group(0))
            ):
                end += 1
            while end > j and not self.lines[end - 1].strip():
                end -= 1
            blocks.append(Block(j, end - j, indent.group(0)))
        return blocks
