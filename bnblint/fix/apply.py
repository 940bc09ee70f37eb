"""Apply fix operations to a module in one transformer pass; derive text edits from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import libcst as cst

from bnblint.diagnostics import (
    AddDictEntry,
    AddImport,
    AddImportFrom,
    AddKeyword,
    Location,
    Operation,
    RemoveDictEntry,
    RemoveKeyword,
    RemoveStatement,
    ReplaceNode,
    TextEdit,
)
from bnblint.fix.args import append_dict_entry, append_keyword, remove_dict_entry, remove_keyword


class _Applier(cst.CSTTransformer):
    def __init__(self, operations: Iterable[Operation]) -> None:
        super().__init__()
        self.keywords: dict[int, dict[str, str]] = {}
        self.entries: dict[int, dict[str, str]] = {}
        self.imports: list[str] = []
        self.from_imports: list[tuple[str, str]] = []
        self.removed_keywords: dict[int, list[str]] = {}
        self.removed_entries: dict[int, list[str]] = {}
        self.replacements: dict[int, str] = {}
        self.removed_statements: set[int] = set()
        for op in operations:
            if isinstance(op, AddKeyword):
                # setdefault: two fixes adding the same keyword to one call apply once.
                self.keywords.setdefault(id(op.call), {}).setdefault(op.name, op.value)
            elif isinstance(op, AddDictEntry):
                self.entries.setdefault(id(op.dict), {}).setdefault(op.key, op.value)
            elif isinstance(op, AddImport) and op.module not in self.imports:
                self.imports.append(op.module)
            elif isinstance(op, AddImportFrom):
                if (op.module, op.name) not in self.from_imports:
                    self.from_imports.append((op.module, op.name))
            elif isinstance(op, RemoveKeyword):
                self.removed_keywords.setdefault(id(op.call), []).append(op.name)
            elif isinstance(op, RemoveDictEntry):
                self.removed_entries.setdefault(id(op.dict), []).append(op.key)
            elif isinstance(op, ReplaceNode):
                self.replacements.setdefault(id(op.node), op.code)
            elif isinstance(op, RemoveStatement):
                self.removed_statements.add(id(op.statement))

    def on_leave(
        self, original_node: cst.CSTNode, updated_node: cst.CSTNode
    ) -> cst.CSTNode | cst.RemovalSentinel:
        code = self.replacements.get(id(original_node))
        if code is not None:
            return _parse_like(original_node, code)
        if id(original_node) in self.removed_statements:
            return cst.RemoveFromParent()
        return super().on_leave(original_node, updated_node)  # type: ignore[return-value]

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        for name in self.removed_keywords.get(id(original_node), []):
            updated_node = remove_keyword(updated_node, name)
        for name, value in self.keywords.get(id(original_node), {}).items():
            if any(a.keyword is not None and a.keyword.value == name for a in updated_node.args):
                continue
            updated_node = append_keyword(updated_node, name, cst.parse_expression(value))
        return updated_node

    def leave_Dict(self, original_node: cst.Dict, updated_node: cst.Dict) -> cst.Dict:
        for key in self.removed_entries.get(id(original_node), []):
            updated_node = remove_dict_entry(updated_node, key)
        for key, value in self.entries.get(id(original_node), {}).items():
            if key in _string_keys(updated_node):
                continue  # another fix wrote it (a renamed key): as for keywords in leave_Call
            key_node = cst.SimpleString(repr(key).replace("'", '"'))
            updated_node = append_dict_entry(updated_node, key_node, cst.parse_expression(value))
        return updated_node

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        missing = [f"import {m}" for m in self.imports if not _imports_module(updated_node, m)]
        for m, n in self.from_imports:
            if _binds_name(updated_node, n):
                continue
            merged = _add_to_from_import(updated_node, m, n)
            if merged is None:
                missing.append(f"from {m} import {n}")
            else:
                updated_node = merged
        if not missing:
            return updated_node
        body = list(updated_node.body)
        index = _import_position(body)
        new = [cst.parse_statement(f"{m}\n") for m in missing]
        if index < len(body) and _is_import(body[index]):
            # The first import's leading comment introduces the block: keep it above the block.
            first = body[index]
            new[0] = new[0].with_changes(leading_lines=first.leading_lines)
            body[index] = first.with_changes(leading_lines=[])
        body[index:index] = new
        return updated_node.with_changes(body=body)


def _string_keys(node: cst.Dict) -> set[str]:
    """The plain string keys of a dict literal."""
    keys: set[str] = set()
    for element in node.elements:
        if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString):
            value = element.key.evaluated_value
            if isinstance(value, str):
                keys.add(value)
    return keys


def _parse_like(original: cst.CSTNode, code: str) -> cst.CSTNode:
    """Parse ``code`` as the same kind of node as ``original``, keeping its outer whitespace."""
    if isinstance(original, cst.Arg):
        call = cst.parse_expression(f"f({code})")
        assert isinstance(call, cst.Call)
        return call.args[0].with_changes(
            comma=original.comma, whitespace_after_arg=original.whitespace_after_arg
        )
    if isinstance(original, cst.DictElement):
        d = cst.parse_expression(f"{{{code}}}")
        assert isinstance(d, cst.Dict)
        return d.elements[0].with_changes(comma=original.comma)
    if isinstance(original, cst.BaseExpression):
        return cst.parse_expression(code).with_changes(lpar=original.lpar, rpar=original.rpar)
    if isinstance(original, cst.BaseSmallStatement):
        line = cst.parse_statement(f"{code}\n")
        assert isinstance(line, cst.SimpleStatementLine)
        return line.body[0].with_changes(semicolon=original.semicolon)
    raise TypeError(f"cannot replace a {type(original).__name__}")


def _add_to_from_import(module: cst.Module, source: str, name: str) -> cst.Module | None:
    """Append ``name`` to the first top-level ``from source import ...``, if there is one."""
    body = list(module.body)
    for i, stmt in enumerate(body):
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            continue
        small = stmt.body[0]
        if (
            isinstance(small, cst.ImportFrom)
            and not small.relative
            and small.module is not None
            and _dotted_name(small.module) == source
            and not isinstance(small.names, cst.ImportStar)
        ):
            names = list(small.names)
            last = names[-1]
            alias = cst.ImportAlias(name=cst.Name(name))
            if isinstance(last.comma, cst.Comma):  # parenthesized with a trailing comma
                if len(names) > 1 and isinstance(names[-2].comma, cst.Comma):
                    sep = names[-2].comma.whitespace_after
                elif small.lpar is not None:
                    sep = small.lpar.whitespace_after
                else:
                    sep = cst.SimpleWhitespace(" ")
                alias = alias.with_changes(comma=last.comma)
                names[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=sep))
            else:
                space = cst.SimpleWhitespace(" ")
                names[-1] = last.with_changes(comma=cst.Comma(whitespace_after=space))
            names.append(alias)
            body[i] = stmt.with_changes(body=[small.with_changes(names=names)])
            return module.with_changes(body=body)
    return None


def _dotted_name(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr.value}"
    return node.value if isinstance(node, cst.Name) else ""


def _binds_name(module: cst.Module, name: str) -> bool:
    """Whether a top-level import binds ``name``."""
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.ImportFrom) and not isinstance(
                    small.names, cst.ImportStar
                ):
                    for alias in small.names:
                        bound = alias.asname.name if alias.asname else alias.name
                        if isinstance(bound, cst.Name) and bound.value == name:
                            return True
    return False


def _is_import(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and any(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
    )


def _is_docstring_or_future(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if isinstance(small, cst.Expr) and isinstance(
        small.value, (cst.SimpleString, cst.ConcatenatedString)
    ):
        return True
    return (
        isinstance(small, cst.ImportFrom)
        and isinstance(small.module, cst.Name)
        and small.module.value == "__future__"
    )


def _import_position(body: Sequence[cst.CSTNode]) -> int:
    """Where ``import torch`` goes: before the first top-level transformers import (isort order
    puts ``import torch`` there, and in a notebook that is the imports cell, not a ``%pip``
    cell), else after the leading import block, else after the docstring and ``__future__``."""
    for i, stmt in enumerate(body):
        if _is_import(stmt) and _imports_root(stmt, "transformers"):
            return i
    index = 0
    while index < len(body) and _is_docstring_or_future(body[index]):
        index += 1
    while index < len(body) and _is_import(body[index]):
        index += 1
    return index


def _imports_root(stmt: cst.CSTNode, root: str) -> bool:
    assert isinstance(stmt, cst.SimpleStatementLine)
    for small in stmt.body:
        if isinstance(small, cst.Import):
            if any(_dotted_name(a.name).split(".")[0] == root for a in small.names):
                return True
        if isinstance(small, cst.ImportFrom) and small.module is not None:
            node: cst.BaseExpression = small.module
            while isinstance(node, cst.Attribute):
                node = node.value
            if isinstance(node, cst.Name) and node.value == root and not small.relative:
                return True
    return False


def _imports_module(module: cst.Module, name: str) -> bool:
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Import):
                    for alias in small.names:
                        bound = alias.asname.name if alias.asname else alias.name
                        if isinstance(bound, cst.Name) and bound.value == name:
                            return True
    return False


def apply_operations(module: cst.Module, operations: Iterable[Operation]) -> cst.Module:
    return module.visit(_Applier(operations))


class LineIndex:
    """Offsets to 1-based (row, column) positions of one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        # Lines end at \r\n, \r or \n, as for LibCST's positions and for editors.
        for i, ch in enumerate(text):
            if ch == "\n" or (ch == "\r" and text[i + 1 : i + 2] != "\n"):
                self.starts.append(i + 1)

    def offset(self, location: Location) -> int:
        return self.starts[location.row - 1] + location.column - 1

    def location(self, offset: int) -> Location:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return Location(lo + 1, offset - self.starts[lo] + 1)


