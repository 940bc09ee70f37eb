"""The stdlib AST as the analysis and the rules read it.

The analysis model is built from ``ast`` (one ``compile`` per document, about a tenth of a
LibCST parse); LibCST is parsed only where a fix is rendered or applied, and the fix layer finds
the LibCST node of each ast node by its kind and span (``bnblint.fix.nodes``). This module holds
what both sides agree on:

- ``DictItem``: one ``key: value`` of a dict literal, which the stdlib AST has no node for;
- ``Positions``: 1-based rows and columns *in characters* of a node (``ast`` counts columns in
  UTF-8 bytes), the same numbers LibCST's ``PositionProvider`` gives: a node's span excludes
  the parentheses around it, a keyword argument's its comma;
- small readers (``dotted``, ``string_value``) that the builder and the rules share.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Protocol, Union, cast

from bnblint.lines import LINE_BREAK


@dataclass(eq=False)
class DictItem:
    """One entry of a dict literal: ``key: value``, or ``**value`` when ``key`` is None.

    Made once per dict literal by ``dict_items`` (identity is stable: findings, fixes and the
    model's entries may hold it). Its span runs from the key (the value, for ``**``) to the
    end of the value, like LibCST's ``DictElement`` but without a closing parenthesis of a
    parenthesized value: read ``key`` and ``value``, never the segment of the item itself.
    """

    key: ast.expr | None
    value: ast.expr
    dict: ast.Dict
    index: int  # position among the dict's entries

    @property
    def lineno(self) -> int:
        return (self.key or self.value).lineno

    @property
    def col_offset(self) -> int:
        return (self.key or self.value).col_offset

    @property
    def end_lineno(self) -> int | None:
        return self.value.end_lineno

    @property
    def end_col_offset(self) -> int | None:
        return self.value.end_col_offset


# Anything the model points at: a stdlib AST node or a dict entry.
Node = Union[ast.AST, DictItem]

_ITEMS = "_bnblint_items"


def dict_items(node: ast.Dict) -> list[DictItem]:
    """The entries of a dict literal, made once per node."""
    items: list[DictItem] | None = getattr(node, _ITEMS, None)
    if items is None:
        items = [DictItem(k, v, node, i) for i, (k, v) in enumerate(zip(node.keys, node.values))]
        setattr(node, _ITEMS, items)
    return items


# Fields that never hold a node with children worth visiting (names, operators, contexts).
_LEAF_FIELDS = frozenset(
    {"ctx", "op", "ops", "id", "attr", "arg", "kind", "type_comment", "name", "names", "level"}
    | {"module", "conversion", "is_async"}
)
_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """The child nodes of ``node`` in ``ast``'s field order (source order, except for a
    ``Call``'s keywords and ``*args``, a ``Dict``'s keys and values and an ``IfExp``), without
    the leaves no walk needs (contexts, operators, aliases): ``ast.iter_child_nodes``, cheaper."""
    cls = type(node)
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = tuple(f for f in cls._fields if f not in _LEAF_FIELDS)
    out: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            out.append(value)
    return out


def made_dict_items(node: ast.Dict) -> list[DictItem]:
    """The entries of a dict literal that ``dict_items`` has made so far (none if never asked):
    for looking a ``DictItem`` up by identity without making new ones."""
    items: list[DictItem] = getattr(node, _ITEMS, [])
    return items


def dotted(node: ast.AST | None) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def string_value(node: ast.AST | None) -> str | None:
    """The value of a string literal (implicit concatenation included), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def keyword_named(call: ast.Call, name: str) -> ast.keyword | None:
    """The last keyword argument ``name=`` of a call (the one Python would complain about is
    the second; there is at most one in a valid call)."""
    found = None
    for kw in call.keywords:
        if kw.arg == name:
            found = kw
    return found


class _Located(Protocol):
    """What ``ast`` gives every expression, statement, keyword and argument (not ``ast.AST``)."""

    lineno: int
    col_offset: int
    end_lineno: int | None
    end_col_offset: int | None


class Positions:
    """Rows and character columns of nodes of one text (the text ``ast`` parsed)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in LINE_BREAK.finditer(text)]

    def _line(self, row: int) -> str:
        start = self.starts[row - 1]
        end = self.starts[row] if row < len(self.starts) else len(self.text)
        return self.text[start:end]

    def column(self, row: int, byte_col: int) -> int:
        """The 0-based character column of UTF-8 byte column ``byte_col`` on row ``row``."""
        line = self._line(row)
        if line.isascii():
            return byte_col
        return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))

    def offset(self, row: int, byte_col: int) -> int:
        """The offset in the text of a position as ``ast`` gives it."""
        return self.starts[row - 1] + self.column(row, byte_col)

    def span(self, node: Node) -> tuple[int, int, int, int]:
        """(row, column, end row, end column), 1-based, columns in characters."""
        at = cast(_Located, node)  # every node the model holds has a position
        end_row = at.end_lineno if at.end_lineno is not None else at.lineno
        end_col = at.end_col_offset if at.end_col_offset is not None else at.col_offset
        return (
            at.lineno,
            self.column(at.lineno, at.col_offset) + 1,
            end_row,
            self.column(end_row, end_col) + 1,
        )

    def offsets(self, node: Node) -> tuple[int, int]:
        """Start and end offsets of a node in the text."""
        row, col, end_row, end_col = self.span(node)
        return self.starts[row - 1] + col - 1, self.starts[end_row - 1] + end_col - 1

    def segment(self, node: Node) -> str:
        """The exact source of a node (without the parentheses around it)."""
        start, end = self.offsets(node)
        return self.text[start:end]
