from __future__ import annotations

import ast
from collections.abc import Iterator

from bnblint.analysis.model import LoadSite, ModuleModel, config_mode
from bnblint.analysis.syntax import DictItem
from bnblint.analysis.values import BnbConfig
from bnblint.diagnostics import (
    AddKeyword,
    Applicability,
    Diagnostic,
    Fix,
    Level,
    Operation,
    RemoveDictEntry,
    RemoveKeyword,
)
from bnblint.rules.base import Case, Rule, RuleContext
from bnblint.rules.options import (
    SAVED_CONFIG_KEYS,
    check_value,
    dead_options,
    flag,
    owned,
    sites_of,
    stands,
    versions,
)


def _pure(node: ast.expr) -> bool:
    """An expression that can be deleted without losing a side effect: names, attributes,
    literals, and lists, tuples or conditionals of them (no call, no subscript, no operator)."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.Attribute):
        return _pure(node.value)
    if isinstance(node, ast.UnaryOp):
        return _pure(node.operand)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(not isinstance(e, ast.Starred) and _pure(e) for e in node.elts)
    if isinstance(node, ast.IfExp):
        return _pure(node.test) and _pure(node.body) and _pure(node.orelse)
    return False


# The cases' configs: a `BitsAndBytesConfig` call, and (where the rule needs one) its load.
_HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
_LOAD = "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=c, device_map='auto')\n"


def _config(options: str, load: str = "") -> str:
    return f"{_HEAD}c = BitsAndBytesConfig({options})\n{load}"


class IneffectiveConfigOption(Rule):
    code = "BNB009"
    name = "ineffective-config-option"
    summary = "bitsandbytes config option that does nothing for the chosen mode"
    level = Level.WARNING
    words = (b"BitsAndBytesConfig", b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds options of a bitsandbytes config (a `BitsAndBytesConfig` or a dict config) that the
chosen mode ignores: `bnb_4bit_compute_dtype`, `bnb_4bit_quant_type` and
`bnb_4bit_use_double_quant` in an 8-bit config; `llm_int8_threshold` and
`llm_int8_has_fp16_weight` in a 4-bit config. Also finds a `BitsAndBytesConfig` that reaches a
load without `load_in_4bit=True` or `load_in_8bit=True`, which quantizes to 4-bit anyway. Only
when the mode is statically known. `llm_int8_skip_modules` and `llm_int8_enable_fp32_cpu_offload`
apply to 4-bit as well (despite their names), and `bnb_4bit_quant_storage` is read for 8-bit
models by the Trainer's FSDP setup: they are not reported; nor is a config copied from a saved
config.json (it holds `quant_method` and lists every option).

## Why is this bad?
A dead option reads as if it did something: a reader (or the author) believes that an 8-bit
model computes in the `bnb_4bit_compute_dtype` given, or that a 4-bit model uses the
`llm_int8_threshold` given, and no warning says otherwise. `BitsAndBytesConfig()` with neither
flag quantizes to 4-bit, but the config still says `load_in_4bit=False`: that is what
`save_pretrained` writes to config.json, and the saved model does not load again.

## Example
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_8bit=True, bnb_4bit_compute_dtype=torch.float16)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config, device_map="auto"
)
```

## Use instead
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_8bit=True)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config, device_map="auto"
)
```

## Fix safety
Safe: removing an option that the mode never reads loads the same layers and computes the same
logits. Writing `load_in_4bit=True` in a config without either flag loads the same 4-bit model,
and makes the saved config.json say so. No fix when the option comes from a dict splatted into
the config, or when its value is more than names and literals (removing a call would drop the
call); none for an explicit `load_in_4bit=False`, or for a flagless config holding 8-bit options
(`llm_int8_threshold`), where 8-bit may have been meant.

## Evidence
CPU, torch 2.13.0, bitsandbytes 0.50.2, transformers 5.24.0 and 4.57.1 alike
(`evidence/repro_bnb009.py`, output in `evidence/repro_bnb009.txt`; also
`evidence/cpu_facts.json`, cases BNB009-*):
- `load_in_8bit=True` with `bnb_4bit_compute_dtype=torch.float16, bnb_4bit_quant_type="nf4",
  bnb_4bit_use_double_quant=True`: the same Linear8bitLt layers and identical logits as
  `load_in_8bit=True` alone.
- `load_in_4bit=True` with `llm_int8_threshold=1.0`, or with `llm_int8_has_fp16_weight=True`:
  identical logits to `load_in_4bit=True` alone. In 8-bit, `llm_int8_threshold=1.0` changes them;
  in 4-bit, `llm_int8_skip_modules=["q_proj", ...]` keeps q_proj unquantized, and a 4-bit
  `device_map` with CPU modules asks for `llm_int8_enable_fp32_cpu_offload`
  (`cpu_facts.json` BNB005-mixed-map).
- `BitsAndBytesConfig()`, `BitsAndBytesConfig(load_in_4bit=False)` and
  `BitsAndBytesConfig(load_in_8bit=False)` load Linear4bit layers, identical logits to
  `load_in_4bit=True`; saved with `save_pretrained`, config.json says `"load_in_4bit": false` and
  `from_pretrained` of the saved model fails (`RuntimeError`, weight size mismatch); with
  `load_in_4bit=True` it reloads. In both versions `AutoHfQuantizer.from_config` picks the 8-bit
  quantizer `if quantization_config.load_in_8bit`, else the 4-bit one.
- `bnb_4bit_quant_storage` is read for every bitsandbytes model when FSDP is set up (transformers
  4.57.1 `trainer.py`, 5.24.0 `distributed/fsdp.py`), so it is not dead in 8-bit.
"""

    fixable = "sometimes"
    valid = (
        _config(
            "load_in_4bit=True, llm_int8_skip_modules=['a'], llm_int8_enable_fp32_cpu_offload=True",
            _LOAD,
        ),
        _config(
            "load_in_8bit=True, llm_int8_skip_modules=['lm_head'], llm_int8_threshold=5.0", _LOAD
        ),
        Case(
            _config("load_in_8bit=True, bnb_4bit_quant_storage=torch.bfloat16", _LOAD),
            note="read by FSDP setup",
        ),
        Case(_config("load_in_4bit=flag, llm_int8_threshold=5.0", _LOAD), note="mode unknown"),
        Case(
            _config("True, bnb_4bit_compute_dtype=torch.float16", _LOAD),
            note="positional load_in_8bit",
        ),
        Case(
            _config("load_in_8bit=True, bnb_4bit_compute_dtype='bf16'", _LOAD),
            note="invalid: BNB007's",
        ),
        Case(_HEAD + "c = BitsAndBytesConfig()\n", note="never loaded here"),
        Case(
            _HEAD + "c = BitsAndBytesConfig()\nc.load_in_8bit = True\n" + _LOAD,
            note="the flag is set later",
        ),
        Case(
            _HEAD + "def f(**kw):\n    c = BitsAndBytesConfig(**kw)\n    " + _LOAD,
            note="the flag may come in the splat",
        ),
        Case(
            _HEAD + "c = {'load_in_4bit': True, 'quant_method': 'bitsandbytes',"
            " 'llm_int8_threshold': 6.0}\n" + _LOAD,
            note="a saved config dict",
        ),
    )
    invalid = (
        Case(
            _config("load_in_8bit=True, bnb_4bit_compute_dtype=torch.float16"),
            at="bnb_4bit_compute_dtype=torch.float16",
            message="`bnb_4bit_compute_dtype` does nothing",
            fixed=_config("load_in_8bit=True"),
        ),
        Case(
            _config("load_in_8bit=True, bnb_4bit_quant_type='nf4'"),
            at="bnb_4bit_quant_type='nf4'",
            message="`bnb_4bit_quant_type` does nothing",
            fixed=_config("load_in_8bit=True"),
        ),
        Case(
            _config("load_in_8bit=True, bnb_4bit_use_double_quant=True"),
            at="bnb_4bit_use_double_quant=True",
            message="`bnb_4bit_use_double_quant` does nothing",
            fixed=_config("load_in_8bit=True"),
        ),
        Case(
            _config("load_in_4bit=True, llm_int8_threshold=6.0"),
            at="llm_int8_threshold=6.0",
            message="`llm_int8_threshold` does nothing",
            fixed=_config("load_in_4bit=True"),
        ),
        Case(
            _config("load_in_4bit=True, llm_int8_has_fp16_weight=False"),
            at="llm_int8_has_fp16_weight=False",
            message="`llm_int8_has_fp16_weight` does nothing",
            fixed=_config("load_in_4bit=True"),
        ),
        Case(
            _config("bnb_4bit_compute_dtype=torch.float16", _LOAD),
            at=(3, 5),
            message="quantizes to 4-bit anyway",
            fixed=_config("bnb_4bit_compute_dtype=torch.float16, load_in_4bit=True", _LOAD),
            note="a config without either flag gets load_in_4bit=True",
        ),
        Case(_config("load_in_4bit=False", _LOAD), at=(3, 5), message="4-bit"),
        Case(
            _config("load_in_8bit=False, bnb_4bit_compute_dtype=torch.float16", _LOAD),
            at=(3, 5),
            message="4-bit",
        ),
        Case(
            _config("llm_int8_threshold=5.0", _LOAD),
            at=(3, 5),
            message="4-bit",
            note="8-bit options without a flag: 8-bit may have been meant",
        ),
        Case(
            _config("load_in_8bit=True, bnb_4bit_compute_dtype=pick()"),
            at="bnb_4bit_compute_dtype",
            note="removing a call would drop the call",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        seen: set[int] = set()
        for config in model.configs:
            mode = config_mode(config)
            if mode not in ("4bit", "8bit"):
                continue
            reaching = versions(model, config)
            if any(config_mode(v) != mode for v in reaching):
                continue  # a later assignment changes the mode
            site = next(iter(sites_of(model, config)), None)
            entries = config.options.entries
            if any(k in entries for k in SAVED_CONFIG_KEYS):
                continue  # copied from a saved config.json, which lists every option
            dead = dead_options(mode)
            if mode == "4bit" and not flag(config, "load_in_4bit"):
                # Neither flag: 4-bit by default. Only for configs that reach a load, where every
                # assignment on the way is known.
                if config.is_dict or not reaching:
                    continue
                if any(flag(v, "load_in_4bit") or flag(v, "load_in_8bit") for v in reaching):
                    continue
                eight = [k for k in dead if k in entries]
                yield self.no_flag(config, eight, site)
                if eight:
                    continue  # 8-bit may have been meant: the options are not simply dead
            for key in dead:
                entry = entries.get(key)
                if entry is None or id(entry.node) in seen:
                    continue
                if not stands(model, config, key, entry):
                    continue
                if not isinstance(entry.node, (ast.keyword, DictItem)):
                    continue
                value_node = entry.node.value
                if check_value(key, entry.value, value_node, config, model, mode) is not None:
                    continue  # an invalid value: BNB007 reports it
                seen.add(id(entry.node))
                if mode == "8bit":
                    message = f"`{key}` does nothing in an 8-bit config: only 4-bit layers read it"
                else:
                    message = (
                        f"`{key}` does nothing in a 4-bit config: only LLM.int8() (8-bit) reads it"
                    )
                fix = None
                if owned(config, entry) and _pure(value_node):
                    op: Operation | None = None
                    if isinstance(config.node, ast.Call):
                        op = RemoveKeyword(config.node, key)
                    elif isinstance(config.node, ast.Dict):
                        op = RemoveDictEntry(config.node, key)
                    if op is not None:
                        fix = Fix(f"Remove `{key}`", Applicability.SAFE, (op,))
                yield Diagnostic(self.code, message, entry.node, site, fix)

    def no_flag(self, config: BnbConfig, eight: list[str], site: LoadSite | None) -> Diagnostic:
        if eight:
            names = ", ".join(f"`{k}`" for k in eight)
            message = (
                "`BitsAndBytesConfig` without `load_in_4bit=True` or `load_in_8bit=True` "
                f"quantizes to 4-bit, where {names} does nothing; set the flag that was meant"
            )
            return Diagnostic(self.code, message, config.node, site)
        written = [k for k in ("load_in_4bit", "load_in_8bit") if k in config.options.entries]
        tail = "and a model saved from it does not reload"
        if written:
            flags = " and ".join(f"`{k}=False`" for k in written)
            message = f"{flags} still quantizes to 4-bit (no flag is True), {tail}"
            return Diagnostic(self.code, message, config.node, site)
        message = (
            "`BitsAndBytesConfig` with neither `load_in_4bit` nor `load_in_8bit` quantizes to "
            f"4-bit anyway, {tail}"
        )
        fix = None
        if isinstance(config.node, ast.Call):
            fix = Fix(
                "Add `load_in_4bit=True`",
                Applicability.SAFE,
                (AddKeyword(config.node, "load_in_4bit", "True"),),
            )
        return Diagnostic(self.code, message, config.node, site, fix)
