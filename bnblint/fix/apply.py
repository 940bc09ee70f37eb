"""Apply fix operations to a module in one transformer pass; derive text edits from them.

Edits are computed per edited node: the node (for a removed statement, its line or block) is
transformed alone and regenerated in place, so a file's edits cost about its size, not its size
times its number of fixes. The same per-node edits, spliced into the original text, check that
the whole-module transform changed no other byte (LibCST does not reproduce every text exactly).
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import (
    CodeRange,
    MetadataWrapper,
    ParentNodeProvider,
    WhitespaceInclusivePositionProvider,
)

from bnblint.diagnostics import AddImport, AddImportFrom, Location, Operation, TextEdit
from bnblint.fix.args import append_dict_entry, append_keyword, remove_dict_entry, remove_keyword
from bnblint.fix.nodes import (
    CstAddDictEntry,
    CstAddKeyword,
    CstDocument,
    CstOperation,
    CstRemoveDictEntry,
    CstRemoveKeyword,
    CstRemoveStatement,
    CstReplaceNode,
    Unmapped,
)
from bnblint.fix.nodes import forget as forget_documents


class _Applier(cst.CSTTransformer):
    def __init__(self, operations: Iterable[CstOperation]) -> None:
        super().__init__()
        self.keywords: dict[int, dict[str, str]] = {}
        self.entries: dict[int, dict[str, str]] = {}
        self.imports: list[str] = []
        self.from_imports: list[tuple[str, str]] = []
        self.removed_keywords: dict[int, list[str]] = {}
        self.removed_entries: dict[int, list[str]] = {}
        self.replacements: dict[int, str] = {}
        self.removed_statements: set[int] = set()
        # Source each target's operations write, to find where a name they add is first used.
        self.written: dict[int, list[str]] = {}
        self.uses: list[tuple[int, str]] = []  # (top-level statement index, source written)
        self._top: dict[int, int] = {}
        self._current = 0
        for op in operations:
            target = _target(op)
            if target is not None:
                self.written.setdefault(id(target), []).append(_written(op))
            if isinstance(op, CstAddKeyword):
                # setdefault: two fixes adding the same keyword to one call apply once.
                self.keywords.setdefault(id(op.call), {}).setdefault(op.name, op.value)
            elif isinstance(op, CstAddDictEntry):
                self.entries.setdefault(id(op.dict), {}).setdefault(op.key, op.value)
            elif isinstance(op, AddImport) and op.module not in self.imports:
                self.imports.append(op.module)
            elif isinstance(op, AddImportFrom):
                if (op.module, op.name) not in self.from_imports:
                    self.from_imports.append((op.module, op.name))
            elif isinstance(op, CstRemoveKeyword):
                self.removed_keywords.setdefault(id(op.call), []).append(op.name)
            elif isinstance(op, CstRemoveDictEntry):
                self.removed_entries.setdefault(id(op.dict), []).append(op.key)
            elif isinstance(op, CstReplaceNode):
                self.replacements.setdefault(id(op.node), op.code)
            elif isinstance(op, CstRemoveStatement):
                self.removed_statements.add(id(op.statement))

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Module):
            self._top = {id(stmt): i for i, stmt in enumerate(node.body)}
        self._current = self._top.get(id(node), self._current)
        for code in self.written.get(id(node), ()):
            self.uses.append((self._current, code))
        return super().on_visit(node)

    def on_leave(  # type: ignore[override]  # LibCST's signature is generic in the node type
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
        body_size = len(updated_node.body)
        explicit = {m.split(".")[0] for m in self.imports} | {n for _, n in self.from_imports}
        return add_imports(
            updated_node,
            self.imports,
            self.from_imports,
            lambda name: first_use(self.uses, name, body_size),
            late_bindings(top_bindings(updated_node), self.uses, explicit),
        )


def _written(op: CstOperation) -> str:
    """The source an operation writes (where a name it needs may appear)."""
    if isinstance(op, (CstAddKeyword, CstAddDictEntry)):
        return op.value
    return op.code if isinstance(op, CstReplaceNode) else ""


def first_use(uses: Iterable[tuple[int, str]], name: str, default: int) -> int:
    """The first top-level statement whose fix writes ``name``: an import binding it counts only
    before that statement (it runs later otherwise). Without such a use, the first edited one."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(name)}\b")
    uses = list(uses)
    named = [i for i, code in uses if pattern.search(code)]
    return min(named or [i for i, _ in uses] or [default])


