"""BNB008 unknown-config-option: suggestions, and when the rename is offered."""

from __future__ import annotations

import pytest

from bnblint.pipeline import lint_text
from bnblint.rules.options import suggestions
from bnblint.settings import Settings

HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
SETTINGS = Settings(select=("BNB008",))


def lint(body: str, fix: bool = False, settings: Settings = SETTINGS):  # type: ignore[no-untyped-def]
    return lint_text(HEAD + body, "t.py", settings, fix=fix, unsafe_fixes=fix)


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


def test_typo_is_renamed_keeping_the_value_unsafely() -> None:
    body = "c = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_type = torch.float16)\n"
    [finding] = lint(body).findings
    assert "did you mean `bnb_4bit_compute_dtype`?" in finding.message
    assert finding.applicability is not None and finding.applicability.value == "unsafe"
    fixed = lint(body, fix=True).fixed_text
    assert fixed == HEAD + body.replace("compute_type", "compute_dtype")
    assert lint_text(HEAD + body, "t.py", SETTINGS, fix=True).fixed_text is None  # not with --fix


@pytest.mark.parametrize(
    "options",
    [
        "load_in_4bit=True, load_in_8bit_skip_modules=['lm_head']",  # not close enough
        "load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16, bnb_4bit_compute_type=x",
        "load_in_bit=True",  # two candidates
        "load_in_4bit=True, bnb_4bit_quant_dtype=torch.uint8",  # a dtype is no quant type
        "load_in_8bit=True, bnb_8bit_compute_dtype=torch.float16",  # 4-bit only target
        "load_in_4bit=True, bnb_4bit_compute_type=torch.float16, **extra",  # may hold it
    ],
)
def test_no_rename(options: str) -> None:
    findings = lint(f"c = BitsAndBytesConfig({options})\n").findings
    assert len(findings) == 1 and findings[0].applicability is None


def test_saved_config_keys_and_valid_options_are_silent() -> None:
    body = (
        'q = {"load_in_4bit": True, "quant_method": "bitsandbytes", "_load_in_4bit": True,\n'
        '     "_load_in_8bit": False, "bnb_4bit_quant_storage": "uint8"}\n'
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n"
    )
    assert lint(body).findings == []


def test_dict_key_is_renamed_in_its_quotes() -> None:
    body = (
        "q = {'load_in_4bit': True, 'bnb_4bit_compute_dtypes': 'bfloat16'}\n"
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n"
    )
    fixed = lint(body, fix=True).fixed_text
    assert fixed is not None and "'bnb_4bit_compute_dtype': 'bfloat16'}" in fixed


def test_rename_and_an_added_key_do_not_duplicate_it() -> None:
    # BNB002 adds the compute dtype in the same pass as the rename: the key appears once.
    body = (
        "q = {'load_in_4bit': True, 'bnb_4bit_compute_dtypes': 'bfloat16'}\n"
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q, device_map='auto')\n"
    )
    both = Settings(select=("BNB002", "BNB008"))
    fixed = lint(body, fix=True, settings=both).fixed_text
    assert fixed is not None and fixed.count("bnb_4bit_compute_dtype") == 1


def test_unknown_option_of_a_dict_that_never_reaches_a_load_is_silent() -> None:
    # A dict is only a config when it reaches a load as quantization_config.
    assert lint("q = {'load_in_4bit': True, 'compute_type': 1}\n").findings == []
