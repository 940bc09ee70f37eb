"""The mapping from the analysis model's stdlib AST nodes to LibCST's (``bnblint.fix.nodes``):
by kind and span, the same node for the same ast node, refusal (never a guess) where LibCST
has no counterpart; and fixes on ast nodes rendered through it."""

from __future__ import annotations

import ast
from typing import TypeVar

import libcst as cst
import pytest

from bnblint.analysis.syntax import DictItem, Positions, dict_items
from bnblint.diagnostics import (
    AddDictEntry,
    AddImport,
    AddKeyword,
    Operation,
    RemoveDictEntry,
    RemoveKeyword,
    RemoveStatement,
    ReplaceNode,
)
from bnblint.fix import nodes
from bnblint.fix.apply import LineIndex, apply_fixes, edits_for, fix_edits
from bnblint.fix.nodes import CstDocument, Unmapped, document_for
from bnblint.parse import parse_ast

SNIPPET = """\
import torch
m = AutoModel.from_pretrained("é-模型", (x), k=(1), **kw)  # ünïcödé
cfg = {"a": (1), **extra, ("b"): [2, 3], "ç": 'é'}
y = g(é=1, q = ( 2 ) ,); model.half()
if ok:
    model.half()
h(v for v in w)
"""


def _setup(text: str = SNIPPET) -> tuple[ast.Module, CstDocument]:
    return parse_ast(text), CstDocument(text)


def _code(document: CstDocument, node: cst.CSTNode) -> str:
    assert document.module is not None
    return document.module.code_for_node(node)


N = TypeVar("N", ast.expr, ast.stmt)


def _find(tree: ast.AST, kind: type[N], nth: int = 0) -> N:
    """The ``nth`` node of a kind, in text order."""
    found = [n for n in ast.walk(tree) if isinstance(n, kind)]
    found.sort(key=lambda n: (n.lineno, n.col_offset))
    return found[nth]


def test_calls_and_keywords_on_a_non_ascii_line() -> None:
    tree, document = _setup()
    load = _find(tree, ast.Call)
    mapped = document.node(load)
    assert isinstance(mapped, cst.Call)
    assert _code(document, mapped).startswith('AutoModel.from_pretrained("é-模型"')
    k, splat = load.keywords
    arg = document.node(k)
    assert isinstance(arg, cst.Arg) and arg.keyword is not None and arg.keyword.value == "k"
    star = document.node(splat)
    assert isinstance(star, cst.Arg) and star.star == "**"
    # A positional argument is its expression, parentheses left out (the Name, not the Arg).
    x = document.node(load.args[1])
    assert isinstance(x, cst.Name) and x.value == "x" and x.lpar
    # The same ast node always gives the same LibCST node (identity-based grouping).
    assert document.node(load) is mapped and document.node(k) is arg


def test_keyword_with_spaces_and_a_non_ascii_name() -> None:
    tree, document = _setup()
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "g")
    names = []
    for keyword in call.keywords:
        arg = document.node(keyword)
        assert isinstance(arg, cst.Arg) and arg.keyword is not None
        names.append(arg.keyword.value)
    assert names == ["é", "q"]


def test_dict_items_with_parenthesized_keys_and_values() -> None:
    tree, document = _setup()
    d = _find(tree, ast.Dict)
    mapped = document.node(d)
    assert isinstance(mapped, cst.Dict)
    items = dict_items(d)
    elements = [document.node(item) for item in items]
    assert elements == list(mapped.elements)
    assert isinstance(elements[1], cst.StarredDictElement)
    # The parenthesized value's entry: ast's span ends before the ")", LibCST's after it.
    start, end = Positions(SNIPPET).offsets(items[0])
    assert SNIPPET[start:end] == '"a": (1' and _code(document, elements[0]) == '"a": (1), '
    value = document.node(items[0].value)
    assert isinstance(value, cst.Integer) and value.lpar
    key = items[2].key
    assert key is not None
    assert isinstance(document.node(key), cst.SimpleString)
    assert _code(document, elements[3]).startswith("\"ç\": 'é'")


def test_statements_simple_compound_and_after_a_semicolon() -> None:
    tree, document = _setup()
    halves = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and "half" in ast.unparse(n)
    ]
    assert len(halves) == 2
    for stmt in halves:
        mapped = document.node(stmt)
        assert isinstance(mapped, cst.Expr)
        assert _code(document, mapped).strip().rstrip(";") == "model.half()"
    if_stmt = _find(tree, ast.If)
    assert isinstance(document.node(if_stmt), cst.If)


def test_outermost_expression_and_the_sole_generator_argument() -> None:
    tree, document = _setup()
    gen = _find(tree, ast.GeneratorExp)
    assert isinstance(document.node(gen), cst.GeneratorExp)  # ast's span has the call's ( )
    attribute = _find(tree, ast.Attribute)  # AutoModel.from_pretrained
    assert isinstance(document.node(attribute), cst.Attribute)


