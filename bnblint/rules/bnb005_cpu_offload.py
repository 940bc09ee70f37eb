from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import NamedTuple

from bnblint.analysis.model import MODE_LABELS, ModuleModel
from bnblint.analysis.values import BnbConfig, Literal, Mapping
from bnblint.diagnostics import (
    AddDictEntry,
    AddKeyword,
    Applicability,
    Diagnostic,
    Fix,
    Level,
    Operation,
    ReplaceNode,
)
from bnblint.rules.base import Case, Rule, RuleContext

FLAG = "llm_int8_enable_fp32_cpu_offload"
OFFLOAD = ("cpu", "disk")


# The cases' loads: a config and a device_map written in the load; `args` stands for values
# that are not known statically.
_HEAD = (
    "import argparse\n"
    "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
    "args = argparse.ArgumentParser().parse_args()\n"
)
_8BIT = "BitsAndBytesConfig(load_in_8bit=True)"
_8BIT_FIXED = "BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=True)"
_CPU = '{"model": 0, "lm_head": "cpu"}'


# Two loads of one config and one device_map.
_SHARED = (
    'dm = {"model": 0, "lm_head": "cpu"}\n'
    'a = AutoModelForCausalLM.from_pretrained("a", quantization_config=cfg, device_map=dm)\n'
    'b = AutoModelForCausalLM.from_pretrained("b", quantization_config=cfg, device_map=dm)\n'
)


def _load(device_map: str, config: str = _8BIT) -> str:
    return (
        f'{_HEAD}m = AutoModelForCausalLM.from_pretrained("m", quantization_config={config},'
        f" device_map={device_map})\n"
    )


class OffloadWithoutFp32Flag(Rule):
    code = "BNB005"
    name = "offload-without-fp32-flag"
    summary = '`device_map` mixing "cpu"/"disk" with other devices, without the fp32 offload flag'
    level = Level.ERROR
    words = (b"BitsAndBytesConfig", b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds 4-bit and 8-bit bitsandbytes loads whose `device_map` is a literal dict that sends some
modules to `"cpu"` and others elsewhere (a GPU index, `"cuda:0"`, ...), or any module to
`"disk"`, while the quantization config does not set `llm_int8_enable_fp32_cpu_offload=True`.

## Why is this bad?
transformers refuses such a map before loading anything: `from_pretrained` raises
`ValueError: Some modules are dispatched on the CPU or the disk. Make sure you have enough GPU RAM
to fit the quantized model. ...`. The quantizer's test is: the map's values contain `"cpu"` or
`"disk"` and are not all `"cpu"`. So a map with only `"cpu"` values is fine (the whole model is
quantized on the CPU), and so is any map once the flag is set: the offloaded modules are then left
unquantized. The rule reports only when an entry is certainly `"cpu"` and another certainly
something else, or an entry is certainly `"disk"`; maps with values it cannot know, or completed
with `**` of an unknown dict, are left alone.

## Example
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(load_in_8bit=True),
    device_map={"model": 0, "lm_head": "cpu"},
)
```

## Use instead
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(
        load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=True
    ),
    device_map={"model": 0, "lm_head": "cpu"},
)
```

## Fix safety
Unsafe: adds `llm_int8_enable_fp32_cpu_offload=True` where the config is written (a keyword of
the `BitsAndBytesConfig` call, an entry of a dict config), or turns an explicit `False` into
`True`. The load then works, but every module mapped to `"cpu"` or `"disk"` stays unquantized:
a full-precision `nn.Linear` in the load's dtype (bfloat16 in the measurement below, despite the
flag's name), held in CPU memory and moved to the GPU at each forward, which takes more memory
and is slower than the quantized layers. A config shared with other loads gets the flag for
those loads too. No fix when no module goes to a device other than `"cpu"`/`"disk"` (say
`{"": "disk"}`): with the flag such a load works but quantizes nothing, so the map is what needs
changing. No fix for legacy `load_in_8bit=True` keywords (see BNB004).

## Evidence
- transformers 5.17, bitsandbytes 0.50.2, H100: a `device_map` dict mapping `lm_head` to `"cpu"`
  without the flag raised `ValueError: Some modules are dispatched on the CPU or the disk. ...`
  (`evidence/gpu/README.md`).
