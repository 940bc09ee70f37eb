from __future__ import annotations

import ast
from collections.abc import Iterator

from bnblint.analysis.model import LoadSite, ModuleModel, State
from bnblint.analysis.values import BnbConfig
from bnblint.diagnostics import (
    AddDictEntry,
    AddImport,
    AddKeyword,
    Applicability,
    Diagnostic,
    Fix,
    Level,
    Operation,
)
from bnblint.rules.base import Case, Rule, RuleContext

OPTION = "bnb_4bit_compute_dtype"


class MissingComputeDtype(Rule):
    code = "BNB002"
    name = "missing-compute-dtype"
    summary = "4-bit config without `bnb_4bit_compute_dtype`"
    level = Level.WARNING
    words = (b"BitsAndBytesConfig", b"load_in_4bit")
    docs = """
## What it does
Finds 4-bit bitsandbytes configs (a `BitsAndBytesConfig` or a dict config) that reach a model
load without `bnb_4bit_compute_dtype`.

## Why is this bad?
The compute dtype defaults to float32: every 4-bit matrix multiplication dequantizes to float32
and runs in float32, several times slower than in float16 or bfloat16, and nothing warns about it.
bitsandbytes 0.47 and newer no longer warn under transformers, and bitsandbytes 0.46.1 and older
silently switched bf16 models to bf16 compute, so a script that was fast on old releases is slow
on new ones. A load with `dtype=torch.float32` is left alone: float32 compute is what it asks for.

## Example
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=quantization_config,
    device_map="auto",
)
```

## Use instead
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=quantization_config,
    device_map="auto",
)
```
On Ampere GPUs and newer (compute capability 8.0+), `torch.bfloat16` is the better choice for
bf16 checkpoints: float16 compute can overflow where bfloat16 does not. Set
`compute-dtype = "bfloat16"` in `[tool.bnblint]` to make the fix write it.

## Fix safety
The fix adds `bnb_4bit_compute_dtype` where the config is written (even far from the load), as
`torch.<dtype>` (adding `import torch` when missing, honouring an alias such as `th`) or as a
string in a dict config. The dtype is the load's own `dtype`/`torch_dtype` when statically known,
else the configured `compute-dtype` (default `float16`, the transformers documentation's choice).
Safe when the load's dtype is known or absent. Unsafe when the load passes a dtype that is not
statically known (`dtype="auto"`, a variable): the configured dtype may then disagree with the
model's, which is slow too (see BNB003). No fix when one config reaches loads with different
dtypes.

## Evidence
H100 80GB, torch 2.11.0+cu130, transformers 5.17.0, bitsandbytes 0.50.2, a random 1.1B Llama
saved in bf16 (hidden 2048, 22 layers), prefill of an 8x512 batch:
- `bnblint verify` on the Example, warm-up then median of at least 3 passes
  (`evidence/gpu/verify_h100.json`): as written 0.193 s (compute float32, no warning); as fixed
  (`bnb_4bit_compute_dtype=torch.float16`, `device_map="auto"`) 0.052 s: 3.7x faster.
- Re-measured per dtype pair, median of 5 after two full-size warm-ups
  (`evidence/repro_bnb003.txt`): float32 compute 0.19 s on a bf16 or fp16 model; 16-bit compute
  0.04-0.05 s.
- The first probe (`evidence/gpu/h100-2026-11-27/probe.json`) reported 0.347 s vs 0.040 s
  (8.6x) for the 1.1B model, with a short warm-up; the later runs above did not reproduce the
  0.347 s. For a Llama-3.1-8B-shaped model it reported 1.397 s vs 0.164 s (float16, 8.5x) and
  0.134 s (bfloat16, 10.4x).
- CPU, transformers 5.24.0 and 4.57.1, bitsandbytes 0.50.2 (`evidence/cpu_facts.json`): the
  compute dtype is float32 and nothing warns, at load or at the first forward.
"""

    fixable = "sometimes"
    valid = (
        Case(
            """
            import torch
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True)
            m = AutoModel.from_pretrained("m", quantization_config=cfg, dtype=torch.float32)
            """,
            note="float32 compute is what a float32 load asks for",
        ),
        Case(
            """
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_8bit=True)
            m = AutoModel.from_pretrained("m", quantization_config=cfg)
            """,
            note="8-bit has no compute dtype",
        ),
    )
    invalid = (
        Case(
            """
            import torch
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True)
            m = AutoModel.from_pretrained("m", quantization_config=cfg, dtype=torch.bfloat16)
            """,
            at="BitsAndBytesConfig(load_in_4bit",
            message="matmuls run in float32",
            fixed="""
            import torch
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
            m = AutoModel.from_pretrained("m", quantization_config=cfg, dtype=torch.bfloat16)
            """,
            note="the load's own dtype",
        ),
        Case(
            """
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True)
            m = AutoModel.from_pretrained("m", quantization_config=cfg, dtype="auto")
            """,
            at="BitsAndBytesConfig(load_in_4bit",
            fixed="""
            import torch
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
            m = AutoModel.from_pretrained("m", quantization_config=cfg, dtype="auto")
            """,
            unsafe=True,
            note="the load's dtype is not known: the configured one may disagree with it",
        ),
        Case(
            """
            import torch as th
            from transformers import AutoModelForCausalLM
            q = {"load_in_4bit": True}
            m = AutoModelForCausalLM.from_pretrained("m", quantization_config=q)
            """,
            at=(3, 5),
            fixed="""
            import torch as th
            from transformers import AutoModelForCausalLM
            q = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float16"}
            m = AutoModelForCausalLM.from_pretrained("m", quantization_config=q)
            """,
            note="a dict config gets a dtype string",
        ),
        Case(
            """
            import torch
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True)
            a = AutoModel.from_pretrained("a", quantization_config=cfg, dtype=torch.float16)
            b = AutoModel.from_pretrained("b", quantization_config=cfg, dtype=torch.bfloat16)
            """,
            at="BitsAndBytesConfig(load_in_4bit",
            note="one config, loads of different dtypes: no single right value",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        groups: dict[int, tuple[BnbConfig, list[LoadSite]]] = {}
        for site in model.quantized_loads():
            q = site.quantization
            assert q is not None
            if q.config is None or q.mode != "4bit":
                continue
            if OPTION in q.config.options.entries or not q.config.complete:
                continue
            if _misspelled_compute_dtype(q.config):
                continue  # BNB008 renames the typo, keeping the dtype the author chose
            groups.setdefault(id(q.config.node), (q.config, []))[1].append(site)
        for config, sites in groups.values():
            if all(s.known_dtype is not None and s.known_dtype.name == "float32" for s in sites):
                continue
            conditional = any(s.quantization and s.quantization.conditional for s in sites)
            when = " (when quantization is enabled)" if conditional else ""
            message = (
                f"4-bit config without `{OPTION}`{when}: matmuls run in float32, "
                "several times slower (3.7x prefill measured on an H100), with no warning"
            )
            yield Diagnostic(
                self.code, message, config.node, sites[0], self.fix(config, sites, model, context)
            )

    def fix(
        self, config: BnbConfig, sites: list[LoadSite], model: ModuleModel, context: RuleContext
    ) -> Fix | None:
        choices: set[str] = set()
        applicability = Applicability.SAFE
        for site in sites:
            dtype = site.dtype
            if dtype.state is State.ABSENT:
                choices.add(context.compute_dtype)
            elif site.known_dtype is not None:
                choices.add(site.known_dtype.name)
            else:
                choices.add(context.compute_dtype)
                applicability = Applicability.UNSAFE
        if len(choices) != 1:
            return None  # one config, loads of different dtypes: no single right value
        name = choices.pop()
        ops: list[Operation] = []
        if config.is_dict:
            value = f'"{name}"'
        else:
            torch_alias = model.torch_alias_for(config)
            alias = torch_alias or "torch"
            value = f"{alias}.{name}"
            if torch_alias is None:
                ops.append(AddImport("torch"))
        if isinstance(config.node, ast.Dict):
            ops.append(AddDictEntry(config.node, OPTION, value))
        elif isinstance(config.node, ast.Call):
            ops.append(AddKeyword(config.node, OPTION, value))
        else:
            return None
        return Fix(f"Add `{OPTION}={value}`", applicability, tuple(ops))


def _misspelled_compute_dtype(config: BnbConfig) -> bool:
    from bnblint.rules.options import VALID_OPTIONS, suggestions

    return any(
        key not in VALID_OPTIONS and OPTION in suggestions(key) for key in config.options.entries
    )
