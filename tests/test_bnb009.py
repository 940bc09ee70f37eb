"""BNB009 ineffective-config-option: dead options per mode, and the flagless config."""

from __future__ import annotations

import pytest

from bnblint.pipeline import lint_text
from bnblint.settings import Settings

HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
LOAD = "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=c, device_map='auto')\n"
SETTINGS = Settings(select=("BNB009",))


def lint(body: str, fix: bool = False, settings: Settings = SETTINGS):  # type: ignore[no-untyped-def]
    return lint_text(HEAD + body, "t.py", settings, fix=fix, unsafe_fixes=fix)


@pytest.mark.parametrize(
    ("options", "dead"),
    [
        ("load_in_8bit=True, bnb_4bit_compute_dtype=torch.float16", "bnb_4bit_compute_dtype"),
        ("load_in_8bit=True, bnb_4bit_quant_type='nf4'", "bnb_4bit_quant_type"),
        ("load_in_8bit=True, bnb_4bit_use_double_quant=True", "bnb_4bit_use_double_quant"),
        ("load_in_4bit=True, llm_int8_threshold=6.0", "llm_int8_threshold"),
        ("load_in_4bit=True, llm_int8_has_fp16_weight=False", "llm_int8_has_fp16_weight"),
    ],
)
def test_dead_option_is_removed(options: str, dead: str) -> None:
    body = f"c = BitsAndBytesConfig({options})\n"
    [finding] = lint(body).findings
    assert finding.message.startswith(f"`{dead}` does nothing")
    assert finding.applicability is not None and finding.applicability.value == "safe"
    fixed = lint(body, fix=True).fixed_text
    assert fixed is not None and dead not in fixed


@pytest.mark.parametrize(
    "options",
    [
        "load_in_4bit=True, llm_int8_skip_modules=['a'], llm_int8_enable_fp32_cpu_offload=True",
        "load_in_8bit=True, llm_int8_skip_modules=['lm_head'], llm_int8_threshold=5.0",
        "load_in_8bit=True, bnb_4bit_quant_storage=torch.bfloat16",  # read by FSDP setup
        "load_in_4bit=flag, llm_int8_threshold=5.0",  # mode unknown
        "True, bnb_4bit_compute_dtype=torch.float16",  # positional load_in_8bit
        "load_in_8bit=True, bnb_4bit_compute_dtype='bf16'",  # invalid: BNB007's
    ],
)
def test_options_that_apply_or_unknown_modes_are_silent(options: str) -> None:
    assert lint(f"c = BitsAndBytesConfig({options})\n" + LOAD).findings == []


def test_flagless_config_gets_load_in_4bit() -> None:
    body = "c = BitsAndBytesConfig(bnb_4bit_compute_dtype=torch.float16)\n" + LOAD
    [finding] = lint(body).findings
    assert "quantizes to 4-bit anyway" in finding.message
    fixed = lint(body, fix=True).fixed_text
    assert fixed is not None and "torch.float16, load_in_4bit=True)" in fixed


@pytest.mark.parametrize(
    "config",
    [
        "BitsAndBytesConfig(load_in_4bit=False)",
        "BitsAndBytesConfig(load_in_8bit=False, bnb_4bit_compute_dtype=torch.float16)",
        "BitsAndBytesConfig(llm_int8_threshold=5.0)",
    ],
)
def test_flagless_config_without_an_obvious_fix(config: str) -> None:
    [finding] = lint(f"c = {config}\n" + LOAD).findings
    assert "4-bit" in finding.message and finding.applicability is None


@pytest.mark.parametrize(
    "body",
    [
        "c = BitsAndBytesConfig()\n",  # never loaded here
        "c = BitsAndBytesConfig()\nc.load_in_8bit = True\n" + LOAD,
        "def f(**kw):\n    c = BitsAndBytesConfig(**kw)\n" + "    " + LOAD,
    ],
)
def test_flagless_config_stays_silent_when_the_flag_may_be_set(body: str) -> None:
    assert lint(body).findings == []


def test_call_value_is_reported_without_fix() -> None:
    body = "c = BitsAndBytesConfig(load_in_8bit=True, bnb_4bit_compute_dtype=pick())\n"
    [finding] = lint(body).findings
    assert finding.applicability is None


def test_saved_config_dict_is_silent() -> None:
    body = (
        "c = {'load_in_4bit': True, 'quant_method': 'bitsandbytes', 'llm_int8_threshold': 6.0}\n"
        + LOAD
    )
    assert lint(body).findings == []