def add_imports(
    module: cst.Module,
    imports: Sequence[str],
    from_imports: Sequence[tuple[str, str]],
    before: Callable[[str], int],
    late: Sequence[tuple[int, str]] = (),
) -> cst.Module:
    """Bind each name at top level before ``before(name)``, the first statement that uses it:
    an existing import counts only there, and new imports go no later than that. ``late``:
    imports (statement index, source) that a fix relies on but that only come after its use."""
    missing: list[tuple[int, str]] = list(late)
    imports, from_imports = list(dict.fromkeys(imports)), list(dict.fromkeys(from_imports))
    for m in imports:
        limit = before(m.split(".")[0])
        if not _imports_module(module, m, limit):
            missing.append((limit, f"import {m}"))
    for m, n in from_imports:
        limit = before(n)
        if _binds_name(module, n, limit):
            continue
        merged = _add_to_from_import(module, m, n, limit)
        if merged is None:
            missing.append((limit, f"from {m} import {n}"))
        else:
            module = merged
    if not missing:
        return module
    body = list(module.body)
    usual = _import_position(body)
    index = min(usual, *(limit for limit, _ in missing))
    new = [cst.parse_statement(f"{line}\n") for _, line in missing]
    if index < len(body) and (_is_import(body[index]) or index < usual):
        # The first import's leading comment introduces the block: keep it above the block (and
        # a statement's, when the import must go right before it: a cell's or block's sentinel
        # stays the first line of its cell or block).
        first = body[index]
        new[0] = new[0].with_changes(leading_lines=first.leading_lines)
        body[index] = first.with_changes(leading_lines=[])
    body[index:index] = new
    return module.with_changes(body=body)


def _names(code: str) -> set[str]:
    """The plain names a piece of source reads (not attributes, keywords or argument names)."""
    names: set[str] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return names
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME or keyword.iskeyword(tok.string):
            continue
        if i and tokens[i - 1].string == ".":
            continue
        if i + 1 < len(tokens) and tokens[i + 1].string in ("=", ":"):
            continue  # an argument name, or a dict key written as a name
        names.add(tok.string)
    return names


def top_bindings(module: cst.Module) -> dict[str, tuple[int, str]]:
    """Each name a top-level import binds: the first such statement's index, and an import
    statement that binds it the same way."""
    found: dict[str, tuple[int, str]] = {}
    for i, stmt in enumerate(module.body):
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    dotted = _dotted_name(alias.name)
                    asname = alias.asname.name if alias.asname else None
                    name = asname.value if isinstance(asname, cst.Name) else dotted.split(".")[0]
                    suffix = f" as {name}" if alias.asname else ""
                    found.setdefault(name, (i, f"import {dotted}{suffix}"))
            elif isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                dots = "." * len(small.relative)
                source = dots + (_dotted_name(small.module) if small.module else "")
                for alias in small.names:
                    bound = alias.asname.name if alias.asname else alias.name
                    if not isinstance(bound, cst.Name):
                        continue
                    what = _dotted_name(alias.name)
                    suffix = f" as {bound.value}" if alias.asname else ""
                    found.setdefault(bound.value, (i, f"from {source} import {what}{suffix}"))
    return found


def late_bindings(
    bindings: Mapping[str, tuple[int, str]], uses: Iterable[tuple[int, str]], skip: set[str]
) -> list[tuple[int, str]]:
    """The imports a fix's code relies on that only a later top-level import provides (the rule
    saw the name bound, but not that it is bound after the use): (first use, import source)."""
    first: dict[str, int] = {}
    for index, code in uses:
        for name in _names(code):
            if name in bindings and name not in skip:
                first[name] = min(first.get(name, index), index)
    return sorted(
        (index, bindings[name][1]) for name, index in first.items() if bindings[name][0] >= index
    )


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
    if isinstance(original, (cst.DictElement, cst.StarredDictElement)):
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


