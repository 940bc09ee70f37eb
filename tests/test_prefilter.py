"""The cheap filters that keep bnblint fast: behaviour, not timing."""

from __future__ import annotations

import subprocess
import sys

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
    # Invalid for LibCST only if parsed; the filter must skip it before that.
    text = '"""BitsAndBytesConfig(load_in_4bit=True)"""\nx = 1\n'
    result = lint_text(text, "doc.py", Settings())
    assert result.findings == [] and result.error is None
