"""The fix engine: applied fixes by identity, chained fixes, reported problems, names bound
before their use (the fixed file runs), no byte lost outside the edits, linear edit cost."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import libcst as cst
import pytest

from bnblint import pipeline
from bnblint.diagnostics import Applicability, Diagnostic, Fix, Level, ReplaceNode
from bnblint.fix.apply import LineIndex, apply_operations, edits_for, text_edit
from bnblint.fix.nodes import CstDocument, Unmapped
from bnblint.pipeline import MAX_FIX_PASSES, lint_source, lint_text, parse_ast
from bnblint.rules import ALL_RULES
from bnblint.rules.base import Rule
from bnblint.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnblint", "check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        check=False,
    )


def fixed(text: str, **kwargs: object) -> pipeline.FileResult:
    return lint_text(text, "t.py", Settings(), fix=True, **kwargs)  # type: ignore[arg-type]


# --- applied fixes by identity ---------------------------------------------------------------

HALVES = f"""\
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained("x", quantization_config={CONFIG}, device_map="auto")
model.half()
m2 = model.half()
"""


def test_one_fixable_and_one_unfixable_cast_of_one_load() -> None:
    result = fixed(HALVES, unsafe_fixes=True)
    assert result.fixed_text is not None and "\nmodel.half()\n" not in result.fixed_text
    assert [(f.code, f.location.row) for f in result.fixed] == [("BNB006", 5)]
    # What remains is positioned in the fixed text (one line shorter).
    assert [(f.code, f.location.row) for f in result.findings] == [("BNB006", 5)]


def test_summary_counts_the_fix(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(HALVES)
    out = run_cli("--fix", "--unsafe-fixes", "t.py", cwd=tmp_path)
    assert "Found 2 errors (1 fixed, 1 remaining)." in out.stdout


CHAIN = """\
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16,
                         llm_int8_threshold=6)
m = AutoModelForCausalLM.from_pretrained("x", quantization_config=cfg, device_map="auto")
"""


def test_chained_fix_reported_as_what_it_did(tmp_path: Path) -> None:
    """BNB007 writes ``6.0``; then BNB009 removes the 8-bit option from the 4-bit config."""
    result = fixed(CHAIN)
    assert result.fixed_text is not None and "llm_int8_threshold" not in result.fixed_text
    assert sorted(f.code for f in result.fixed) == ["BNB007", "BNB009"]
    by_code = {f.code: f for f in result.fixed}
    column = CHAIN.splitlines()[4].index("llm_int8_threshold") + 1
    # The second round's finding is positioned in the original text.
    assert (by_code["BNB009"].location.row, by_code["BNB009"].location.column) == (5, column)
    (tmp_path / "t.py").write_text(CHAIN)
    out = run_cli("--fix", "--show-fixes", "t.py", cwd=tmp_path)
    assert "Found 2 errors (2 fixed, 0 remaining)." in out.stdout
    assert "1 × BNB007" in out.stdout and "1 × BNB009" in out.stdout


# --- problems reported, never dropped --------------------------------------------------------


class _TestRule(Rule):
    name = "test-rule"
    level = Level.WARNING
    words = (b"from_pretrained",)
    summary = "test"
    docs = ""

    def fix_op(self, call: ast.Call) -> ReplaceNode:
        raise NotImplementedError

    def check(self, model, context) -> Iterator[Diagnostic]:  # type: ignore[no-untyped-def]
        for site in model.loads:
            fix = Fix("test", Applicability.SAFE, (self.fix_op(site.call),))
            yield Diagnostic(self.code, "test", site.call, site, fix)


class _Breaks(_TestRule):
    """Its fix writes an unparenthesized generator before another argument."""

    code = "BNB991"

    def fix_op(self, call: ast.Call) -> ReplaceNode:
        return ReplaceNode(call.keywords[0], 'c for c in "ab"')


class _Toggles(_TestRule):
    """Its fix undoes itself: x -> y -> x ..."""

    code = "BNB992"

    def fix_op(self, call: ast.Call) -> ReplaceNode:
        first = call.args[0]
        x = isinstance(first, ast.Constant) and first.value == "x"
        return ReplaceNode(first, '"y"' if x else '"x"')


LOAD = 'm = AutoModelForCausalLM.from_pretrained("x", device_map="auto", load_in_4bit=True)\n'


def test_a_pass_that_breaks_the_syntax_is_reported() -> None:
    result = fixed(LOAD, rules=[_Breaks])
    assert result.fixed_text is None and result.fixed == []
    assert [f.code for f in result.findings] == ["BNB991"]
    assert len(result.fix_problems) == 1
    assert result.fix_problems[0].startswith("Fix introduced a syntax error (BNB991)")


def test_fixes_that_do_not_converge_are_reported() -> None:
    result = fixed(LOAD, rules=[_Toggles])
    assert result.fix_problems == [
        f"Failed to converge after {MAX_FIX_PASSES} iterations (BNB992): "
        "the text of the last iteration is kept"
    ]
    assert result.fixed_text is not None and '"y"' in result.fixed_text  # 5 passes: odd
    assert len(result.fixed) == MAX_FIX_PASSES


def test_fix_problems_in_the_front_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One line each on stderr, and an error item in the JSON and SARIF output."""
    from bnblint.output import Report
    from bnblint.output.json_format import render as render_json
    from bnblint.output.sarif import sarif_log

    result = fixed(LOAD, rules=[_Breaks])
    report = Report(results=[result])
    import io

    out = io.StringIO()
    render_json(report, out)
    messages = [item["message"] for item in json.loads(out.getvalue())]
    assert result.fix_problems[0] in messages
    notes = sarif_log(report)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert [n["message"]["text"] for n in notes] == result.fix_problems