def _add_to_from_import(
    module: cst.Module, source: str, name: str, limit: int
) -> cst.Module | None:
    """Append ``name`` to the first top-level ``from source import ...`` before statement
    ``limit``, if there is one."""
    body = list(module.body)
    for i, stmt in enumerate(body[:limit]):
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


def _binds_name(module: cst.Module, name: str, limit: int) -> bool:
    """Whether a top-level import before statement ``limit`` binds ``name``."""
    for stmt in module.body[:limit]:
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


def _imports_module(module: cst.Module, name: str, limit: int) -> bool:
    """Whether a top-level ``import name`` comes before statement ``limit``."""
    for stmt in module.body[:limit]:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Import):
                    for alias in small.names:
                        bound = alias.asname.name if alias.asname else alias.name
                        if isinstance(bound, cst.Name) and bound.value == name:
                            return True
    return False


def apply_operations(module: cst.Module, operations: Iterable[CstOperation]) -> cst.Module:
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


def _trimmed(text: str, start: int, end: int, new: str, index: LineIndex) -> TextEdit | None:
    """``text_edit(text, text[:start] + new + text[end:])`` without building either text: the
    same common ends are trimmed, at a cost of the edit and the run of equal characters."""
    n_new, size = len(new), len(text)
    size_after = size - (end - start) + n_new

    def after(i: int) -> str:
        if i < start:
            return text[i]
        if i < start + n_new:
            return new[i - start]
        return text[i - n_new + end - start]

    lo = start
    while lo < size and lo < size_after and text[lo] == after(lo):
        lo += 1
    end_b, end_a = size, size_after
    shared = min(size - end, end_b - lo, end_a - lo)  # the text after the edit is common
    end_b, end_a = end_b - shared, end_a - shared
    while end_b > lo and end_a > lo and text[end_b - 1] == after(end_a - 1):
        end_b -= 1
        end_a -= 1
    if lo == end_b and lo == end_a:
        return None
    shift = (end - start) - n_new  # where text after the edit stands in the old text
    content = text[lo : min(end_a, start)] if lo < start else ""
    content += new[max(lo - start, 0) : max(end_a - start, 0)]
    if end_a > start + n_new:
        content += text[max(lo, start + n_new) + shift : end_a + shift]
    return TextEdit(content, index.location(lo), index.location(end_b))


