"""BNB006 (cast-quantized-model): cases checked with BNB006 alone."""

from __future__ import annotations

import pytest

from bnblint.pipeline import lint_text
from bnblint.settings import Settings

ONLY = Settings(select=("BNB006",))
HEAD = (
    "import argparse\nimport torch\n"
    "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
    "args = argparse.ArgumentParser().parse_args()\n"
)


def program(use: str, mode: str = "load_in_8bit=True", extra: str = "") -> str:
    return (
        f"{HEAD}model = AutoModelForCausalLM.from_pretrained("
        f'"m", quantization_config=BitsAndBytesConfig({mode}), device_map="auto"{extra})\n'
        f"{use}\n"
    )


def run(source: str, fix: bool = False):  # type: ignore[no-untyped-def]
    return lint_text(source, "t.py", ONLY, fix=fix, unsafe_fixes=fix)


@pytest.mark.parametrize(
    ("use", "fires"),
    [
        ("model.half()", True),
        ("model.float()", True),
        ("model.to(torch.float16)", True),
        ("model.to(torch.half)", True),
        ("model.to(torch.bfloat16)", True),  # even the dtype it already has
        ("model.to(dtype=torch.float16)", True),
        ('model.to("cuda", torch.float16)', True),
        ('model.to("cuda", dtype=torch.float16)', True),
        ("model.to(dtype=args.dtype)", True),  # any dtype= keyword is refused
        ("model.cuda()", True),  # 8-bit
        ("model.eval().half()", True),
        ('model.to("cuda").to(torch.float16)', True),
        ("model.bfloat16()", False),  # not overridden by transformers: works
        ("model.double()", False),
        ('model.to("cuda")', False),
        ('model.to("cpu")', False),
        ("model.to(0)", False),
        ('model.to(torch.device("cuda"))', False),
        ('model.to("float16")', False),  # a device string to torch, not a dtype
        ("model.to(args.dtype)", False),
        ("model.to(**args.kw)", False),
        ("model.half(*args.a)", True),  # refused before the arguments are looked at
        ("model.type(torch.float16)", False),
    ],
)
def test_uses_of_an_8bit_model(use: str, fires: bool) -> None:
    findings = run(program(use)).findings
    assert [f.code for f in findings] == (["BNB006"] if fires else [])


@pytest.mark.parametrize(
    ("use", "fires"),
    [("model.half()", True), ("model.cuda()", False), ('model.to("cuda")', False)],
)
def test_uses_of_a_4bit_model(use: str, fires: bool) -> None:
    findings = run(program(use, "load_in_4bit=True")).findings
    assert [f.code for f in findings] == (["BNB006"] if fires else [])


@pytest.mark.parametrize(
    "mode",
    [
        "load_in_8bit=args.q",
        "**args.bnb",
        "load_in_8bit=True) if args.q else (None",
    ],
)
def test_quantization_not_certain(mode: str) -> None:
    assert run(program("model.half()", mode)).findings == []


@pytest.mark.parametrize(
    ("use", "extra", "fixed_use", "fixed_extra"),
    [
        ("model.half()", "", "", ", dtype=torch.float16"),
        ("model = model.float()", "", "", ", dtype=torch.float32"),
        ("model.to(torch.bfloat16)", "", "", ", dtype=torch.bfloat16"),
        ("model.to(torch.float16, non_blocking=True)", "", "", ", dtype=torch.float16"),
        (
            'model = model.to("cuda", torch.float16)',
            "",
            'model = model.to("cuda")',
            ", dtype=torch.float16",
        ),
        (
            'model.to(device="cuda", dtype=torch.float16)',
            "",
            'model.to(device="cuda")',
            ", dtype=torch.float16",
        ),
        ("model.half()", ", dtype=torch.float16", "", ", dtype=torch.float16"),
        ("model.half()", ', torch_dtype="float16"', "", ', torch_dtype="float16"'),
    ],
)
def test_fixes(use: str, extra: str, fixed_use: str, fixed_extra: str) -> None:
    result = run(program(use, extra=extra), fix=True)
    expected = program(fixed_use, extra=fixed_extra)
    if not fixed_use:
        expected = expected[: -len("\n")]
    assert result.fixed_text == expected
    assert result.findings == []


@pytest.mark.parametrize(
    ("use", "extra"),
    [
        ("model.to(dtype=args.dtype)", ""),  # unknown dtype
        ("model.half()", ", dtype=torch.bfloat16"),  # the load has another dtype
        ("model.half()", ", dtype=args.dtype"),
        ("model.half()", ", **args.kw"),
        ("evaluate(model.half())", ""),  # inside an expression
        ("half_model = model.half()", ""),  # bound to another name
        ("model.eval().half()", ""),
        ("if args.fp16:\n    model.half()", ""),  # on one branch only
        ("def f():\n    model.half()", ""),
        ("model.half()\nmodel.to(torch.float32)", ""),  # two dtypes for one load
        ("model.cuda()", ""),
        ("model.half(*args.a)", ""),
    ],
)
def test_no_fix(use: str, extra: str) -> None:
    result = run(program(use, extra=extra))
    assert result.findings and all(not f.fixable for f in result.findings)


def test_peft_and_custom_classes_are_not_transformers_models() -> None:
    source = (
        "from peft import AutoPeftModelForCausalLM\n"
        "from transformers import BitsAndBytesConfig\n"
        "m = AutoPeftModelForCausalLM.from_pretrained("
        '"a", quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="auto")\n'
        "m.half()\n"
    )
    assert run(source).findings == []


def test_adds_torch_import_with_alias_awareness() -> None:
    source = (
        "import torch as th\n"
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "model = AutoModelForCausalLM.from_pretrained("
        '"m", quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="auto")\n'
        "model.half()\n"
    )
    fixed = run(source, fix=True).fixed_text
    assert fixed is not None
    assert 'device_map="auto", dtype=th.float16)' in fixed
    assert "import torch\n" not in fixed
