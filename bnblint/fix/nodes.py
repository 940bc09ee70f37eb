"""The LibCST node of each stdlib-AST node of a fix: where the analysis (``ast``) meets the
fix appliers (LibCST).

Rules return fix operations on nodes of the analysis model, stdlib AST nodes of one parse of
the document text (``bnblint.analysis.syntax``). Only when a fix is rendered or applied is the
same text parsed with LibCST (lazily, once per text: ``document_for``), and each operation's
node is found there by its kind and span: LibCST's ``PositionProvider`` gives the same numbers
as ``Positions.span`` (1-based rows, character columns, parentheses around a node left out, a
keyword argument without its comma). The operations are then translated to operations on
LibCST nodes, which ``bnblint.fix.apply`` applies.

A node that has no counterpart (LibCST reads the text differently, or cannot parse it) raises
``Unmapped``: that fix is reported as not applied, never guessed at.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union, cast

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from bnblint.analysis.syntax import DictItem, Node, Positions
from bnblint.diagnostics import (
    AddDictEntry,
    AddImport,
    AddImportFrom,
    AddKeyword,
    Operation,
    RemoveDictEntry,
    RemoveKeyword,
    RemoveStatement,
    ReplaceNode,
)
from bnblint.parse import parse_cst

Span = tuple[int, int, int, int]  # row, column, end row, end column: 1-based, in characters

# -- the operations on LibCST nodes, as the appliers read them --------------------------------


@dataclass(frozen=True)
class CstAddKeyword:
    call: cst.Call
    name: str
    value: str  # Python source of the value


@dataclass(frozen=True)
class CstAddDictEntry:
    dict: cst.Dict
    key: str
    value: str


@dataclass(frozen=True)
class CstRemoveKeyword:
    call: cst.Call
    name: str


@dataclass(frozen=True)
class CstRemoveDictEntry:
    dict: cst.Dict
    key: str


@dataclass(frozen=True)
class CstReplaceNode:
    """``node``: an expression, an ``Arg``, a dict element or a small statement."""

    node: cst.CSTNode
    code: str


@dataclass(frozen=True)
class CstRemoveStatement:
    statement: cst.BaseSmallStatement


CstOperation = Union[
    CstAddKeyword,
    CstAddDictEntry,
    AddImport,
    AddImportFrom,
    CstRemoveKeyword,
    CstRemoveDictEntry,
    CstReplaceNode,
    CstRemoveStatement,
]


class Unmapped(Exception):
    """A fix's node has no LibCST counterpart in the text (or LibCST cannot parse the text)."""


# -- which LibCST nodes an ast node may be ----------------------------------------------------

_STRINGS = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)
_EXPRESSION_KINDS: dict[type[ast.AST], tuple[type[cst.CSTNode], ...]] = {
    ast.Call: (cst.Call,),
    ast.Dict: (cst.Dict,),
    ast.Name: (cst.Name,),
    ast.Attribute: (cst.Attribute,),
    ast.Subscript: (cst.Subscript,),
    ast.Tuple: (cst.Tuple,),
    ast.List: (cst.List,),
    ast.Set: (cst.Set,),
    ast.JoinedStr: (cst.FormattedString, cst.ConcatenatedString),
    ast.Constant: (*_STRINGS, cst.Integer, cst.Float, cst.Imaginary, cst.Name, cst.Ellipsis),
    ast.UnaryOp: (cst.UnaryOperation,),
    ast.BinOp: (cst.BinaryOperation,),
    ast.BoolOp: (cst.BooleanOperation,),
    ast.Compare: (cst.Comparison,),
    ast.IfExp: (cst.IfExp,),
    ast.Lambda: (cst.Lambda,),
    ast.GeneratorExp: (cst.GeneratorExp,),
    ast.Await: (cst.Await,),
    ast.Starred: (cst.StarredElement,),
}


def _kind_fits(node: ast.AST, found: cst.CSTNode) -> bool:
    kinds = _EXPRESSION_KINDS.get(type(node))
    return kinds is None or isinstance(found, kinds)


