from __future__ import annotations

import ast
from collections.abc import Iterator

from bnblint.analysis.model import ModuleModel, config_mode
from bnblint.analysis.syntax import DictItem
from bnblint.analysis.values import truthy
from bnblint.diagnostics import (
    Diagnostic,
    Level,
)
from bnblint.rules.base import Case, Rule, RuleContext
from bnblint.rules.options import (
    BOTH_FLAGS,
    VALID_OPTIONS,
    check_value,
    owned,
    sites_of,
    stands,
    value_fix,
    versions,
)

# The cases' configs: most are a `BitsAndBytesConfig` call of their own.
_HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"


def _config(options: str) -> str:
    return f"{_HEAD}c = BitsAndBytesConfig({options})\n"


class InvalidConfigValue(Rule):
    code = "BNB007"
    name = "invalid-config-value"
    summary = "invalid literal value in a bitsandbytes config"
    level = Level.ERROR
    words = (b"BitsAndBytesConfig", b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds literal values that transformers rejects in a `BitsAndBytesConfig(...)` or in a dict
passed as `quantization_config`: both `load_in_4bit` and `load_in_8bit` True; a flag that is not
a bool (`load_in_4bit="True"`, `bnb_4bit_use_double_quant=1`, `None`); `llm_int8_threshold` that is
not a float (`6`); `llm_int8_skip_modules` that is not a list (`"lm_head"`, a tuple); a
`bnb_4bit_compute_dtype` string that is not a torch dtype name (`"bf16"`, `"fp16"`,
`"torch.bfloat16"`, `"auto"`); a `bnb_4bit_quant_storage` string it does not accept; and, in a
4-bit config, a `bnb_4bit_quant_type` other than exactly `"nf4"` or `"fp4"` (`"NF4"`, `"nf8"`).

## Why is this bad?
Each of these raises. Most fail when the `BitsAndBytesConfig` is built (for a dict config: at
the load); a wrong `bnb_4bit_quant_type` is accepted by the config and only fails while the
weights are quantized, after the checkpoint was downloaded, and transformers 5 reports it as
`RuntimeError: We encountered some issues during automatic conversion of the weights`, with the
real `ValueError` buried in the load report.

## Example
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(
    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bf16"
)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config, device_map="auto"
)
```

## Use instead
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(
    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config, device_map="auto"
)
```

## Fix safety
Every value reported here raises, so the code never worked as written; a rewrite to the value
it evidently means cannot break a working program and is safe: `"NF4"` -> `"nf4"`, `"FP4"` ->
`"fp4"`; `"bf16"`, `"torch.bfloat16"` -> `torch.bfloat16` (`"fp16"` -> `torch.float16`, `"fp32"`
-> `torch.float32`; adding `import torch` when needed, or a dtype string such as `"bfloat16"` in a
dict config); `6` -> `6.0`; `"lm_head"` -> `["lm_head"]`, a tuple -> a list; `"True"`/`"False"`,
`1`/`0` -> `True`/`False`; `None` -> the option's default. `"auto"` as compute dtype means "the
model's dtype": when every load the config reaches passes a statically known `dtype`, the fix
writes it, unsafe (it guesses the intent). No fix for both flags True (which one was meant?),
for other unknown strings, or when the option comes from a dict splatted into the config.

## Evidence
CPU, torch 2.13.0, bitsandbytes 0.50.2, transformers 5.24.0 and 4.57.1 alike
(`evidence/repro_bnb007.py`, output in `evidence/repro_bnb007.txt`; also
`evidence/cpu_facts.json`):
- both flags: `ValueError: load_in_4bit and load_in_8bit are both True, but only one can be used
  at the same time` (construction; at the load for a dict).
- `load_in_4bit="True"`: `TypeError: load_in_4bit must be a boolean` (same for every flag and for
  `None`); `llm_int8_threshold=6`: `TypeError: llm_int8_threshold must be a float`;
  `llm_int8_skip_modules="lm_head"` or a tuple: `TypeError: llm_int8_skip_modules must be a list
  of strings`.
- `bnb_4bit_compute_dtype="bf16"`: `AttributeError: module 'torch' has no attribute 'bf16'` (also
  `"fp16"`, `"fp32"`, `"auto"`, `"torch.bfloat16"`); `"bfloat16"`, `"half"` and `torch.bfloat16`
  load.