class _Tree:
    """What the edit computations of one module share: node spans in its text, parents, the
    imports' edits, and whether LibCST reproduces the text at all (positions are only right
    where it does)."""

    def __init__(self, module: cst.Module, index: LineIndex) -> None:
        self.module, self.index, self.text = module, index, index.text
        self.exact = module.code == index.text
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        meta = wrapper.resolve_many([WhitespaceInclusivePositionProvider, ParentNodeProvider])
        self.spans = cast(
            "Mapping[cst.CSTNode, CodeRange]", meta[WhitespaceInclusivePositionProvider]
        )
        self.parents = cast("Mapping[cst.CSTNode, cst.CSTNode]", meta[ParentNodeProvider])
        self._top = {id(stmt): i for i, stmt in enumerate(module.body)}
        self.import_edits: dict[object, tuple[int, int, str] | None] = {}
        self.bindings = top_bindings(module)

    def offsets(self, node: cst.CSTNode) -> tuple[int, int]:
        span = self.spans[node]
        start = self.index.offset(Location(span.start.line, span.start.column + 1))
        return start, self.index.offset(Location(span.end.line, span.end.column + 1))

    def top_index(self, node: cst.CSTNode) -> int:
        """The index of the top-level statement that holds ``node``."""
        while id(node) not in self._top:
            parent = self.parents.get(node)
            if parent is None:
                return len(self.module.body)
            node = parent
        return self._top[id(node)]

    def code(self, original: cst.CSTNode, new: cst.CSTNode) -> str:
        """``new``'s source where ``original`` stands: with the indentation of the blocks around
        it, which ``Module.code_for_node`` leaves out."""
        indents: list[str] = []
        node = self.parents.get(original)
        while node is not None:
            if isinstance(node, cst.IndentedBlock):
                indents.append(
                    node.indent if node.indent is not None else self.module.default_indent
                )
            node = self.parents.get(node)
        state = CodegenState(
            default_indent=self.module.default_indent,
            default_newline=self.module.default_newline,
            indent_tokens=indents[::-1],
        )
        new._codegen(state)
        return "".join(state.tokens)

    def anchor(self, op: CstOperation) -> cst.CSTNode | None:
        """The node regenerated for ``op`` (None for an import): its target, or for a removed
        statement the line, or the block it empties (which then gets ``pass``)."""
        target = _target(op)
        if not isinstance(op, CstRemoveStatement) or target is None:
            return target
        line = self.parents.get(target)
        if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
            block = self.parents.get(line)
            if isinstance(block, cst.IndentedBlock) and len(block.body) == 1:
                return block
        return line if line is not None else target

    def render(self, anchor: cst.CSTNode, ops: Sequence[CstOperation]) -> tuple[int, int, str]:
        """``anchor`` transformed by ``ops`` alone, as a replacement of its span."""
        new = anchor.visit(_Applier(ops))
        start, end = self.offsets(anchor)
        removed = isinstance(new, cst.RemovalSentinel) or (
            isinstance(new, cst.SimpleStatementLine) and not new.body
        )  # an emptied line: its parent would drop it
        if removed or not isinstance(new, cst.CSTNode):
            return start, end, ""
        return start, end, self.code(anchor, new)

    def imports(
        self,
        ops: Sequence[CstOperation],
        before: Callable[[str], int],
        late: Sequence[tuple[int, str]] = (),
    ) -> tuple[int, int, str] | None:
        """The import operations as one replacement of the top-level statements they change
        (None: nothing to add; raises LookupError where no statement span locates it)."""
        imports = [op.module for op in ops if isinstance(op, AddImport)]
        from_imports = [(op.module, op.name) for op in ops if isinstance(op, AddImportFrom)]
        old = list(self.module.body)
        new = list(add_imports(self.module, imports, from_imports, before, late).body)
        lo = 0
        while lo < len(old) and lo < len(new) and old[lo] is new[lo]:
            lo += 1
        hi_old, hi_new = len(old), len(new)
        while hi_old > lo and hi_new > lo and old[hi_old - 1] is new[hi_new - 1]:
            hi_old -= 1
            hi_new -= 1
        if lo == hi_old == hi_new:
            return None
        if lo >= len(old):
            raise LookupError("imports after the last statement")
        start = self.offsets(old[lo])[0]
        end = self.offsets(old[hi_old - 1])[1] if hi_old > lo else start
        code = "".join(self.code(old[lo], stmt) for stmt in new[lo:hi_new])
        return start, end, code

    def import_edit(self, op: CstOperation, limit: int) -> tuple[int, int, str] | None:
        key = (op, limit)
        if key not in self.import_edits:  # the same import recurs in every load's fix
            self.import_edits[key] = self.imports([op], lambda _: limit)
        return self.import_edits[key]

    def late_edit(self, late: Sequence[tuple[int, str]]) -> tuple[int, int, str] | None:
        key = tuple(late)
        if key not in self.import_edits:
            self.import_edits[key] = self.imports([], lambda _: 0, late)
        return self.import_edits[key]


# A few modules at a time: a file's own and those of project files its findings land in.
_TREES: dict[int, tuple[cst.Module, _Tree]] = {}


def _tree(module: cst.Module, index: LineIndex) -> _Tree:
    entry = _TREES.get(id(module))
    if entry is not None and entry[0] is module and entry[1].text == index.text:
        return entry[1]
    if len(_TREES) >= 8:
        del _TREES[next(iter(_TREES))]
    tree = _Tree(module, index)
    _TREES[id(module)] = (module, tree)  # holding the module keeps its id from being reused
    return tree


def _groups(operations: Iterable[CstOperation]) -> list[list[CstOperation]]:
    """The operations by edited node (one group per import): the operations on one node are
    applied together (removing one keyword and adding another to a call must compose)."""
    groups: dict[int, list[CstOperation]] = {}
    for op in operations:
        target = _target(op)
        groups.setdefault(id(op) if target is None else id(target), []).append(op)
    return list(groups.values())


def _is_import_op(op: CstOperation) -> bool:
    return isinstance(op, (AddImport, AddImportFrom))


