from __future__ import annotations

import ast
from collections.abc import Iterator

from bnblint.analysis.model import LoadSite, ModuleModel
from bnblint.analysis.syntax import string_value
from bnblint.analysis.values import BnbConfig, Entry, Literal, flatten
from bnblint.diagnostics import (
    AddDictEntry,
    AddKeyword,
    Applicability,
    Diagnostic,
    Fix,
    Level,
    Operation,
    RemoveKeyword,
)
from bnblint.rules.base import Case, Rule, RuleContext
from bnblint.rules.options import operand, written


class PipelineIgnoredQuantization(Rule):
    code = "BNB010"
    name = "pipeline-ignored-quantization"
    summary = "quantization keyword given to `pipeline()` itself, where the model never sees it"
    level = Level.WARNING
    words = (b"BitsAndBytesConfig", b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds a bitsandbytes `quantization_config=`, `load_in_4bit=` or `load_in_8bit=` given to
`transformers.pipeline(...)` itself (written in the call or in a `**kwargs` dict it receives)
instead of inside `model_kwargs={...}`.

## Why is this bad?
`pipeline()` hands the model only `model_kwargs` and its own `device_map` and `dtype`; every
other keyword goes to the pipeline class. The model is loaded unquantized, in full precision,
with no error and no warning: the memory the quantization was meant to save is used anyway.

## Example
```python
from transformers import BitsAndBytesConfig, pipeline

pipe = pipeline(
    "text-generation",
    model="meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(load_in_4bit=True),
)
```

## Use instead
```python
from transformers import BitsAndBytesConfig, pipeline

pipe = pipeline(
    "text-generation",
    model="meta-llama/Llama-3.1-8B-Instruct",
    model_kwargs={"quantization_config": BitsAndBytesConfig(load_in_4bit=True)},
)
```

## Fix safety
Unsafe: the fix moves the keywords into `model_kwargs` (adding it, or extending a literal one
written in the call), so the model starts being quantized: less memory, different numerics and
speed. Offered only when every such keyword is written in the call itself.

## Evidence
transformers 5.24.0, bitsandbytes 0.50.2, torch 2.13.0 on CPU (`evidence/repro_bnb010.json`,
`evidence/repro_bnb010.py`), a text-generation pipeline on a tiny Llama: with
`quantization_config=BitsAndBytesConfig(load_in_4bit=True)` or `load_in_4bit=True` given to
`pipeline()` every linear layer stayed a plain `Linear`, with no warning; the same config in
`model_kwargs` gave `Linear4bit` layers. The transformers 5.24.0 source of `pipeline()` passes
its remaining keywords to the pipeline class, not to `from_pretrained`.
"""

    fixable = "sometimes"
    valid = (
        """
        from transformers import BitsAndBytesConfig, pipeline
        p = pipeline("text-generation", model="m", model_kwargs={"load_in_4bit": True})
        """,
        Case(
            """
            from transformers import pipeline
            p = pipeline("text-generation", model="m", load_in_4bit=False)
            """,
            note="a flag that is literally False quantizes nothing either way",
        ),
    )
    invalid = (
        Case(
            """
            from transformers import pipeline
            p = pipeline("text-generation", model="m", load_in_4bit=True)
            """,
            at="load_in_4bit",
            message="`load_in_4bit` given to `pipeline()` itself never reaches the model",
            unsafe=True,
            fixed="""
            from transformers import pipeline
            p = pipeline("text-generation", model="m", model_kwargs={"load_in_4bit": True})
            """,
        ),
        Case(
            """
            from transformers import pipeline
            kw = {"device_map": "auto"}
            p = pipeline("text-generation", model="m", model_kwargs=kw, load_in_8bit=True)
            """,
            at="load_in_8bit",
            note="model_kwargs is a variable: no fix",
        ),
        Case(
            """
            from transformers import pipeline
            p = pipeline("m", model_kwargs={"device_map": "auto"}, load_in_8bit=True)
            """,
            at="load_in_8bit",
            unsafe=True,
            fixed="""
            from transformers import pipeline
            p = pipeline("m", model_kwargs={"device_map": "auto", "load_in_8bit": True})
            """,
            note="a literal model_kwargs is extended",
        ),
        Case(
            """
            from transformers import pipeline
            kw = {"load_in_8bit": True}
            p = pipeline("text-generation", model="m", **kw)
            """,
            at='"load_in_8bit"',
            note="from a **kwargs dict: reported where it is written, no fix",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        for site in model.loads:
            if site.api != "pipeline":
                continue
            keys = [k for k, e in site.ignored.items() if _quantizes(k, e)]
            if not keys:
                continue
            first = site.ignored[keys[0]]
            named = ", ".join(f"`{k}`" for k in keys)
            message = (
                f"{named} given to `pipeline()` itself never reaches the model: it loads "
                "unquantized, with no warning; pass it in `model_kwargs={...}`"
            )
            yield Diagnostic(self.code, message, first.node, site, _fix(site, keys, model))


def _quantizes(key: str, entry: Entry) -> bool:
    """A bitsandbytes config, or a load_in_* flag that is not literally False or None."""
    values = flatten(entry.value)
    if key == "quantization_config":
        return any(isinstance(v, BnbConfig) for v in values)
    return not all(isinstance(v, Literal) and v.value in (False, None) for v in values)


def _fix(site: LoadSite, keys: list[str], model: ModuleModel) -> Fix | None:
    call = site.call
    args = {kw.arg: kw for kw in call.keywords if kw.arg is not None}
    if any(args.get(k) is not site.ignored[k].node for k in keys):
        return None  # some come from a **kwargs dict: report only
    moved: dict[str, str] = {}
    for k in keys:
        value = args[k].value
        text = written(model, value)
        if text is None:
            return None
        moved[k] = operand(text, value)
    ops: list[Operation] = [RemoveKeyword(call, k) for k in keys]
    model_kwargs = args.get("model_kwargs")
    if model_kwargs is None:
        inner = ", ".join(f'"{k}": {v}' for k, v in moved.items())
        ops.append(AddKeyword(call, "model_kwargs", "{" + inner + "}"))
    elif isinstance(model_kwargs.value, ast.Dict) and not any(
        string_value(key) in moved for key in model_kwargs.value.keys
    ):
        ops.extend(AddDictEntry(model_kwargs.value, k, v) for k, v in moved.items())
    else:
        return None  # model_kwargs is a variable, or already sets these keys
    return Fix("Move into `model_kwargs`", Applicability.UNSAFE, tuple(ops))
