"""BNB008 unknown-config-option: the suggestions, and a rename next to another rule's fix. Its
single-rule cases are on the rule class, run by test_rule_cases.py."""

from __future__ import annotations

import pytest

from bnblint.pipeline import lint_text
from bnblint.rules.options import suggestions
from bnblint.settings import Settings


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("bnb_4bit_compute_type", ["bnb_4bit_compute_dtype"]),
        ("load_in_8bit_fp32_cpu_offload", ["llm_int8_enable_fp32_cpu_offload"]),
        ("load_in_8bit_skip_modules", ["llm_int8_skip_modules"]),
        ("load_in_bit", ["load_in_8bit", "load_in_4bit"]),
        ("torch_dtype", []),
        ("device_map", []),
    ],
)
def test_suggestions(key: str, expected: list[str]) -> None:
    assert suggestions(key) == expected


def test_rename_and_an_added_key_do_not_duplicate_it() -> None:
    # BNB002 adds the compute dtype in the same pass as the rename: the key appears once.
    source = (
        "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "q = {'load_in_4bit': True, 'bnb_4bit_compute_dtypes': 'bfloat16'}\n"
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q, device_map='auto')\n"
    )
    both = Settings(select=("BNB002", "BNB008"))
    fixed = lint_text(source, "t.py", both, fix=True, unsafe_fixes=True).fixed_text
    assert fixed is not None and fixed.count("bnb_4bit_compute_dtype") == 1