def test_fix_problem_line_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_bytes(CR_ONLY)
    out = run_cli("--fix", "t.py", cwd=tmp_path)
    assert out.stderr.count("t.py: error: Fix not applied (BNB001)") == 1, out.stderr


# --- names bound before their use: the fixed file runs ---------------------------------------

STUBS = {
    "transformers/__init__.py": """\
        class BitsAndBytesConfig:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class AutoModelForCausalLM:
            @classmethod
            def from_pretrained(cls, name, **kwargs):
                if "load_in_4bit" in kwargs:
                    raise TypeError("unexpected keyword argument load_in_4bit")
                return cls()
        """,
    "torch/__init__.py": "float16, bfloat16, float32 = 'float16', 'bfloat16', 'float32'\n",
}


def run_with_stubs(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    stubs = tmp_path / "stubs"
    for name, source in STUBS.items():
        (stubs / name).parent.mkdir(parents=True, exist_ok=True)
        (stubs / name).write_text(textwrap.dedent(source))
    script = tmp_path / "fixed_script.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(stubs)},
        check=False,
    )


LATE_IMPORTS = [
    pytest.param(
        "from transformers import AutoModelForCausalLM\n"
        'm = AutoModelForCausalLM.from_pretrained("x", load_in_4bit=True, device_map="auto")\n'
        "from transformers import BitsAndBytesConfig\n",
        id="BitsAndBytesConfig-imported-later",
    ),
    pytest.param(
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "cfg = BitsAndBytesConfig(load_in_4bit=True)\n"
        'm = AutoModelForCausalLM.from_pretrained("x", quantization_config=cfg, device_map="a")\n'
        "import torch as th\n",
        id="torch-alias-imported-later",
    ),
    pytest.param(
        "import os\n"
        "from transformers import AutoModelForCausalLM\n"
        "def load():\n"
        '    return AutoModelForCausalLM.from_pretrained("x", load_in_4bit=True, device_map="a")\n'
        "m = load()\n"
        "import torch\n"
        "from transformers import BitsAndBytesConfig\n",
        id="used-in-a-function-called-before-the-import",
    ),
]


@pytest.mark.parametrize("source", LATE_IMPORTS)
def test_fixed_file_runs_without_name_error(source: str, tmp_path: Path) -> None:
    result = fixed(source, unsafe_fixes=True)
    assert result.fixed_text is not None and result.fix_problems == []
    after = run_with_stubs(result.fixed_text, tmp_path)
    assert after.returncode == 0, after.stderr


def test_fixed_notebook_runs_cell_by_cell(tmp_path: Path) -> None:
    """An import in a later cell does not bind the name for an earlier cell's fix."""
    cells = [
        "from transformers import AutoModelForCausalLM",
        'm = AutoModelForCausalLM.from_pretrained("x", load_in_4bit=True, device_map="auto")',
        "from transformers import BitsAndBytesConfig",
    ]
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": [c],
            }
            for c in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    result = lint_source(json.dumps(notebook, indent=1), "nb.ipynb", Settings(), fix=True)
    assert result.fixed_text is not None and result.fix_problems == []
    new_cells = json.loads(result.fixed_text)["cells"]
    program = "\n".join("".join(c["source"]) for c in new_cells) + "\n"
    after = run_with_stubs(program, tmp_path)
    assert after.returncode == 0, after.stderr


# --- no byte lost outside the edits ----------------------------------------------------------

LOAD_4BIT = (
    'model = AutoModelForCausalLM.from_pretrained("x", '
    'quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="float16"))'
)
IMPORT = "from transformers import AutoModelForCausalLM, BitsAndBytesConfig"
CR_ONLY = f"{IMPORT}\r{LOAD_4BIT}\r".encode()
LOSSY = [
    pytest.param(
        f"{IMPORT}\n{LOAD_4BIT}\n    # model.eval()\n    # model.generate(...)\n".encode(),
        id="indented-comments-at-the-end",
    ),
    pytest.param(CR_ONLY, id="cr-only-final-cr"),
]


