from __future__ import annotations

import ast
from collections.abc import Iterator

from bnblint.analysis.model import LoadSite, ModuleModel
from bnblint.analysis.values import BnbConfig, Dtype, Entry, as_dtype
from bnblint.diagnostics import Applicability, Diagnostic, Fix, Level, ReplaceNode
from bnblint.rules.base import Case, Rule, RuleContext
from bnblint.rules.options import source, string_parts, written

OPTION = "bnb_4bit_compute_dtype"
# Load dtypes the rule checks: a float32 load with a 16-bit compute dtype is a deliberate choice.
HALF = ("float16", "bfloat16")
# Compute dtypes whose effect was measured (evidence/repro_bnb003.txt).
COMPUTE = ("float16", "bfloat16", "float32")


def _consequence(compute: str, load: str) -> str:
    """What running 4-bit layers in ``compute`` does to a ``load`` (float16/bfloat16) model."""
    if compute == "float32":
        return "4-bit matmuls run in float32 (8x512 prefill: 0.19 s vs 0.04-0.05 s on an H100)"
    if compute == "float16":
        return (
            "4-bit layers cast the bfloat16 activations to float16, which overflows to inf "
            "above 65504"
        )
    return (
        "4-bit layers round the float16 activations to bfloat16 (less precise) "
        "for no measured speed gain"
    )


# The cases' loads: a 4-bit config written in the load, its compute dtype against the load's.
_HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"


def _load(compute: str, dtype: str, mode: str = "load_in_4bit=True") -> str:
    config = f"BitsAndBytesConfig({mode}, bnb_4bit_compute_dtype={compute})"
    return (
        f'{_HEAD}m = AutoModelForCausalLM.from_pretrained("m", quantization_config={config},'
        f' dtype={dtype}, device_map="auto")\n'
    )