def edits_for(
    module: cst.Module, operations: Sequence[CstOperation], index: LineIndex
) -> list[TextEdit]:
    """The text edits of one fix, each computed on the original text: one per import and one
    per edited node. None where LibCST does not reproduce the text (no position is right)."""
    tree = _tree(module, index)
    if not tree.exact:
        return []
    uses = [
        (tree.top_index(target), _written(op))
        for op in operations
        if (target := _target(op)) is not None
    ]
    edits = []
    for ops in _groups(operations):
        try:
            if _is_import_op(ops[0]):
                first = ops[0]
                assert isinstance(first, (AddImport, AddImportFrom))
                name = first.name if isinstance(first, AddImportFrom) else first.module
                limit = first_use(uses, name.split(".")[0], len(module.body))
                replacement = tree.import_edit(ops[0], limit)
            else:
                anchor = tree.anchor(ops[0])
                assert anchor is not None
                replacement = tree.render(anchor, ops)
        except (KeyError, LookupError):  # a node or statement without a span: the slow way
            edit = text_edit(index.text, apply_operations(module, ops).code, index)
        else:
            edit = None if replacement is None else _trimmed(index.text, *replacement, index)
        if edit is not None:
            edits.append(edit)
    explicit = {
        (op.name if isinstance(op, AddImportFrom) else op.module).split(".")[0]
        for op in operations
        if isinstance(op, (AddImport, AddImportFrom))
    }
    late = late_bindings(tree.bindings, uses, explicit)
    if late:
        try:
            replacement = tree.late_edit(late)
        except (KeyError, LookupError):
            replacement = None
        edit = None if replacement is None else _trimmed(index.text, *replacement, index)
        if edit is not None:
            edits.append(edit)
    return sorted(edits, key=lambda e: e.location)


def _target(op: CstOperation) -> cst.CSTNode | None:
    if isinstance(op, (CstAddKeyword, CstRemoveKeyword)):
        return op.call
    if isinstance(op, (CstAddDictEntry, CstRemoveDictEntry)):
        return op.dict
    if isinstance(op, CstReplaceNode):
        return op.node
    if isinstance(op, CstRemoveStatement):
        return op.statement
    return None


def _claim(op: CstOperation) -> tuple[tuple[object, ...], str] | None:
    """What an operation decides, and how: two fixes that decide one thing differently in one
    pass would see only the first applied (the other waits for the next pass)."""
    if isinstance(op, CstAddKeyword):
        return ("keyword", id(op.call), op.name), op.value
    if isinstance(op, CstAddDictEntry):
        return ("entry", id(op.dict), op.key), op.value
    if isinstance(op, CstReplaceNode):
        return ("node", id(op.node)), op.code
    return None


EXACT_PROBLEM = "LibCST does not reproduce this text byte for byte"


@dataclass
class FixPass:
    """One pass of fixes over a module's text."""

    text: str  # the new text (the old one when no fix changed anything)
    applied: list[int] = field(default_factory=list)  # which of the fixes were applied
    # Replacements (start, end, new text) on the old text: where the new text came from.
    edits: list[tuple[int, int, str]] = field(default_factory=list)
    problem: str | None = None  # why ``text`` must not be used


def apply_fixes(module: cst.Module, text: str, fixes: Sequence[Sequence[CstOperation]]) -> FixPass:
    """Apply the fixes that change the text and do not conflict with an earlier one, in one
    transform, and check that the result differs from ``text`` only in their edits."""
    index = LineIndex(text)
    tree = _tree(module, index)
    if not tree.exact:
        return FixPass(text, problem=EXACT_PROBLEM)
    claims: dict[tuple[object, ...], str] = {}
    chosen: list[int] = []
    for i, ops in enumerate(fixes):
        claimed = [c for c in map(_claim, ops) if c is not None]
        if any(claims.get(key, value) != value for key, value in claimed):
            continue
        if not edits_for(module, ops, index):
            continue  # changes nothing: not a fix applied
        claims.update(claimed)
        chosen.append(i)
    ops = [op for i in chosen for op in fixes[i]]
    if not ops:
        return FixPass(text)
    new_text = apply_operations(module, ops).code
    try:
        edits = _pass_edits(tree, ops)
    except (KeyError, LookupError):  # not located: the whole-text difference stands in
        edit = text_edit(text, new_text, index)
        found = [] if edit is None else [_span(edit, index)]
        return FixPass(new_text, chosen, found)
    spliced = _splice(text, edits)
    if spliced != new_text:
        problem = "the fixed text would differ outside the fixes' edits (LibCST round trip)"
        return FixPass(text, chosen, edits, problem)
    return FixPass(new_text, chosen, edits)


