"""The README's example: both findings, and a fix whose AST is the documented fix."""

from __future__ import annotations

import ast

from bnblint.pipeline import lint_text
from bnblint.settings import Settings

BROKEN = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config
)
"""

EXPECTED = """\
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=quantization_config,
    device_map="auto",
)
"""


def test_reports_bnb001_and_bnb002() -> None:
    result = lint_text(BROKEN, "example.py", Settings())
    assert [(f.code, f.location.row) for f in result.findings] == [("BNB002", 3), ("BNB001", 4)]
    assert all(f.load_site is not None and f.load_site.row == 4 for f in result.findings)


def test_fix_matches_documented_fix() -> None:
    result = lint_text(BROKEN, "example.py", Settings(), fix=True)
    assert result.fixed_text is not None
    assert ast.dump(ast.parse(result.fixed_text)) == ast.dump(ast.parse(EXPECTED))
    assert result.findings == []


def test_existing_torch_alias_is_used_and_no_import_added() -> None:
    source = "import torch as th\n" + BROKEN
    fixed = lint_text(source, "example.py", Settings(), fix=True).fixed_text
    assert fixed is not None
    assert "bnb_4bit_compute_dtype=th.float16" in fixed
    assert fixed.count("import torch") == 1


def test_configured_compute_dtype() -> None:
    settings = Settings(compute_dtype="bfloat16")
    fixed = lint_text(BROKEN, "example.py", settings, fix=True).fixed_text
    assert fixed is not None and "bnb_4bit_compute_dtype=torch.bfloat16" in fixed
