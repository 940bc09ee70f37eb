from __future__ import annotations

import ast
from collections.abc import Iterator

from bnblint.analysis.model import ModuleModel, config_mode
from bnblint.analysis.syntax import DictItem, string_value
from bnblint.analysis.values import BnbConfig, Entry
from bnblint.diagnostics import Applicability, Diagnostic, Fix, Level, ReplaceNode
from bnblint.rules.base import Case, Rule, RuleContext
from bnblint.rules.options import (
    RENAME_MIN_GAP,
    RENAME_MIN_RATIO,
    SAVED_CONFIG_KEYS,
    VALID_OPTIONS,
    check_value,
    dead_options,
    owned,
    quoted,
    ranked,
    renamed,
    sites_of,
    stands,
    suggestions,
    written,
)

# The cases' configs: most are a `BitsAndBytesConfig` call of their own.
_HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"


def _config(options: str) -> str:
    return f"{_HEAD}c = BitsAndBytesConfig({options})\n"


class UnknownConfigOption(Rule):
    code = "BNB008"
    name = "unknown-config-option"
    summary = "unknown `BitsAndBytesConfig` option, silently ignored"
    level = Level.WARNING
    words = (b"BitsAndBytesConfig", b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds keywords of a transformers `BitsAndBytesConfig(...)`, and keys of a dict passed as
`quantization_config`, that are not options of `BitsAndBytesConfig`, and suggests the nearest
valid name. The keys that a saved `config.json` carries besides the options (`quant_method`,
`_load_in_4bit`, `_load_in_8bit`) are left alone.

## Why is this bad?
`BitsAndBytesConfig` takes `**kwargs`: an unknown name is logged at INFO level only (`Unused
kwargs: [...]`, invisible with the default logging) and ignored. A typo such as
`bnb_4bit_compute_type=torch.float16` leaves the compute dtype at float32, several times slower
(see BNB002); `load_in_8bit_skip_modules` quantizes the modules it meant to skip. Typos seen in
public repositories: `bnb_4bit_compute_type`, `load_in_8bit_fp32_cpu_offload`,
`load_in_8bit_skip_modules`.

## Example
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_type=torch.float16)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config, device_map="auto"
)
```

## Use instead
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config, device_map="auto"
)
```

## Fix safety
The fix renames the option to the nearest valid name, keeping its value as written, only when
that name is unambiguous: a close match (similarity at least 0.85) clearly closer than any other
option, not already set in the config, whose value (when known) is valid for it, and that the
config's mode reads (no `bnb_4bit_*` target in an 8-bit config), in a config without unknown
`**` splats. It is unsafe: the program works today with the option ignored, and the rename makes
it take effect (another compute dtype, other modules skipped), which is the point but changes
what runs. Otherwise (`load_in_8bit_skip_modules`, similarity 0.78) the message names the
nearest option and there is no fix.

## Evidence
CPU, torch 2.13.0, bitsandbytes 0.50.2, transformers 5.24.0 and 4.57.1 alike
(`evidence/repro_bnb008.py`, output in `evidence/repro_bnb008.txt`; also
`evidence/cpu_facts.json`, case BNB008-unknown-kwarg):
- `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_type=torch.float16)` loads with the
  only trace `INFO ... Unused kwargs: ['bnb_4bit_compute_type']. These kwargs are not used in
  <class '...BitsAndBytesConfig'>.`; the Linear4bit compute dtype stays torch.float32 (float16
  with `bnb_4bit_compute_dtype`). The same for a dict config, `load_in_8bit_fp32_cpu_offload` and
  `load_in_8bit_skip_modules` (the module it names is quantized; with `llm_int8_skip_modules` it
  is not).
- The signature is the same ten options plus `**kwargs` in both versions; `to_dict()` adds
  `quant_method`, `_load_in_4bit` and `_load_in_8bit`, which are "Unused kwargs" when passed back
  and change nothing.
