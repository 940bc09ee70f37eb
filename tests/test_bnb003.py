"""BNB003 (compute-dtype-mismatch): cases checked with BNB003 alone."""

from __future__ import annotations

import pytest

from bnblint.pipeline import lint_text
from bnblint.settings import Settings

ONLY = Settings(select=("BNB003",))
HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"


def load(config: str, dtype: str) -> str:
    return (
        f"{HEAD}m = AutoModelForCausalLM.from_pretrained("
        f'"m", quantization_config={config}, dtype={dtype}, device_map="auto")\n'
    )


@pytest.mark.parametrize(
    ("compute", "dtype", "fires"),
    [
        ("torch.float16", "torch.bfloat16", True),
        ("torch.bfloat16", "torch.float16", True),
        ("torch.float32", "torch.float16", True),
        ("torch.float32", "torch.bfloat16", True),
        ("torch.float16", "torch.float16", False),
        ("torch.half", '"float16"', False),
        ("torch.bfloat16", "torch.float32", False),  # a float32 load: deliberate
        ("torch.float16", "torch.float32", False),
        ("torch.float64", "torch.float16", False),  # effect not measured: silent
        ("torch.bfloat16", '"auto"', False),
    ],
)
def test_pairs(compute: str, dtype: str, fires: bool) -> None:
    config = f"BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype={compute})"
    findings = lint_text(load(config, dtype), "t.py", ONLY).findings
    assert [f.code for f in findings] == (["BNB003"] if fires else [])


def test_8bit_config_is_not_checked() -> None:
    config = "BitsAndBytesConfig(load_in_8bit=True, bnb_4bit_compute_dtype=torch.bfloat16)"
    assert lint_text(load(config, "torch.float16"), "t.py", ONLY).findings == []


def test_string_spelling_keeps_its_quotes() -> None:
    config = "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype='bfloat16')"
    fixed = lint_text(load(config, "torch.float16"), "t.py", ONLY, fix=True, unsafe_fixes=True)
    assert fixed.fixed_text is not None
    assert "bnb_4bit_compute_dtype='float16'" in fixed.fixed_text


def test_fix_is_unsafe_only() -> None:
    config = "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)"
    source = load(config, "torch.float16")
    assert lint_text(source, "t.py", ONLY, fix=True).fixed_text is None
    fixed = lint_text(source, "t.py", ONLY, fix=True, unsafe_fixes=True).fixed_text
    assert fixed is not None and "bnb_4bit_compute_dtype=torch.float16" in fixed
