"""BNB005 (offload-without-fp32-flag): cases checked with BNB005 alone."""

from __future__ import annotations

import pytest

from bnblint.pipeline import lint_text
from bnblint.settings import Settings

ONLY = Settings(select=("BNB005",))
HEAD = "import argparse\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
HEAD += "args = argparse.ArgumentParser().parse_args()\n"


def load(device_map: str, config: str = "BitsAndBytesConfig(load_in_8bit=True)") -> str:
    return (
        f"{HEAD}m = AutoModelForCausalLM.from_pretrained("
        f'"m", quantization_config={config}, device_map={device_map})\n'
    )


def run(source: str, fix: bool = False):  # type: ignore[no-untyped-def]
    return lint_text(source, "t.py", ONLY, fix=fix, unsafe_fixes=fix)


@pytest.mark.parametrize(
    ("device_map", "fires", "fixable"),
    [
        ('{"model": 0, "lm_head": "cpu"}', True, True),
        ('{"model": "cuda:1", "lm_head": "cpu"}', True, True),
        ('{"model": "mps", "lm_head": "cpu"}', True, True),  # any other value: transformers' test
        ('{"model": 0, "lm_head": "disk"}', True, True),
        ('{"model": "cpu", "lm_head": "disk"}', True, False),  # no GPU entry: the flag is no fix
        ('{"": "disk"}', True, False),
        ('{"model": args.gpu, "lm_head": "disk"}', True, False),  # "disk" alone decides
        ('{"model": "cpu", "lm_head": "cpu"}', False, False),
        ('{"": "cpu"}', False, False),
        ('{"model": 0, "lm_head": 1}', False, False),
        ('{"model": args.gpu, "lm_head": "cpu"}', False, False),  # args.gpu may be "cpu"
        ('{"model": 0, "lm_head": args.place}', False, False),
        ('{"model": 0, "lm_head": "cpu" if args.offload else 0}', False, False),
        ('{"model": 0, "lm_head": "cpu", **args.extra}', False, False),
        ('dict(model=0, lm_head="cpu")', True, True),
        ('"auto"', False, False),
        ('"cpu"', False, False),
        ("args.device_map", False, False),
    ],
)
def test_device_maps(device_map: str, fires: bool, fixable: bool) -> None:
    findings = run(load(device_map)).findings
    assert [f.code for f in findings] == (["BNB005"] if fires else [])
    if fires:
        assert findings[0].fixable is fixable


@pytest.mark.parametrize(
    ("config", "fires"),
    [
        ("BitsAndBytesConfig(load_in_4bit=True)", True),
        ("BitsAndBytesConfig()", True),  # quantizes to 4-bit
        ('{"load_in_4bit": True}', True),
        ("BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=True)", False),
        ("BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=False)", True),
        ("BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=args.o)", False),
        ("BitsAndBytesConfig(load_in_8bit=True, **args.options)", False),
        ("BitsAndBytesConfig(load_in_8bit=args.eight)", False),
        ("None", False),
    ],
)
def test_configs(config: str, fires: bool) -> None:
    findings = run(load('{"model": 0, "lm_head": "cpu"}', config)).findings
    assert [f.code for f in findings] == (["BNB005"] if fires else [])


def test_reported_on_the_device_map_argument() -> None:
    source = load('{"model": 0, "lm_head": "cpu"}')
    findings = run(source).findings
    line = source.splitlines()[3]
    assert (findings[0].location.row, findings[0].location.column) == (
        4,
        line.index("device_map=") + 1,
    )


def test_legacy_keywords_are_left_to_bnb004() -> None:
    source = (
        f'{HEAD}m = AutoModelForCausalLM.from_pretrained("m", load_in_8bit=True, '
        'device_map={"a": 0, "b": "cpu"})\n'
    )
    assert run(source).findings == []


def test_fix_adds_the_flag_once_for_a_shared_config() -> None:
    source = (
        f"{HEAD}cfg = BitsAndBytesConfig(load_in_8bit=True)\n"
        'dm = {"model": 0, "lm_head": "cpu"}\n'
        'a = AutoModelForCausalLM.from_pretrained("a", quantization_config=cfg, device_map=dm)\n'
        'b = AutoModelForCausalLM.from_pretrained("b", quantization_config=cfg, device_map=dm)\n'
    )
    result = run(source, fix=True)
    assert result.fixed_text is not None
    assert result.fixed_text.count("llm_int8_enable_fp32_cpu_offload=True") == 1
    assert result.findings == []


def test_fix_of_an_explicit_false() -> None:
    source = load(
        '{"model": 0, "lm_head": "cpu"}',
        "BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=False)",
    )
    result = run(source, fix=True)
    assert result.fixed_text == source.replace("offload=False", "offload=True")
