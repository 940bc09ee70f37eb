"""Python code blocks in Markdown (fenced, tagged python/py) and reStructuredText
(``.. code-block:: python``). Blocks that do not parse (prose, shell sessions, partial snippets)
are skipped; the rest form one program, as tutorials define a config in one block and load in
the next. Positions are the file's own lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bnblint.documents import (
    Chunk,
    Document,
    DocumentError,
    line_diff,
    make_nonce,
    nearest_ending,
)
from bnblint.lines import line_ending, split_lines, strip_ending
from bnblint.parse import parse_ast

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
    lines: list[str] = field(default_factory=list)  # the file's lines, endings kept
    blocks: list[Block] = field(default_factory=list)

    @classmethod
    def from_text(cls, text: str) -> TextDocument:
        doc = cls(chunks=[], lines=split_lines(text), nonce=make_nonce(text))
        for block in doc.find_blocks():
            prefixes, code = [], []
            for line in doc.lines[block.start : block.start + block.count]:
                body = strip_ending(line)
                content = _strip(body, block.indent)
                prefixes.append(body[: len(body) - len(content)])
                code.append(content + (line_ending(line) or "\n"))
            try:
                parse_ast("".join(code))
            except (SyntaxError, ValueError):
                continue
            except (RecursionError, MemoryError):
                # Valid code the parser cannot hold: skipping it would pass it unchecked.
                raise DocumentError(
                    f"the code block at line {block.start + 1} is nested too deeply to parse"
                ) from None
            key = len(doc.blocks)
            doc.blocks.append(block)
            doc.chunks.append(
                Chunk(
                    "".join(code),
                    first_line=block.start + 1,
                    indent=block.indent,
                    key=key,
                    prefixes=prefixes,
                )
            )
        return doc

    def find_blocks(self) -> list[Block]:
        raise NotImplementedError

    def with_chunks(self, texts: dict[int, str]) -> str:
        lines = list(self.lines)
        for key in sorted(texts, reverse=True):
            block = self.blocks[key]
            lines[block.start : block.start + block.count] = self._rewrite(key, texts[key])
        return "".join(lines)

    def _rewrite(self, key: int, text: str) -> list[str]:
        """The block's new file lines: an unchanged line keeps its bytes (prefix, trailing
        whitespace, line ending); a changed one keeps the prefix and ending of the line it
        replaces; a new one gets the block's indentation and its neighbour's ending."""
        block, chunk = self.blocks[key], self.chunks[key]
        old_lines = self.lines[block.start : block.start + block.count]
        old = [strip_ending(line) for line in split_lines(chunk.text)]
        new = [strip_ending(line) for line in split_lines(text)]
        default = nearest_ending(self.lines, block.start, "\n")
        out: list[str] = []
        for tag, i1, i2, j1, j2 in line_diff(old, new):
            if tag == "equal":
                out.extend(old_lines[i1:i2])
                continue
            for t, content in enumerate(new[j1:j2]):
                if i1 + t < i2:
                    prefix = chunk.prefixes[i1 + t]
                    ending = line_ending(old_lines[i1 + t])
                else:
                    prefix = block.indent if content.strip() else ""
                    ending = nearest_ending(old_lines, min(i1, len(old_lines) - 1), default)
                out.append(prefix + content + ending)
        # Only the file's last line may lack an ending (a block left open at the end).
        for i, line in enumerate(out[:-1]):
            if not line_ending(line):
                out[i] = line + default
        return out


def _strip(body: str, indent: str) -> str:
    """A block line without the block's indentation (a blank line may have less)."""
    if body.startswith(indent):
        return body[len(indent) :]
    return body.lstrip(" \t") if not body.strip() else body


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