class ComputeDtypeMismatch(Rule):
    code = "BNB003"
    name = "compute-dtype-mismatch"
    summary = "`bnb_4bit_compute_dtype` differs from the load's `dtype`"
    level = Level.WARNING
    words = (b"bnb_4bit_compute_dtype",)
    docs = """
## What it does
Finds 4-bit bitsandbytes configs whose `bnb_4bit_compute_dtype` differs from the `dtype` (or
`torch_dtype`) of a load they reach, when the load's dtype is `float16` or `bfloat16` and both are
statically known.

## Why is this bad?
bitsandbytes casts each 4-bit layer's input to the compute dtype, multiplies, and casts the
result back to the model's dtype. With a half-precision model:
- `float32` compute runs every 4-bit matmul in float32: 0.19 s instead of 0.04-0.05 s for an
  8x512 prefill on an H100 (about 4x slower), with no warning.
- `float16` compute on a `bfloat16` model casts bfloat16 activations to float16, whose largest
  value is 65504: larger activations become `inf` and the logits non-finite, where bfloat16
  compute stays finite. It was no faster than bfloat16 compute.
- `bfloat16` compute on a `float16` model rounds the activations to bfloat16's 8 significant
  bits (float16 has 11) before every 4-bit matmul, and was no faster.

A `float32` load with a 16-bit compute dtype is not reported: there the non-quantized layers run
in float32 on purpose and the 16-bit compute dtype is what keeps the 4-bit layers fast (0.08 s vs
0.23 s with float32 compute). Loads whose dtype is absent, `"auto"` or not statically known are
not reported either: the model's dtype is then that of the checkpoint, unknown here.

## Example
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=quantization_config,
    dtype=torch.bfloat16,
    device_map="auto",
)
```

## Use instead
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=quantization_config,
    dtype=torch.bfloat16,
    device_map="auto",
)
```

## Fix safety
Unsafe: the fix replaces the compute dtype with the load's dtype where the option is written
(`torch.float16` becomes `torch.bfloat16` with the same prefix, a string stays a string), which
changes the numbers the model computes. No fix when one config reaches loads of different or
unknown dtypes, or when the compute dtype comes from a variable (changing it could change other
uses).

## Evidence
- `evidence/repro_bnb003.txt` (`evidence/repro_bnb003.py`): H100 80GB, torch 2.11.0+cu130,
  transformers 5.17.0, bitsandbytes 0.50.2, a random 1.1B Llama saved in bf16, 8x512 prefill,
  median of 5 rounds. Compute float32 with `dtype` bfloat16: 0.192 s, with float16: 0.191 s;
  matching 16-bit pairs and the 16-bit mismatches all 0.037-0.054 s (bfloat16 compute with a
  float16 model: 0.039 s). Float32 load: 0.081 s with 16-bit compute, 0.227 s with float32.
  With the input norms scaled past 65504, float16 compute on the bfloat16 model gave non-finite
  logits and bfloat16 compute finite ones.
- The 0.256 s once measured for bfloat16 compute with a float16 model
  (`evidence/gpu/h100-2026-11-27/probe.json`, case E) did not reproduce (0.039 s above). That
  probe warmed up on a 1x16 batch and timed 3 passes; a first pass in a new dtype cost
  0.18-0.26 s in `evidence/repro_bnb003.run1.txt`, which likely explains it.
- `evidence/cpu_facts.json` (transformers 5.24.0, bitsandbytes 0.50.2, CPU): with
  `bnb_4bit_compute_dtype=torch.bfloat16` and `dtype=torch.float16` the layers keep compute dtype
  bfloat16 and the logits are float16; no warning is emitted.
"""

    fixable = "sometimes"
    valid = (
        _load("torch.float16", "torch.float16"),
        _load("torch.half", '"float16"'),
        Case(_load("torch.bfloat16", "torch.float32"), note="a float32 load: deliberate"),
        _load("torch.float16", "torch.float32"),
        Case(_load("torch.float64", "torch.float16"), note="effect not measured: silent"),
        _load("torch.bfloat16", '"auto"'),
        Case(
            _load("torch.bfloat16", "torch.float16", mode="load_in_8bit=True"),
            note="an 8-bit config is not checked",
        ),
    )
    invalid = (
        Case(
            _load("torch.float16", "torch.bfloat16"),
            at=OPTION,
            message="is float16 but the model loads in bfloat16",
            fixed=_load("torch.bfloat16", "torch.bfloat16"),
            unsafe=True,
        ),
        Case(
            _load("torch.bfloat16", "torch.float16"),
            at=OPTION,
            fixed=_load("torch.float16", "torch.float16"),
            unsafe=True,
        ),
        Case(
            _load("torch.float32", "torch.float16"),
            at=OPTION,
            fixed=_load("torch.float16", "torch.float16"),
            unsafe=True,
        ),
        Case(
            _load("torch.float32", "torch.bfloat16"),
            at=OPTION,
            fixed=_load("torch.bfloat16", "torch.bfloat16"),
            unsafe=True,
        ),
        Case(
            _load("'bfloat16'", "torch.float16"),
            at=OPTION,
            fixed=_load("'float16'", "torch.float16"),
            unsafe=True,
            note="a string spelling keeps its quotes",
        ),
        Case(
            """
            import torch
            from transformers import AutoModelForCausalLM, BitsAndBytesConfig
            dt = torch.float16
            cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dt)
            m = AutoModelForCausalLM.from_pretrained(
                "m", quantization_config=cfg, dtype=torch.bfloat16
            )
            """,
            at=OPTION,
            note="from a variable: changing it may change its other uses, no fix",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        # By option and value: the same keyword may carry another dtype through another call
        # (``make(torch.float16)``, ``make(torch.bfloat16)``).
        groups: dict[tuple[int, str], tuple[Entry, Dtype, BnbConfig, list[LoadSite]]] = {}
        for site in model.quantized_loads():
            q = site.quantization
            assert q is not None
            if q.config is None or q.mode != "4bit":
                continue
            entry = q.config.options.entries.get(OPTION)
            compute = as_dtype(entry.value) if entry is not None else None
            if entry is None or compute is None or compute.name not in COMPUTE:
                continue
            key = (id(entry.node), compute.name)
            groups.setdefault(key, (entry, compute, q.config, []))[3].append(site)
        for entry, compute, config, sites in groups.values():
            mismatched = [
                s
                for s in sites
                if s.known_dtype is not None
                and s.known_dtype.name in HALF
                and s.known_dtype.name != compute.name
            ]
            if not mismatched:
                continue
            site = mismatched[0]
            assert site.known_dtype is not None
            load = site.known_dtype.name
            conditional = any(s.quantization and s.quantization.conditional for s in mismatched)
            when = " (when quantization is enabled)" if conditional else ""
            message = (
                f"`{OPTION}` is {compute.name} but the model loads in {load}{when}: "
                f"{_consequence(compute.name, load)}"
            )
            fix = self.fix(model, entry, compute, config, sites)
            yield Diagnostic(self.code, message, entry.node, site, fix)

    def fix(
        self,
        model: ModuleModel,
        entry: Entry,
        compute: Dtype,
        config: BnbConfig,
        sites: list[LoadSite],
    ) -> Fix | None:
        loads = {s.known_dtype.name if s.known_dtype is not None else None for s in sites}
        if len(loads) != 1:
            return None  # one config, loads of different (or unknown) dtypes: no single value
        target = loads.pop()
        if target not in HALF or compute.node is None:
            return None
        if getattr(entry.node, "value", None) is not compute.node:
            return None  # the dtype comes from a variable: changing it may change other uses
        node = compute.node
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = written(model, node, config)
            parts = string_parts(text) if text is not None else None
            if parts is None:
                return None  # an implicit concatenation, or its text is not at hand
            prefix, quote = parts
            op = ReplaceNode(node, f"{prefix}{quote}{target}{quote}")
            shown = f'"{target}"'
        elif isinstance(node, ast.Attribute):
            text = written(model, node, config)
            if text is None or not text.endswith(node.attr):
                return None  # a name ast normalized (NFKC): not the text written
            # Only the attribute's name changes, as written: ``torch . float16`` keeps its spaces.
            op = ReplaceNode(node, text[: len(text) - len(node.attr)] + target)
            shown = f"{source(model, node.value, config)}.{target}"
        else:
            return None
        return Fix(f"Set `{OPTION}={shown}`", Applicability.UNSAFE, (op,))