- `bnb_4bit_quant_type="NF4"` (or `"FP4"`, `"nf8"`): the config builds, the load fails in
  bitsandbytes with `ValueError: quant_type must be 'nf4' or 'fp4', got 'NF4'`; transformers 5.24
  raises it as `RuntimeError: We encountered some issues during automatic conversion of the
  weights...`, 4.57.1 as the `ValueError`. With `load_in_8bit=True` it is never read.
- `bnb_4bit_quant_storage="bf16"`: `ValueError` ("`bnb_4bit_quant_storage` must be a valid
  string (one of 'float16', 'float32', 'int8', 'uint8', 'float64', 'bfloat16')").
"""

    fixable = "sometimes"
    valid = (
        _config('load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bfloat16"'),
        _config(
            "load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16, llm_int8_skip_modules=None"
        ),
        _config('load_in_4bit=True, bnb_4bit_compute_dtype="half", bnb_4bit_quant_storage="uint8"'),
        _config("load_in_8bit=True, llm_int8_threshold=6.0, llm_int8_has_fp16_weight=False"),
        Case(_config('load_in_8bit=True, bnb_4bit_quant_type="NF4"'), note="never read in 8-bit"),
        Case(_config("load_in_4bit=flag, load_in_8bit=True"), note="unknown"),
        Case(_config('load_in_4bit=flag, bnb_4bit_quant_type="NF4"'), note="mode unknown"),
        _config("load_in_4bit=True, bnb_4bit_compute_dtype=args.dtype, llm_int8_threshold=args.t"),
        Case(
            _HEAD + 'q = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "bf16"}\n'
            'q["bnb_4bit_compute_dtype"] = "bfloat16"\n'
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n",
            note="a dict config is read at the load: a later assignment counts",
        ),
    )
    invalid = (
        Case(
            _config("load_in_4bit=True, load_in_8bit=True"),
            at="load_in_8bit=True",
            message="ValueError: load_in_4bit and load_in_8bit",
            note="which one was meant?",
        ),
        Case(
            _config('load_in_4bit="True"'),
            at='load_in_4bit="True"',
            message="TypeError: load_in_4bit must be a boolean",
            fixed=_config("load_in_4bit=True"),
        ),
        Case(
            _config("load_in_8bit=True, llm_int8_threshold=6"),
            at="llm_int8_threshold=6",
            message="TypeError: llm_int8_threshold must be",
            fixed=_config("load_in_8bit=True, llm_int8_threshold=6.0"),
        ),
        Case(
            _config('load_in_4bit=True, llm_int8_skip_modules="lm_head"'),
            at='llm_int8_skip_modules="lm_head"',
            message="must be a list of strings",
            fixed=_config('load_in_4bit=True, llm_int8_skip_modules=["lm_head"]'),
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_compute_dtype="bf16"'),
            at='bnb_4bit_compute_dtype="bf16"',
            message="no attribute 'bf16'",
            fixed=_config("load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16"),
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_compute_dtype="auto"'),
            at='bnb_4bit_compute_dtype="auto"',
            message="no attribute 'auto'",
            note="reaches no load: no dtype to take",
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_quant_type="NF4"'),
            at='bnb_4bit_quant_type="NF4"',
            message="got 'NF4'",
            fixed=_config('load_in_4bit=True, bnb_4bit_quant_type="nf4"'),
        ),
        Case(
            _config("load_in_4bit=True, bnb_4bit_quant_type=None"),
            at="bnb_4bit_quant_type=None",
            message="must be a string",
            fixed=_config('load_in_4bit=True, bnb_4bit_quant_type="fp4"'),
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_quant_storage="bf16"'),
            at='bnb_4bit_quant_storage="bf16"',
            message="raises `ValueError`",
            fixed=_config('load_in_4bit=True, bnb_4bit_quant_storage="bfloat16"'),
        ),
        Case(
            _config("load_in_4bit=True, bnb_4bit_quant_type='FP4'"),
            at="bnb_4bit_quant_type='FP4'",
            fixed=_config("load_in_4bit=True, bnb_4bit_quant_type='fp4'"),
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_compute_dtype="torch.float16"'),
            at='bnb_4bit_compute_dtype="torch.float16"',
            fixed=_config("load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16"),
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_compute_dtype="FP32"'),
            at='bnb_4bit_compute_dtype="FP32"',
            fixed=_config("load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32"),
        ),
        Case(
            _config("load_in_4bit=True, llm_int8_threshold=6"),
            at="llm_int8_threshold=6",
            fixed=_config("load_in_4bit=True, llm_int8_threshold=6.0"),
        ),
        Case(
            _config('load_in_4bit=True, llm_int8_threshold="5.5"'),
            at='llm_int8_threshold="5.5"',
            fixed=_config("load_in_4bit=True, llm_int8_threshold=5.5"),
        ),
        Case(
            _config("load_in_4bit=True, llm_int8_threshold=None"),
            at="llm_int8_threshold=None",
            fixed=_config("load_in_4bit=True, llm_int8_threshold=6.0"),
        ),
        Case(
            _config("load_in_4bit=True, llm_int8_skip_modules=('a', 'b')"),
            at="llm_int8_skip_modules=('a', 'b')",
            fixed=_config("load_in_4bit=True, llm_int8_skip_modules=['a', 'b']"),
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_use_double_quant="False"'),
            at='bnb_4bit_use_double_quant="False"',
            fixed=_config("load_in_4bit=True, bnb_4bit_use_double_quant=False"),
        ),
        Case(
            _config("load_in_4bit=True, bnb_4bit_use_double_quant=1"),
            at="bnb_4bit_use_double_quant=1",
            fixed=_config("load_in_4bit=True, bnb_4bit_use_double_quant=True"),
        ),
        Case(
            _config("load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=None"),
            at="llm_int8_enable_fp32_cpu_offload=None",
            fixed=_config("load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=False"),
        ),
        Case(_config('load_in_4bit="yes"'), at='load_in_4bit="yes"'),
        Case(
            _config('load_in_4bit=True, bnb_4bit_quant_type="nf8"'), at='bnb_4bit_quant_type="nf8"'
        ),
        Case(
            _config('load_in_4bit=True, bnb_4bit_compute_dtype="bfloat"'),
            at='bnb_4bit_compute_dtype="bfloat"',
        ),
        Case(
            _config('load_in_4bit=True, llm_int8_skip_modules="lm_head,embed"'),
            at='llm_int8_skip_modules="lm_head,embed"',
        ),
        Case(
            _HEAD + 'c = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="auto")\n'
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=c,"
            " dtype=torch.bfloat16)\n",
            at='bnb_4bit_compute_dtype="auto"',
            unsafe=True,
            fixed=_HEAD
            + "c = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)\n"
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=c,"
            " dtype=torch.bfloat16)\n",
            note='"auto" takes the load\'s dtype: it guesses the intent',
        ),
        Case(
            _HEAD + 'q = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "bf16"}\n'
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n",
            at='"bnb_4bit_compute_dtype": "bf16"',
            message="the load raises",
            fixed=_HEAD + 'q = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat16"}\n'
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n",
            note="a dict config is read at the load",
        ),
        Case(
            _HEAD + 'extra = {"bnb_4bit_quant_type": "NF4"}\n'
            "c = BitsAndBytesConfig(load_in_4bit=True, **extra)\n",
            at=(3, 10),
            note="from a splatted dict: reported where it is written, no fix",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        seen: set[int] = set()
        for config in model.configs:
            mode = config_mode(config)
            site = next(iter(sites_of(model, config)), None)
            entries = config.options.entries
            both = [entries[k] for k in entries if k in ("load_in_4bit", "load_in_8bit")]
            if len(both) == 2 and all(truthy(e.value) for e in both):
                last = both[-1]
                if id(last.node) not in seen and all(
                    stands(model, config, k, entries[k]) for k in ("load_in_4bit", "load_in_8bit")
                ):
                    seen.add(id(last.node))
                    where = "the load" if config.is_dict else "`BitsAndBytesConfig`"
                    message = (
                        f"`load_in_4bit` and `load_in_8bit` are both True: {where} raises "
                        f"`ValueError: {BOTH_FLAGS}`"
                    )
                    yield Diagnostic(self.code, message, last.node, site)
            for key, entry in entries.items():
                if key not in VALID_OPTIONS or id(entry.node) in seen:
                    continue
                if not stands(model, config, key, entry):
                    continue
                if key == "bnb_4bit_quant_type" and not all(
                    v.options.entries.get(key) is entry and config_mode(v) == mode
                    for v in versions(model, config)
                ):
                    continue  # read at the load: a later assignment may replace it
                if not isinstance(entry.node, (ast.keyword, DictItem)):
                    continue
                problem = check_value(key, entry.value, entry.node.value, config, model, mode)
                if problem is None:
                    continue
                seen.add(id(entry.node))
                fix = value_fix(problem, entry, model, config) if owned(config, entry) else None
                yield Diagnostic(self.code, problem.message, entry.node, site, fix)