def _span(edit: TextEdit, index: LineIndex) -> tuple[int, int, str]:
    return index.offset(edit.location), index.offset(edit.end_location), edit.content


def _pass_edits(tree: _Tree, ops: Sequence[CstOperation]) -> list[tuple[int, int, str]]:
    """The pass as replacements on the old text: each outermost edited node regenerated with all
    the operations inside it, and the imports; raises LookupError when two of them overlap."""
    by_anchor: dict[int, tuple[cst.CSTNode, list[CstOperation]]] = {}
    for op in ops:
        anchor = tree.anchor(op)
        if anchor is not None:
            by_anchor.setdefault(id(anchor), (anchor, []))[1].append(op)
    outermost: dict[int, tuple[cst.CSTNode, list[CstOperation]]] = {}
    for anchor, anchor_ops in by_anchor.values():
        top, parent = anchor, tree.parents.get(anchor)
        while parent is not None:  # inside another edited node: regenerated with it
            if id(parent) in by_anchor:
                top = parent
            parent = tree.parents.get(parent)
        outermost.setdefault(id(top), (top, []))[1].extend(anchor_ops)
    edits = [tree.render(anchor, anchor_ops) for anchor, anchor_ops in outermost.values()]
    uses = [(tree.top_index(t), _written(op)) for op in ops if (t := _target(op)) is not None]
    body_size = len(tree.module.body)
    explicit = {
        (op.name if isinstance(op, AddImportFrom) else op.module).split(".")[0]
        for op in ops
        if isinstance(op, (AddImport, AddImportFrom))
    }
    late = late_bindings(tree.bindings, uses, explicit)
    found = tree.imports(ops, lambda name: first_use(uses, name, body_size), late)
    if found is not None:
        edits.append(found)
    edits.sort()
    for (_, end, _), (start, _, _) in zip(edits, edits[1:]):
        if start < end:
            raise LookupError("overlapping edits")
    return edits


def _splice(text: str, edits: Sequence[tuple[int, int, str]]) -> str:
    parts, at = [], 0
    for start, end, content in edits:
        parts += [text[at:start], content]
        at = end
    parts.append(text[at:])
    return "".join(parts)


def map_back(offset: int, edits: Sequence[tuple[int, int, str]]) -> int:
    """An offset of the text after ``edits`` (sorted, on the text before) in the text before;
    inside new text, the start of its edit."""
    delta = 0
    for start, end, content in edits:
        if offset < start + delta:
            break
        if offset < start + delta + len(content):
            return start
        delta += len(content) - (end - start)
    return offset - delta


# -- fixes on ast nodes: translated to this text's LibCST nodes first ------------------------


def document_tree(document: CstDocument) -> _Tree | None:
    """The shared edit state of a document's LibCST module (None: LibCST cannot parse it)."""
    module = document.module
    if module is None:
        return None
    entry = _TREES.get(id(module))
    if entry is not None and entry[0] is module:
        return entry[1]
    return _tree(module, LineIndex(document.text))


def fix_edits(document: CstDocument, operations: Sequence[Operation]) -> list[TextEdit]:
    """The text edits of one fix (operations on the analysis model's ast nodes) on the
    document's text; none where LibCST cannot parse the text or has no node for one of the
    fix's nodes (the fix loop reports those as not applied)."""
    tree = document_tree(document)
    if tree is None:
        return []
    try:
        ops = document.translate(operations)
    except Unmapped:
        return []
    return edits_for(tree.module, ops, tree.index)


def forget() -> None:
    """Drop the cached LibCST modules and their edit state (an editor closed a document)."""
    _TREES.clear()
    forget_documents()