def test_a_node_of_another_text_is_unmapped() -> None:
    tree, _ = _setup()
    other = CstDocument(SNIPPET.replace("import torch\n", "import torch  # moved\n\n"))
    with pytest.raises(Unmapped, match="no node for the call at line 2:5"):
        other.node(_find(tree, ast.Call))


def test_text_libcst_cannot_parse_is_unmapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "parse_cst", lambda text: (None, "cannot parse: line 1:1: no"))
    tree, document = _setup()
    with pytest.raises(Unmapped, match="LibCST, which applies the fixes, cannot parse"):
        document.translate([AddKeyword(_find(tree, ast.Call), "device_map", '"auto"')])
    assert fix_edits(document, [AddImport("torch")]) == []


def test_document_is_parsed_lazily_and_shared() -> None:
    text = SNIPPET + "# lazily\n"
    document = document_for(text)
    assert not document._parsed
    assert document_for(text) is document
    assert document.module is not None and document._parsed


# -- fixes on ast nodes, rendered ---------------------------------------------------------------


def _apply(text: str, *fix: Operation) -> str:
    document = CstDocument(text)
    assert document.module is not None
    ops = document.translate(fix)
    step = apply_fixes(document.module, text, [ops])
    assert step.problem is None
    return step.text


def test_add_keyword_on_a_non_ascii_line() -> None:
    tree = parse_ast(SNIPPET)
    load = _find(tree, ast.Call)
    out = _apply(SNIPPET, AddKeyword(load, "device_map", '"auto"'))
    assert '**kw, device_map="auto")  # ünïcödé' in out
    assert out.replace(', device_map="auto"', "") == SNIPPET


def test_replace_a_parenthesized_value_in_a_dict_keeps_its_parentheses() -> None:
    tree = parse_ast(SNIPPET)
    item = dict_items(_find(tree, ast.Dict))[0]
    out = _apply(SNIPPET, ReplaceNode(item.value, "2"))
    assert '{"a": (2), **extra' in out


def test_replace_a_dict_entry_and_a_keyword() -> None:
    tree = parse_ast(SNIPPET)
    d = _find(tree, ast.Dict)
    out = _apply(SNIPPET, ReplaceNode(dict_items(d)[3], '"c": 0'))
    assert '[2, 3], "c": 0}' in out
    call = _find(tree, ast.Call)
    out = _apply(SNIPPET, ReplaceNode(call.keywords[0], "k=2"))
    assert "(x), k=2, **kw)" in out


def test_remove_statements_keyword_and_entry() -> None:
    tree = parse_ast(SNIPPET)
    halves = [n for n in ast.walk(tree) if isinstance(n, ast.Expr) and "half" in ast.unparse(n)]
    out = _apply(SNIPPET, RemoveStatement(halves[0]))
    # The one after the semicolon goes (the applier's spacing: LibCST keeps the ";").
    assert out.count("model.half()") == 1 and "if ok:\n    model.half()\n" in out
    assert "y = g(é=1, q = ( 2 ) ,);" in out and parse_ast(out)
    call = _find(tree, ast.Call)
    d = _find(tree, ast.Dict)
    out = _apply(SNIPPET, RemoveKeyword(call, "k"), RemoveDictEntry(d, "a"))
    assert "(x), **kw)" in out and '{**extra, ("b")' in out
    out = _apply(SNIPPET, AddDictEntry(d, "z", "1"))
    assert """'é', "z": 1}""" in out


def test_fix_edits_equal_the_translated_operations_edits() -> None:
    tree = parse_ast(SNIPPET)
    load = _find(tree, ast.Call)
    fix = (AddKeyword(load, "device_map", '"auto"'), AddImport("torch"))
    document = CstDocument(SNIPPET)
    assert document.module is not None
    ours = fix_edits(document, fix)
    assert ours == edits_for(document.module, document.translate(fix), LineIndex(SNIPPET))
    assert [e.content for e in ours] == [', device_map="auto"']
    assert ours[0].location.row == 2


def test_unmapped_statement_kind_is_refused() -> None:
    tree, document = _setup()
    if_stmt = _find(tree, ast.If)
    with pytest.raises(Unmapped, match="not a simple statement"):
        document.translate([RemoveStatement(if_stmt)])


def test_dict_item_of_an_unmapped_dict() -> None:
    text = "x = {'a': 1}\n"
    tree = parse_ast(text)
    d = _find(tree, ast.Dict)
    stray = DictItem(d.keys[0], d.values[0], d, 0)
    document = CstDocument("y = 1\n" + text)  # another text: the dict is elsewhere
    with pytest.raises(Unmapped):
        document.node(stray)