@pytest.mark.parametrize("data", LOSSY)
def test_fix_that_would_lose_bytes_is_refused(data: bytes, tmp_path: Path) -> None:
    text = data.decode()
    assert cst.parse_module(text).code != text  # LibCST itself does not reproduce it
    result = fixed(text)
    assert result.fixed_text is None and result.fixed == []
    assert [f.code for f in result.findings] == ["BNB001"]
    assert result.fix_problems and "BNB001" in result.fix_problems[0]
    path = tmp_path / "t.py"
    path.write_bytes(data)
    out = run_cli("--fix", "t.py", cwd=tmp_path)
    assert path.read_bytes() == data
    assert out.returncode == 1 and "error: Fix not applied (BNB001)" in out.stderr


def test_text_only_libcst_rejects_keeps_its_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The findings come from the stdlib AST; the fixes, which need LibCST, are reported as not
    applied (and have no edits), never a crash."""
    from bnblint.fix import nodes

    def refuse(text: str) -> tuple[None, str]:
        return None, "cannot parse: line 3:1: not for LibCST"

    monkeypatch.setattr(nodes, "parse_cst", refuse)
    text = f"{IMPORT}\n{LOAD_4BIT}\n# LibCST refuses this one\n"
    result = fixed(text)
    assert result.error is None and result.fixed_text is None and result.fixed == []
    assert [f.code for f in result.findings] == ["BNB001"] and result.findings[0].fixable
    assert result.fix_problems == [
        "Fix not applied (BNB001): LibCST, which applies the fixes, cannot parse this text "
        "(line 3:1: not for LibCST)"
    ]
    with_edits = lint_text(text, "t.py", Settings(), want_edits=True)
    assert [(f.code, f.fixable, f.edits) for f in with_edits.findings] == [("BNB001", True, [])]


def test_guard_does_not_refuse_ordinary_fixes(tmp_path: Path) -> None:
    text = f"{IMPORT}\n{LOAD_4BIT}\n# model.eval()\n"
    result = fixed(text)
    assert result.fix_problems == []
    assert result.fixed_text == text.replace('"float16"))', '"float16"), device_map="auto")')


# --- edits: per node, equal to the whole-module computation ----------------------------------


def _reference_edits(module: cst.Module, ops, index: LineIndex):  # type: ignore[no-untyped-def]
    """The quadratic computation edits_for replaced: each node's operations applied to the whole
    module, the texts compared."""
    from bnblint.fix.apply import _target

    groups: dict[int, list] = {}  # type: ignore[type-arg]
    for op in ops:
        target = _target(op)
        groups.setdefault(id(op) if target is None else id(target), []).append(op)
    edits = [
        text_edit(index.text, apply_operations(module, g).code, index) for g in groups.values()
    ]
    return sorted((e for e in edits if e is not None), key=lambda e: e.location)


def _fixture_files() -> list[Path]:
    files = [*sorted((ROOT / "fixtures").rglob("*.py")), *sorted((ROOT / "examples").rglob("*.py"))]
    return [f for f in files if not f.name.endswith(".fixed.py")]


def test_edits_equal_the_whole_module_computation() -> None:
    """Also: every fix of the fixtures maps onto LibCST's tree (no ast node left unmapped)."""
    checked = 0
    for path in _fixture_files():
        text = path.read_bytes().decode("utf-8", "replace")
        try:
            tree = parse_ast(text)
        except (SyntaxError, ValueError):
            continue
        document = CstDocument(text)
        module = document.module
        if module is None or module.code != text:
            continue
        index = LineIndex(text)
        for _, d in pipeline._diagnose(tree, text, ALL_RULES, Settings()):
            if d.fix is None:
                continue
            try:
                ops = document.translate(d.fix.operations)
            except Unmapped as exc:
                raise AssertionError(f"{path}: {d.code}: {exc}") from None
            ours = edits_for(module, ops, index)
            assert ours == _reference_edits(module, ops, index), path
            checked += 1
    assert checked > 50


def test_edits_of_many_loads_in_one_file_are_linear() -> None:
    """Not a timing: the whole-module transform is never run per fix."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from many_loads import many_loads
    finally:
        sys.path.pop(0)
    import bnblint.fix.apply as apply

    calls = 0
    original = apply.apply_operations

    def counting(module, operations):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return original(module, operations)

    apply.apply_operations = counting  # type: ignore[assignment]
    try:
        result = lint_text(many_loads(60), "m.py", Settings(), want_edits=True)
    finally:
        apply.apply_operations = original  # type: ignore[assignment]
    assert len(result.findings) == 240 and all(f.edits for f in result.findings)
    assert calls == 0
