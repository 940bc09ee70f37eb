"""BNB004 (legacy-load-kwargs): cases the fixtures cannot show on their own (other rules would
fire on them too), checked with BNB004 alone."""

from __future__ import annotations

from bnblint.pipeline import lint_text
from bnblint.settings import Settings

ONLY = Settings(select=("BNB004",))


def check(source: str, unsafe: bool = True):  # type: ignore[no-untyped-def]
    report = lint_text(source, "t.py", ONLY)
    fixed = lint_text(source, "t.py", ONLY, fix=True, unsafe_fixes=unsafe)
    return report.findings, fixed.fixed_text


def test_8bit_into_a_config_with_neither_flag_is_unsafe() -> None:
    source = (
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        'm = AutoModelForCausalLM.from_pretrained("m", load_in_8bit=True,'
        " quantization_config=BitsAndBytesConfig(llm_int8_threshold=5.0))\n"
    )
    findings, fixed = check(source)
    assert [f.applicability.value for f in findings if f.applicability] == ["unsafe"]
    assert fixed == (
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        'm = AutoModelForCausalLM.from_pretrained("m",'
        " quantization_config=BitsAndBytesConfig(llm_int8_threshold=5.0, load_in_8bit=True))\n"
    )
    _, safe_only = check(source, unsafe=False)
    assert safe_only is None


def test_name_bound_to_another_config_gets_no_fix() -> None:
    source = (
        "from diffusers import BitsAndBytesConfig\n"
        "from transformers import AutoModelForCausalLM\n"
        'm = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True)\n'
    )
    findings, fixed = check(source)
    assert [f.code for f in findings] == ["BNB004"]
    assert findings[0].applicability is None and fixed is None


def test_module_import_spells_the_config_through_it() -> None:
    source = (
        "import transformers\n"
        'm = transformers.AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True)\n'
    )
    _, fixed = check(source)
    assert fixed == (
        "import transformers\n"
        'm = transformers.AutoModelForCausalLM.from_pretrained("m",'
        " quantization_config=transformers.BitsAndBytesConfig(load_in_4bit=True))\n"
    )


def test_pipeline_own_keyword_is_not_reported() -> None:
    # Measured: pipeline(load_in_4bit=True) loads an unquantized model, no TypeError.
    source = (
        "from transformers import pipeline\n"
        'p = pipeline("text-generation", model="m", load_in_4bit=True)\n'
        'q = pipeline("text-generation", model="m", **{"load_in_4bit": True})\n'
    )
    findings, _ = check(source)
    assert findings == []


def test_update_call_is_rewritten_in_place() -> None:
    source = (
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "kw = {}\n"
        "kw.update(load_in_4bit=True)\n"
        'm = AutoModelForCausalLM.from_pretrained("m", **kw)\n'
    )
    findings, fixed = check(source)
    assert [(f.code, f.location.row) for f in findings] == [("BNB004", 3)]
    assert fixed is not None
    assert "kw.update(quantization_config=BitsAndBytesConfig(load_in_4bit=True))" in fixed


def test_known_true_variable_is_kept() -> None:
    source = (
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "QUANTIZE = True\n"
        'm = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=QUANTIZE)\n'
    )
    findings, fixed = check(source)
    assert findings[0].applicability is not None
    assert findings[0].applicability.value == "safe"
    assert fixed is not None and "BitsAndBytesConfig(load_in_4bit=QUANTIZE)" in fixed


def test_non_transformers_receivers_are_silent() -> None:
    source = (
        "from mylib import Loader\n"
        "from unsloth import FastLanguageModel\n"
        'a = Loader.from_pretrained("m", load_in_4bit=True)\n'
        'b = FastLanguageModel.from_pretrained("m", load_in_4bit=True)\n'
        'c = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True)  # not imported\n'
    )
    findings, _ = check(source)
    assert findings == []


def test_peft_auto_classes_forward_the_load_keywords() -> None:
    source = (
        "from peft import AutoPeftModelForCausalLM\n"
        'a = AutoPeftModelForCausalLM.from_pretrained("m", load_in_4bit=True)\n'
    )
    findings, fixed = check(source)
    assert [f.code for f in findings] == ["BNB004"]  # ONLY selects BNB004
    assert fixed is not None and "quantization_config=BitsAndBytesConfig(" in fixed


def test_conditional_config_and_legacy_flag_get_no_fix() -> None:
    source = (
        "import sys\n"
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        'cfg = BitsAndBytesConfig(load_in_4bit=True) if "-q" in sys.argv else None\n'
        'm = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True,'
        " quantization_config=cfg)\n"
    )
    findings, fixed = check(source)
    assert [f.code for f in findings] == ["BNB004"]
    assert findings[0].applicability is None and fixed is None