- transformers 5.24.0, bitsandbytes 0.50.2, torch 2.13.0 on CPU (`evidence/cpu_facts.json`,
  case `BNB005-mixed-map`; `evidence/repro_bnb005.txt`): the same ValueError for GPU index +
  `"cpu"`, `"cuda:0"` + `"cpu"`, GPU + `"disk"` (8-bit), `"cpu"` + `"disk"`, `{"": "disk"}`, a
  dict config, and an explicit `llm_int8_enable_fp32_cpu_offload=False`; raised by the
  quantizer's `validate_environment` before any weight is read; through
  `pipeline(model_kwargs=...)`, a ValueError "Could not load model ..." quoting it. An all-`"cpu"`
  map loaded and ran.
- transformers 5.17, bitsandbytes 0.50.2, H100 (`evidence/repro_bnb005_gpu.txt`): with the flag,
  GPU 0 + `"cpu"` maps loaded in 4-bit and 8-bit (and with a dict config) and ran a forward pass;
  the offloaded layer was a plain `Linear` in bfloat16, the others `Linear4bit`/`Linear8bitLt`.
  On CPU, `"cpu"` + `"disk"` and `{"": "disk"}` maps loaded with the flag with no quantized layer.
"""

    fixable = "sometimes"
    valid = (
        Case(_load('{"model": "cpu", "lm_head": "cpu"}')),
        Case(_load('{"": "cpu"}')),
        Case(_load('{"model": 0, "lm_head": 1}')),
        Case(_load('{"model": args.gpu, "lm_head": "cpu"}'), note='args.gpu may be "cpu"'),
        Case(_load('{"model": 0, "lm_head": args.place}')),
        Case(_load('{"model": 0, "lm_head": "cpu" if args.offload else 0}')),
        Case(_load('{"model": 0, "lm_head": "cpu", **args.extra}')),
        Case(_load('"auto"')),
        Case(_load('"cpu"')),
        Case(_load("args.device_map")),
        Case(_load(_CPU, _8BIT_FIXED)),
        Case(
            _load(
                _CPU,
                "BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=args.o)",
            )
        ),
        Case(_load(_CPU, "BitsAndBytesConfig(load_in_8bit=True, **args.options)")),
        Case(_load(_CPU, "BitsAndBytesConfig(load_in_8bit=args.eight)")),
        Case(_load(_CPU, "None")),
        Case(
            _HEAD + 'm = AutoModelForCausalLM.from_pretrained("m", load_in_8bit=True,'
            ' device_map={"a": 0, "b": "cpu"})\n',
            note="legacy keywords are left to BNB004",
        ),
    )
    invalid = (
        Case(
            _load(_CPU),
            at="device_map=",
            message='`device_map` sends modules to "cpu" and others to 0',
            unsafe=True,
            fixed=_load(_CPU, _8BIT_FIXED),
        ),
        Case(
            _load('{"model": "cuda:1", "lm_head": "cpu"}'),
            at="device_map=",
            unsafe=True,
            fixed=_load('{"model": "cuda:1", "lm_head": "cpu"}', _8BIT_FIXED),
        ),
        Case(
            _load('{"model": "mps", "lm_head": "cpu"}'),
            at="device_map=",
            unsafe=True,
            fixed=_load('{"model": "mps", "lm_head": "cpu"}', _8BIT_FIXED),
            note="any other value: transformers' test",
        ),
        Case(
            _load('{"model": 0, "lm_head": "disk"}'),
            at="device_map=",
            unsafe=True,
            fixed=_load('{"model": 0, "lm_head": "disk"}', _8BIT_FIXED),
        ),
        Case(
            _load('{"model": "cpu", "lm_head": "disk"}'),
            at="device_map=",
            note="no GPU entry: the flag is no fix",
        ),
        Case(
            _load('{"": "disk"}'),
            at="device_map=",
        ),
        Case(
            _load('{"model": args.gpu, "lm_head": "disk"}'),
            at="device_map=",
            note='"disk" alone decides',
        ),
        Case(
            _load('dict(model=0, lm_head="cpu")'),
            at="device_map=",
            unsafe=True,
            fixed=_load('dict(model=0, lm_head="cpu")', _8BIT_FIXED),
        ),
        Case(
            _load(_CPU, "BitsAndBytesConfig(load_in_4bit=True)"),
            at="device_map=",
            unsafe=True,
            fixed=_load(
                _CPU, "BitsAndBytesConfig(load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=True)"
            ),
        ),
        Case(
            _load(_CPU, "BitsAndBytesConfig()"),
            at="device_map=",
            unsafe=True,
            fixed=_load(_CPU, "BitsAndBytesConfig(llm_int8_enable_fp32_cpu_offload=True)"),
            note="quantizes to 4-bit",
        ),
        Case(
            _load(_CPU, '{"load_in_4bit": True}'),
            at="device_map=",
            unsafe=True,
            fixed=_load(_CPU, '{"load_in_4bit": True, "llm_int8_enable_fp32_cpu_offload": True}'),
        ),
        Case(
            _load(
                _CPU,
                "BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=False)",
            ),
            at="device_map=",
            unsafe=True,
            fixed=_load(_CPU, _8BIT_FIXED),
            note="an explicit False becomes True",
        ),
        Case(
            _HEAD + "cfg = BitsAndBytesConfig(load_in_8bit=True)\n" + _SHARED,
            at=(6, 72),
            more=((7, 72),),
            unsafe=True,
            fixed=_HEAD + f"cfg = {_8BIT_FIXED}\n" + _SHARED,
            note="a shared config gets the flag once",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        for site in model.quantized_loads():
            q = site.quantization
            assert q is not None
            if q.config is None or q.mode not in MODE_LABELS:
                continue
            field = site.device_map
            if not field.known or field.node is None or not isinstance(field.value, Mapping):
                continue
            mix = _offload_mix(field.value)
            if mix is None:
                continue
            entry = q.config.options.entries.get(FLAG)
            if entry is None:
                if not q.config.complete:
                    continue  # the flag may come from an unknown ``**splat``
                explicit_false = False
            elif isinstance(entry.value, Literal) and entry.value.value is False:
                explicit_false = True
            else:
                continue  # True, or not statically known
            when = " (when quantization is enabled)" if q.conditional else ""
            setting = f"`{FLAG}=True` (it is False)" if explicit_false else f"`{FLAG}=True`"
            head = (
                f"`device_map` {mix.text}: this {MODE_LABELS[q.mode]} bitsandbytes load{when} "
                "raises "
                'ValueError ("Some modules are dispatched on the CPU or the disk")'
            )
            if mix.to_device:
                message = f"{head} unless its config sets {setting}"
            else:
                message = f"{head}; `{FLAG}=True` would load it with nothing quantized"
            fix = self.fix(q.config) if mix.to_device else None
            yield Diagnostic(self.code, message, field.node, site, fix)

    def fix(self, config: BnbConfig) -> Fix | None:
        entry = config.options.entries.get(FLAG)
        op: Operation
        if entry is not None:
            value = entry.value
            if not isinstance(value, Literal) or not isinstance(value.node, ast.expr):
                return None
            op = ReplaceNode(value.node, "True")
            return Fix(f"Set `{FLAG}=True`", Applicability.UNSAFE, (op,))
        if isinstance(config.node, ast.Dict):
            op = AddDictEntry(config.node, FLAG, "True")
        elif isinstance(config.node, ast.Call):
            op = AddKeyword(config.node, FLAG, "True")
        else:
            return None
        return Fix(f"Add `{FLAG}=True` to the config", Applicability.UNSAFE, (op,))


class Mix(NamedTuple):
    text: str  # 'sends modules to "cpu" and others to 0'
    to_device: bool  # some module goes to a device other than "cpu"/"disk"


def _offload_mix(device_map: Mapping) -> Mix | None:
    """How the map mixes offloading with other places, when transformers certainly refuses it.

    transformers raises when ``set(device_map.values())`` contains "cpu" or "disk" and is not
    ``{"cpu"}``. Only literal values count; the map must be complete (no unknown ``**splat``
    that could replace an entry).
    """
    if not device_map.complete:
        return None
    places: list[object] = []
    for entry in device_map.entries.values():
        value = entry.value
        if isinstance(value, Literal) and isinstance(value.value, (str, int)):
            if not isinstance(value.value, bool) and value.value not in places:
                places.append(value.value)
    offloaded = [p for p in OFFLOAD if p in places]
    others = [p for p in places if p not in OFFLOAD]
    if not offloaded or (offloaded == ["cpu"] and not others):
        return None
    text = "sends modules to " + " and ".join(f'"{p}"' for p in offloaded)
    if others:
        shown = [f'"{v}"' if isinstance(v, str) else str(v) for v in others[:3]]
        text += " and others to " + ", ".join(shown) + (", ..." if len(others) > 3 else "")
    return Mix(text, bool(others))