_NAMES: dict[type[ast.AST], str] = {
    ast.Call: "call",
    ast.Dict: "dict",
    ast.keyword: "keyword argument",
}


def _kind_name(node: Node) -> str:
    if isinstance(node, DictItem):
        return "dict entry"
    if isinstance(node, ast.stmt):
        return "statement"
    return _NAMES.get(type(node), "expression")


class _Collect(cst.CSTVisitor):
    """Every node, in pre-order (an outer node before the nodes inside it)."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.nodes.append(node)
        return True


class CstDocument:
    """LibCST's module of one text, parsed when first asked for, and the LibCST node of each
    ast node of (any parse of) the same text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._parsed = False
        self._module: cst.Module | None = None
        self._error: str | None = None
        self._positions: Positions | None = None
        self._spans: Mapping[cst.CSTNode, CodeRange] | None = None
        # (category, span) -> nodes with that span, outermost first.
        self._index: dict[tuple[str, Span], list[cst.CSTNode]] | None = None

    # -- the module --------------------------------------------------------------------------

    def _parse(self) -> None:
        if not self._parsed:
            self._parsed = True
            self._module, self._error = parse_cst(self.text)

    @property
    def module(self) -> cst.Module | None:
        """The module, or None when LibCST cannot parse the text (``error`` says why)."""
        self._parse()
        return self._module

    @property
    def error(self) -> str | None:
        self._parse()
        return self._error

    def failure(self) -> str:
        """Why no fix can be applied to this text with LibCST (when ``module`` is None)."""
        detail = (self.error or "").removeprefix("cannot parse: ")
        return f"LibCST, which applies the fixes, cannot parse this text ({detail})"

    @property
    def positions(self) -> Positions:
        if self._positions is None:
            self._positions = Positions(self.text)
        return self._positions

    def describe(self, node: Node) -> str:
        """``the call at line 3:9``: an ast node, for a message."""
        try:
            row, column, _, _ = self.positions.span(node)
        except (AttributeError, IndexError):
            return f"the {_kind_name(node)}"
        return f"the {_kind_name(node)} at line {row}:{column}"

    def _span(self, node: cst.CSTNode) -> Span | None:
        assert self._spans is not None
        found = self._spans.get(node)
        if found is None:
            return None
        return (found.start.line, found.start.column + 1, found.end.line, found.end.column + 1)

    def _build(self) -> dict[tuple[str, Span], list[cst.CSTNode]]:
        if self._index is not None:
            return self._index
        module = self.module
        if module is None:
            raise Unmapped(self.failure())
        # unsafe_skip_copy: the nodes found must be the module's own (the appliers match by
        # identity).
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self._spans = cast("Mapping[cst.CSTNode, CodeRange]", wrapper.resolve(PositionProvider))
        collect = _Collect()
        module.visit(collect)
        index: dict[tuple[str, Span], list[cst.CSTNode]] = {}
        for node in collect.nodes:
            if isinstance(node, cst.BaseExpression):
                category = "expr"
            elif isinstance(node, cst.Arg):
                if node.keyword is None and node.star != "**":
                    continue  # a positional argument: its ast node is the expression
                category = "keyword"
            elif isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
                category = "stmt"
            else:
                continue
            span = self._span(node)
            if span is not None:
                index.setdefault((category, span), []).append(node)
        self._index = index
        return index

    # -- ast node -> LibCST node -------------------------------------------------------------

    def node(self, node: Node) -> cst.CSTNode:
        """The LibCST node of ``node`` (raises ``Unmapped``)."""
        index = self._build()
        if isinstance(node, DictItem):
            return self._element(node)
        if isinstance(node, ast.keyword):
            category = "keyword"
        elif isinstance(node, ast.stmt):
            category = "stmt"
        elif isinstance(node, ast.expr):
            category = "expr"
        else:
            raise Unmapped(f"{self.describe(node)} is not an expression, argument or statement")
        span = self.positions.span(node)
        for candidate in index.get((category, span), ()):
            if category != "expr" or _kind_fits(node, candidate):
                return candidate
        if isinstance(node, ast.GeneratorExp):
            # The sole argument of a call: ast's span takes in the call's parentheses.
            row, col, end_row, end_col = span
            start, end = self.positions.offsets(node)
            if self.text[start : start + 1] == "(" and self.text[end - 1 : end] == ")":
                for candidate in index.get(("expr", (row, col + 1, end_row, end_col - 1)), ()):
                    if isinstance(candidate, cst.GeneratorExp):
                        return candidate
        raise Unmapped(f"LibCST's tree has no node for {self.describe(node)}")

    def _element(self, item: DictItem) -> cst.BaseDictElement:
        found = self.node(item.dict)
        if not isinstance(found, cst.Dict):
            raise Unmapped(f"LibCST's tree has no dict for {self.describe(item)}")
        first = item.key if item.key is not None else item.value
        start = self.positions.span(first)[:2]
        for element in found.elements:
            if isinstance(element, cst.DictElement) and item.key is not None:
                inner: cst.CSTNode = element.key
            elif isinstance(element, cst.StarredDictElement) and item.key is None:
                inner = element.value
            else:
                continue
            span = self._span(inner)
            if span is not None and span[:2] == start:
                return element
        raise Unmapped(f"LibCST's tree has no entry for {self.describe(item)}")

    def _typed(self, node: Node, kind: type[cst.CSTNode]) -> cst.CSTNode:
        found = self.node(node)
        if not isinstance(found, kind):
            raise Unmapped(f"LibCST's tree has no {kind.__name__} for {self.describe(node)}")
        return found

    def translate(self, operations: Sequence[Operation]) -> tuple[CstOperation, ...]:
        """One fix's operations on this text's LibCST nodes (raises ``Unmapped``)."""
        out: list[CstOperation] = []
        for op in operations:
            if isinstance(op, AddKeyword):
                call = cast(cst.Call, self._typed(op.call, cst.Call))
                out.append(CstAddKeyword(call, op.name, op.value))
            elif isinstance(op, RemoveKeyword):
                call = cast(cst.Call, self._typed(op.call, cst.Call))
                out.append(CstRemoveKeyword(call, op.name))
            elif isinstance(op, AddDictEntry):
                d = cast(cst.Dict, self._typed(op.dict, cst.Dict))
                out.append(CstAddDictEntry(d, op.key, op.value))
            elif isinstance(op, RemoveDictEntry):
                d = cast(cst.Dict, self._typed(op.dict, cst.Dict))
                out.append(CstRemoveDictEntry(d, op.key))
            elif isinstance(op, ReplaceNode):
                target = self.node(op.node)
                if isinstance(target, cst.BaseCompoundStatement):
                    raise Unmapped(f"{self.describe(op.node)} is a compound statement")
                out.append(CstReplaceNode(target, op.code))
            elif isinstance(op, RemoveStatement):
                statement = self.node(op.statement)
                if not isinstance(statement, cst.BaseSmallStatement):
                    raise Unmapped(f"{self.describe(op.statement)} is not a simple statement")
                out.append(CstRemoveStatement(statement))
            else:
                out.append(op)  # imports: no node
        return tuple(out)


# A few texts at a time: a document's own (one per fix pass) and the project files its
# findings land in.
_DOCUMENTS: dict[str, CstDocument] = {}
_KEEP = 8


def document_for(text: str) -> CstDocument:
    """The (lazily parsed) LibCST document of ``text``, shared by everything that renders or
    applies fixes on it."""
    found = _DOCUMENTS.get(text)
    if found is None:
        if len(_DOCUMENTS) >= _KEEP:
            del _DOCUMENTS[next(iter(_DOCUMENTS))]
        found = _DOCUMENTS[text] = CstDocument(text)
    return found


def forget() -> None:
    """Drop the cached documents (an editor closed its document)."""
    _DOCUMENTS.clear()