def text_edit(before: str, after: str, index: LineIndex) -> TextEdit | None:
    """The single replacement that turns ``before`` into ``after`` (common ends trimmed)."""
    if before == after:
        return None
    start = 0
    limit = min(len(before), len(after))
    while start < limit and before[start] == after[start]:
        start += 1
    end_b, end_a = len(before), len(after)
    while end_b > start and end_a > start and before[end_b - 1] == after[end_a - 1]:
        end_b -= 1
        end_a -= 1
    return TextEdit(after[start:end_a], index.location(start), index.location(end_b))


def edits_for(
    module: cst.Module, operations: Sequence[Operation], index: LineIndex
) -> list[TextEdit]:
    """The text edits of one fix, each computed on the original text: one per import and one
    per edited node, the operations on one node applied together (removing one keyword and
    adding another to the same call must compose)."""
    groups: dict[int, list[Operation]] = {}
    for op in operations:
        target = _target(op)
        groups.setdefault(id(op) if target is None else id(target), []).append(op)
    edits = []
    for ops in groups.values():
        edit = text_edit(index.text, apply_operations(module, ops).code, index)
        if edit is not None:
            edits.append(edit)
    return sorted(edits, key=lambda e: e.location)


def _target(op: Operation) -> cst.CSTNode | None:
    if isinstance(op, (AddKeyword, RemoveKeyword)):
        return op.call
    if isinstance(op, (AddDictEntry, RemoveDictEntry)):
        return op.dict
    if isinstance(op, ReplaceNode):
        return op.node
    if isinstance(op, RemoveStatement):
        return op.statement
    return None
