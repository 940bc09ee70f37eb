"""BNB007 invalid-config-value: which literal values are reported, with which fix."""

from __future__ import annotations

import pytest

from bnblint.pipeline import lint_text
from bnblint.rules.options import (
    DTYPE_ALIASES,
    QUANT_STORAGE_NAMES,
    TORCH_DTYPE_NAMES,
    VALID_OPTIONS,
)
from bnblint.settings import Settings

HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
SETTINGS = Settings(select=("BNB007",))


def lint(body: str, fix: bool = False):  # type: ignore[no-untyped-def]
    return lint_text(HEAD + body, "t.py", SETTINGS, fix=fix, unsafe_fixes=fix)


def fixed(body: str) -> str:
    result = lint(body, fix=True)
    assert result.fixed_text is not None
    return result.fixed_text[len(HEAD) :]


@pytest.mark.parametrize(
    ("options", "exception"),
    [
        ("load_in_4bit=True, load_in_8bit=True", "ValueError: load_in_4bit and load_in_8bit"),
        ('load_in_4bit="True"', "TypeError: load_in_4bit must be a boolean"),
        ("load_in_8bit=True, llm_int8_threshold=6", "TypeError: llm_int8_threshold must be"),
        ('load_in_4bit=True, llm_int8_skip_modules="lm_head"', "must be a list of strings"),
        ('load_in_4bit=True, bnb_4bit_compute_dtype="bf16"', "no attribute 'bf16'"),
        ('load_in_4bit=True, bnb_4bit_compute_dtype="auto"', "no attribute 'auto'"),
        ('load_in_4bit=True, bnb_4bit_quant_type="NF4"', "got 'NF4'"),
        ("load_in_4bit=True, bnb_4bit_quant_type=None", "must be a string"),
        ('load_in_4bit=True, bnb_4bit_quant_storage="bf16"', "raises `ValueError`"),
    ],
)
def test_reports_the_exception(options: str, exception: str) -> None:
    findings = lint(f"c = BitsAndBytesConfig({options})\n").findings
    assert [f.code for f in findings] == ["BNB007"]
    assert exception in findings[0].message


@pytest.mark.parametrize(
    "options",
    [
        'load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bfloat16"',
        "load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16, llm_int8_skip_modules=None",
        'load_in_4bit=True, bnb_4bit_compute_dtype="half", bnb_4bit_quant_storage="uint8"',
        "load_in_8bit=True, llm_int8_threshold=6.0, llm_int8_has_fp16_weight=False",
        'load_in_8bit=True, bnb_4bit_quant_type="NF4"',  # never read in 8-bit
        "load_in_4bit=flag, load_in_8bit=True",  # unknown
        'load_in_4bit=flag, bnb_4bit_quant_type="NF4"',  # mode unknown
        "load_in_4bit=True, bnb_4bit_compute_dtype=args.dtype, llm_int8_threshold=args.t",
    ],
)
def test_valid_or_unknown_values_are_silent(options: str) -> None:
    assert lint(f"c = BitsAndBytesConfig({options})\n").findings == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('bnb_4bit_quant_type="NF4"', 'bnb_4bit_quant_type="nf4"'),
        ("bnb_4bit_quant_type='FP4'", "bnb_4bit_quant_type='fp4'"),
        ('bnb_4bit_compute_dtype="bf16"', "bnb_4bit_compute_dtype=torch.bfloat16"),
        ('bnb_4bit_compute_dtype="torch.float16"', "bnb_4bit_compute_dtype=torch.float16"),
        ('bnb_4bit_compute_dtype="FP32"', "bnb_4bit_compute_dtype=torch.float32"),
        ("llm_int8_threshold=6", "llm_int8_threshold=6.0"),
        ('llm_int8_threshold="5.5"', "llm_int8_threshold=5.5"),
        ("llm_int8_threshold=None", "llm_int8_threshold=6.0"),
        ('llm_int8_skip_modules="lm_head"', 'llm_int8_skip_modules=["lm_head"]'),
        ("llm_int8_skip_modules=('a', 'b')", "llm_int8_skip_modules=['a', 'b']"),
        ('bnb_4bit_use_double_quant="False"', "bnb_4bit_use_double_quant=False"),
        ("bnb_4bit_use_double_quant=1", "bnb_4bit_use_double_quant=True"),
        ("llm_int8_enable_fp32_cpu_offload=None", "llm_int8_enable_fp32_cpu_offload=False"),
        ("bnb_4bit_quant_type=None", 'bnb_4bit_quant_type="fp4"'),
    ],
)
def test_safe_fixes(before: str, after: str) -> None:
    result = lint(f"c = BitsAndBytesConfig(load_in_4bit=True, {before})\n")
    assert [f.applicability.value for f in result.findings if f.applicability] == ["safe"]
    assert fixed(f"c = BitsAndBytesConfig(load_in_4bit=True, {before})\n") == (
        f"c = BitsAndBytesConfig(load_in_4bit=True, {after})\n"
    )


