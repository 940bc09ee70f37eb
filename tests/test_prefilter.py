"""The cheap filters that keep bnblint fast: behaviour, not timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bnblint.pipeline import has_candidate_call, lint_text, may_matter, words_for
from bnblint.rules import ALL_RULES
from bnblint.settings import Settings


def test_libcst_is_not_imported_at_startup() -> None:
    # Files that fail the byte prefilter must cost no LibCST import (about 0.3 s).
    code = "import sys, bnblint.cli, bnblint.rules; print('libcst' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_byte_prefilter_uses_rule_words() -> None:
    words = words_for(ALL_RULES)
    assert b"BitsAndBytesConfig" in words and b"load_in_4bit" in words
    assert may_matter(b"x = 'load_in_8bit'\n", ALL_RULES)
    # A load may get its quantization from another project module, so a load alone passes the
    # bytes; the stdlib-AST gate still drops one without keywords.
    assert may_matter(b"model = AutoModel.from_pretrained('m', **KW)\n", ALL_RULES)
    assert not may_matter(b"import torch\n", ALL_RULES)


def test_candidate_call_filter() -> None:
    doc_only = '"""Use BitsAndBytesConfig(load_in_4bit=True) with from_pretrained."""\n'
    assert not has_candidate_call(doc_only)
    assert not has_candidate_call("class BitsAndBytesConfig:\n    load_in_4bit = True\n")
    assert has_candidate_call("m = A.from_pretrained('x', load_in_4bit=True)\n")
    assert has_candidate_call("from transformers import BitsAndBytesConfig as B\nB(True)\n")
    assert has_candidate_call("from transformers import pipeline as p\np('t', model_kwargs=k)\n")
    assert has_candidate_call("m = A.from_pretrained('x', **kw)\n")
    assert has_candidate_call("def broken(:\n")  # let LibCST report the syntax error
    # Calls that cannot carry quantization: no keywords, or a tokenizer/config receiver; an
    # argument-less config matters only where a load (a candidate itself) receives it.
    assert not has_candidate_call("m = A.from_pretrained('x')\n")
    assert not has_candidate_call("t = AutoTokenizer.from_pretrained('x', use_fast=True)\n")
    assert not has_candidate_call("c = transformers.AutoConfig.from_pretrained('x', **kw)\n")
    assert not has_candidate_call("d = BitsAndBytesConfig().to_dict()\n")


def test_docstring_mentions_are_not_reported_or_parsed() -> None:
    # Invalid for the parser only if parsed; the filter must skip it before that.
    text = '"""BitsAndBytesConfig(load_in_4bit=True)"""\nx = 1\n'
    result = lint_text(text, "doc.py", Settings())
    assert result.findings == [] and result.error is None


ROOT = Path(__file__).resolve().parent.parent
FINDINGS = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig
cfg = BitsAndBytesConfig(load_in_4bit=True)
m = AutoModelForCausalLM.from_pretrained("x", quantization_config=cfg)
"""
LINT = """\
import sys
from bnblint.pipeline import lint_text
from bnblint.settings import Settings
r = lint_text(open(sys.argv[1]).read(), "t.py", Settings(), want_edits=sys.argv[2] == "1")
print(len(r.findings), all(f.fixable for f in r.findings), sum(len(f.edits) for f in r.findings),
      "libcst" in sys.modules)
"""


def test_findings_without_edits_never_import_libcst(tmp_path: Path) -> None:
    """Findings, fix availability included, come from the stdlib AST; LibCST is imported (and
    the text parsed with it) only when edits are asked for."""
    (tmp_path / "t.py").write_text(FINDINGS)
    outs = [
        subprocess.run(
            [sys.executable, "-c", LINT, "t.py", edits],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(ROOT)},
        ).stdout.split()
        for edits in ("0", "1")
    ]
    assert outs[0] == ["2", "True", "0", "False"]
    count, fixable, edits, imported = outs[1]
    assert (count, fixable, imported) == ("2", "True", "True") and int(edits) >= 2


def test_check_without_fixes_never_imports_libcst(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(FINDINGS)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bnblint", "check", "t.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
    )
    assert out.returncode == 1 and "Found 2 errors (2 fixable with --fix)." in out.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()]
    assert "bnblint.analysis.builder" in imported
    assert not [name for name in imported if name.split(".")[0] == "libcst"]


def test_syntax_error_is_one_line_from_the_stdlib_parser() -> None:
    text = "from transformers import BitsAndBytesConfig\nBitsAndBytesConfig(load_in_4bit=True\n"
    result = lint_text(text, "t.py", Settings())
    assert result.findings == []
    assert result.error == "cannot parse: line 2:19: '(' was never closed"