"""

    fixable = "sometimes"
    valid = (
        Case(
            _HEAD
            + 'q = {"load_in_4bit": True, "quant_method": "bitsandbytes", "_load_in_4bit": True,\n'
            '     "_load_in_8bit": False, "bnb_4bit_quant_storage": "uint8"}\n'
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n",
            note="the keys of a saved config, and valid options",
        ),
        Case(
            _HEAD + "q = {'load_in_4bit': True, 'compute_type': 1}\n",
            note="a dict is only a config when it reaches a load as quantization_config",
        ),
    )
    invalid = (
        Case(
            _config("load_in_4bit=True, bnb_4bit_compute_type = torch.float16"),
            at="bnb_4bit_compute_type",
            message="did you mean `bnb_4bit_compute_dtype`?",
            unsafe=True,
            fixed=_config("load_in_4bit=True, bnb_4bit_compute_dtype = torch.float16"),
            note="renamed keeping the value as written",
        ),
        Case(
            _HEAD + "q = {'load_in_4bit': True, 'bnb_4bit_compute_dtypes': 'bfloat16'}\n"
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n",
            at="'bnb_4bit_compute_dtypes'",
            unsafe=True,
            fixed=_HEAD + "q = {'load_in_4bit': True, 'bnb_4bit_compute_dtype': 'bfloat16'}\n"
            "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=q)\n",
            note="a dict key is renamed in its quotes",
        ),
        Case(
            _config("load_in_4bit=True, load_in_8bit_skip_modules=['lm_head']"),
            at="load_in_8bit_skip_modules",
            note="not close enough",
        ),
        Case(
            _config(
                "load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16, bnb_4bit_compute_type=x"
            ),
            at="bnb_4bit_compute_type",
            note="the target is already set",
        ),
        Case(_config("load_in_bit=True"), at="load_in_bit", note="two candidates"),
        Case(
            _config("load_in_4bit=True, bnb_4bit_quant_dtype=torch.uint8"),
            at="bnb_4bit_quant_dtype",
            note="a dtype is no quant type",
        ),
        Case(
            _config("load_in_8bit=True, bnb_8bit_compute_dtype=torch.float16"),
            at="bnb_8bit_compute_dtype",
            note="a 4-bit only target in an 8-bit config",
        ),
        Case(
            _config("load_in_4bit=True, bnb_4bit_compute_type=torch.float16, **extra"),
            at="bnb_4bit_compute_type",
            note="the splat may hold the target",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        seen: set[int] = set()
        for config in model.configs:
            site = next(iter(sites_of(model, config)), None)
            for key, entry in config.options.entries.items():
                if key in VALID_OPTIONS or key in SAVED_CONFIG_KEYS or id(entry.node) in seen:
                    continue
                if not stands(model, config, key, entry):
                    continue
                seen.add(id(entry.node))
                names = suggestions(key)
                where = "a dict `quantization_config`" if config.is_dict else "`BitsAndBytesConfig`"
                message = (
                    f"`{key}` is not an option of {where}: transformers ignores it, with only an "
                    "INFO log"
                )
                if names:
                    message += "; did you mean " + " or ".join(f"`{n}`" for n in names) + "?"
                    mode = config_mode(config)
                    if all(n in dead_options(mode) for n in names):
                        message += f" ({mode[0]}-bit configs ignore it too)"
                yield Diagnostic(
                    self.code, message, entry.node, site, self.fix(config, key, entry, model)
                )

    def fix(self, config: BnbConfig, key: str, entry: Entry, model: ModuleModel) -> Fix | None:
        (best, target), (second, _) = ranked(key)[:2]
        if best < RENAME_MIN_RATIO or best - second < RENAME_MIN_GAP:
            return None
        if not config.complete or not owned(config, entry) or target in config.options.entries:
            return None
        mode = config_mode(config)
        if target in dead_options(mode):
            return None
        node = entry.node
        if not isinstance(node, (ast.keyword, DictItem)):
            return None
        if check_value(target, entry.value, node.value, config, model, mode) is not None:
            return None
        if isinstance(node, ast.keyword) and node.arg is not None:
            text = written(model, node, config)
            code = renamed(text, target) if text is not None else None
            if code is None:
                return None
            operation = ReplaceNode(node, code)
        elif isinstance(node, DictItem) and string_value(node.key) is not None:
            assert node.key is not None
            operation = ReplaceNode(node.key, quoted(target, written(model, node.key, config)))
        else:
            return None
        return Fix(f"Rename to `{target}`", Applicability.UNSAFE, (operation,))