@pytest.mark.parametrize(
    "options",
    [
        "load_in_4bit=True, load_in_8bit=True",
        'load_in_4bit="yes"',
        'load_in_4bit=True, bnb_4bit_quant_type="nf8"',
        'load_in_4bit=True, bnb_4bit_compute_dtype="bfloat"',
        'load_in_4bit=True, bnb_4bit_compute_dtype="auto"',  # reaches no load
        'load_in_4bit=True, llm_int8_skip_modules="lm_head,embed"',
    ],
)
def test_no_fix_when_no_rewrite_is_right(options: str) -> None:
    findings = lint(f"c = BitsAndBytesConfig({options})\n").findings
    assert len(findings) == 1 and findings[0].applicability is None


def test_auto_compute_dtype_takes_the_load_dtype_unsafely() -> None:
    body = (
        'c = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="auto")\n'
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=c, "
        "dtype=torch.bfloat16)\n"
    )
    [finding] = lint(body).findings
    assert finding.applicability is not None and finding.applicability.value == "unsafe"
    assert "bnb_4bit_compute_dtype=torch.bfloat16" in fixed(body)


def test_dict_config_is_read_at_the_load() -> None:
    body = (
        'q = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "bf16"}\n'
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n"
    )
    [finding] = lint(body).findings
    assert "the load raises" in finding.message
    assert '"bnb_4bit_compute_dtype": "bfloat16"' in fixed(body)
    replaced = body.replace("m =", 'q["bnb_4bit_compute_dtype"] = "bfloat16"\nm =')
    assert lint(replaced).findings == []


def test_option_from_a_splatted_dict_is_reported_without_fix() -> None:
    body = (
        'extra = {"bnb_4bit_quant_type": "NF4"}\n'
        "c = BitsAndBytesConfig(load_in_4bit=True, **extra)\n"
    )
    [finding] = lint(body).findings
    assert finding.location.row == 3 and finding.applicability is None


def test_alias_table_maps_to_real_dtypes() -> None:
    assert set(DTYPE_ALIASES.values()) <= TORCH_DTYPE_NAMES
    assert set(QUANT_STORAGE_NAMES) <= TORCH_DTYPE_NAMES
    # An alias that is a real torch dtype name would be valid, not a typo to report.
    assert not {a for a, name in DTYPE_ALIASES.items() if a != name} & TORCH_DTYPE_NAMES - {
        "half",
        "float",
    }


def test_against_installed_transformers() -> None:
    """With the ``verify`` extra: the constants and messages match the real class."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    import inspect

    cls = transformers.BitsAndBytesConfig
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    assert tuple(params) == VALID_OPTIONS
    for kwargs, message in [
        ({"load_in_4bit": "True"}, "load_in_4bit must be a boolean"),
        ({"load_in_8bit": True, "llm_int8_threshold": 6}, "llm_int8_threshold must be a float"),
        ({"load_in_4bit": True, "bnb_4bit_compute_dtype": "bf16"}, "has no attribute 'bf16'"),
    ]:
        with pytest.raises((TypeError, AttributeError), match=message):
            cls(**kwargs)
    assert all(isinstance(getattr(torch, n), torch.dtype) for n in DTYPE_ALIASES.values())
