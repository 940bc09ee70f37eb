from __future__ import annotations

import ast
from collections.abc import Iterator

from bnblint.analysis.model import MODE_LABELS, LoadSite, ModelUse, ModuleModel, State
from bnblint.analysis.values import Dtype
from bnblint.diagnostics import (
    AddImport,
    AddKeyword,
    Applicability,
    Diagnostic,
    Fix,
    Level,
    Operation,
    RemoveStatement,
    ReplaceNode,
)
from bnblint.rules.base import Case, Rule, RuleContext
from bnblint.rules.options import written

# Methods that transformers' PreTrainedModel refuses on any quantized model, and their dtype.
REFUSED = {"half": "float16", "float": "float32"}
# ``.to()`` keywords that only tune the copy: with nothing else left, ``.to()`` does nothing.
CAST_FLAGS = ("non_blocking", "copy")
TO_ERROR = "You cannot cast a bitsandbytes model in a new `dtype`"


# The cases' programs: a quantized load, then a use of the model; `args` stands for values that
# are not known statically.
_HEAD = (
    "import argparse\n"
    "import torch\n"
    "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
    "args = argparse.ArgumentParser().parse_args()\n"
)


def _program(use: str, mode: str = "load_in_8bit=True", extra: str = "") -> str:
    """The load with ``mode`` in its config and ``extra`` keywords, then ``use`` (none if
    empty: what a fix that removes the cast leaves)."""
    return (
        f"{_HEAD}model = AutoModelForCausalLM.from_pretrained("
        f'"m", quantization_config=BitsAndBytesConfig({mode}), device_map="auto"{extra})\n'
        + (f"{use}\n" if use else "")
    )


class CastQuantizedModel(Rule):
    code = "BNB006"
    name = "cast-quantized-model"
    summary = "dtype cast (or 8-bit `.cuda()`) of a bitsandbytes-quantized model"
    level = Level.ERROR
    words = (b"BitsAndBytesConfig", b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds `.half()`, `.float()` and `.to(...)` with a dtype (`.to(torch.float16)`,
`.to("cuda", torch.float16)`, `.to(dtype=...)`) called on a model loaded with 4-bit or 8-bit
bitsandbytes quantization, and `.cuda()` on an 8-bit model.

## Why is this bad?
transformers refuses these calls on a quantized model, whatever the target dtype:
`.half()`/`.float()` raise `ValueError: .half() is not supported for quantized model...`, `.to()`
with a dtype raises `ValueError: You cannot cast a bitsandbytes model in a new dtype...` (even to
the dtype the model already has; any `dtype=` keyword counts), and `.cuda()` on an 8-bit model
raises `ValueError: Calling cuda() is not supported for 8-bit quantized models...`. The dtype of
the layers bitsandbytes leaves unquantized is chosen at load time with `dtype=`.
Not reported, because they work: `.to("cuda")`, `.to("cpu")`, `.cuda()` on a 4-bit model, and
`.bfloat16()`/`.double()`, which transformers does not override (they cast only the unquantized
layers). Casts of a load that is quantized on one branch only are left alone.

## Example
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(load_in_4bit=True),
    device_map="auto",
)
model = model.to(torch.float16)
```

## Use instead
```python
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(load_in_4bit=True),
    device_map="auto",
    dtype=torch.float16,
)
```

## Fix safety
Unsafe: removes the cast and passes its dtype to the load (`dtype=torch.float16` for `.half()`,
`torch.float32` for `.float()`, the `.to()` dtype otherwise; `import torch` is added when
missing), or keeps a device move (`.to("cuda", torch.float16)` becomes `.to("cuda")`). The load
then puts its unquantized layers (embeddings, norms, `lm_head`) in that dtype, which is what the
cast asked for, but it applies to every use of that load. Offered only when the cast's dtype is
known, the load has no dtype or the same one, the cast runs exactly when the load does (same
block), every cast of that load asks for the same dtype, and the call either is a statement of its
own (`model.half()`, `model = model.half()`) or keeps a device argument. A cast inside a larger
expression, or on a name other than the model's (`m2 = model.half()`), is reported without a
fix, as is `.cuda()` on an 8-bit model (the load's `device_map` already placed it). The `dtype=`
keyword needs transformers 4.56 or newer (older releases spell it `torch_dtype=`).

## Evidence
- transformers 5.17, bitsandbytes 0.50.2, H100, 4-bit model (`evidence/gpu/README.md`):
  `.to(torch.float16)` raised `ValueError: You cannot cast a bitsandbytes model in a new dtype...`;
  `.half()` and `.float()` raised ValueError; `.to('cuda')`, `.cuda()` and `.to('cpu')` worked.
- transformers 5.24.0, bitsandbytes 0.50.2, torch 2.13.0 on CPU (`evidence/cpu_facts.json`,
  `evidence/repro_bnb006.txt`), 4-bit and 8-bit: `.float()` raised "`.float()` is not supported
  for quantized model. Please use the model as it is, since the model has already been casted to
  the correct `dtype`." and `.half()` the same message with "`.half()`"; `.to(torch.float16)`,
  `.to(dtype=torch.float16)`, `.to("cpu", torch.float16)` and `.to(torch.bfloat16)` on a bf16
  model raised "You cannot cast a bitsandbytes model in a new `dtype`. ..."; 8-bit `.cuda()`
  raised "Calling `cuda()` is not supported for `8-bit` quantized models." before touching any
  device. `.bfloat16()`, `.double()` and `.to("cpu")` worked. Loading with `dtype=torch.float16`
  or `dtype=torch.float32` instead gave those dtypes to the unquantized layers and ran a forward.
- The same casts on an H100 (transformers 5.17, `evidence/repro_bnb006_gpu.txt`) gave the same
  errors; `.bfloat16()`, `.double()`, `.to("cuda")` and 4-bit `.cuda()` worked.
"""

    fixable = "sometimes"
    valid = (
        Case(_program("model.bfloat16()"), note="not overridden by transformers: works"),
        Case(_program("model.double()")),
        Case(_program('model.to("cuda")')),
        Case(_program('model.to("cpu")')),
        Case(_program("model.to(0)")),
        Case(_program('model.to(torch.device("cuda"))')),
        Case(_program('model.to("float16")'), note="a device string to torch, not a dtype"),
        Case(_program("model.to(args.dtype)")),
        Case(_program("model.to(**args.kw)")),
        Case(_program("model.type(torch.float16)")),
        Case(_program("model.cuda()", mode="load_in_4bit=True"), note="4-bit: a device move works"),
        Case(
            _program('model.to("cuda")', mode="load_in_4bit=True"),
            note="4-bit: a device move works",
        ),
        Case(_program("model.half()", mode="load_in_8bit=args.q"), note="quantization not certain"),
        Case(_program("model.half()", mode="**args.bnb"), note="quantization not certain"),
        Case(
            _program("model.half()", mode="load_in_8bit=True) if args.q else (None"),
            note="quantization not certain",
        ),
        Case(
            "from peft import AutoPeftModelForCausalLM\n"
            "from transformers import BitsAndBytesConfig\n"
            "m = AutoPeftModelForCausalLM.from_pretrained("
            '"a", quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="auto")\n'
            "m.half()\n",
            note="peft and custom classes are not transformers models",
        ),
    )
    invalid = (
        Case(
            _program("model.half()"),
            at=(6, 1),
            message="`.half()` on an 8-bit bitsandbytes model raises ValueError",
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float16"),
        ),
        Case(
            _program("model.float()"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float32"),
        ),
        Case(
            _program("model.to(torch.float16)"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float16"),
        ),
        Case(
            _program("model.to(torch.half)"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float16"),
        ),
        Case(
            _program("model.to(torch.bfloat16)"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.bfloat16"),
            note="even the dtype it already has",
        ),
        Case(
            _program("model.to(dtype=torch.float16)"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float16"),
        ),
        Case(
            _program('model.to("cuda", torch.float16)'),
            at=(6, 1),
            unsafe=True,
            fixed=_program('model.to("cuda")', extra=", dtype=torch.float16"),
        ),
        Case(
            _program('model.to("cuda", dtype=torch.float16)'),
            at=(6, 1),
            unsafe=True,
            fixed=_program('model.to("cuda")', extra=", dtype=torch.float16"),
        ),
        Case(
            _program("model.to(dtype=args.dtype)"), at=(6, 1), note="any dtype= keyword is refused"
        ),
        Case(_program("model.cuda()"), at=(6, 1), note="8-bit"),
        Case(_program("model.eval().half()"), at=(6, 1)),
        Case(_program('model.to("cuda").to(torch.float16)'), at=(6, 1)),
        Case(
            _program("model.half(*args.a)"),
            at=(6, 1),
            note="refused before the arguments are looked at",
        ),
        Case(
            _program("model.half()", mode="load_in_4bit=True"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", mode="load_in_4bit=True", extra=", dtype=torch.float16"),
            note="4-bit",
        ),
        Case(
            _program("model = model.float()"),
            at=(6, 9),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float32"),
        ),
        Case(
            _program("model.to(torch.float16, non_blocking=True)"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float16"),
        ),
        Case(
            _program('model = model.to("cuda", torch.float16)'),
            at=(6, 9),
            unsafe=True,
            fixed=_program('model = model.to("cuda")', extra=", dtype=torch.float16"),
        ),
        Case(
            _program('model.to(device="cuda", dtype=torch.float16)'),
            at=(6, 1),
            unsafe=True,
            fixed=_program('model.to(device="cuda")', extra=", dtype=torch.float16"),
        ),
        Case(
            _program("model.half()", extra=", dtype=torch.float16"),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=", dtype=torch.float16"),
        ),
        Case(
            _program("model.half()", extra=', torch_dtype="float16"'),
            at=(6, 1),
            unsafe=True,
            fixed=_program("", extra=', torch_dtype="float16"'),
        ),
        Case(
            _program("model.half()", extra=", dtype=torch.bfloat16"),
            at=(6, 1),
            note="the load has another dtype",
        ),
        Case(_program("model.half()", extra=", dtype=args.dtype"), at=(6, 1)),
        Case(_program("model.half()", extra=", **args.kw"), at=(6, 1)),
        Case(_program("evaluate(model.half())"), at=(6, 10), note="inside an expression"),
        Case(_program("half_model = model.half()"), at=(6, 14), note="bound to another name"),
        Case(_program("if args.fp16:\n    model.half()"), at=(7, 5), note="on one branch only"),
        Case(_program("def f():\n    model.half()"), at=(7, 5)),
        Case(
            _program("model.half()\nmodel.to(torch.float32)"),
            at=(6, 1),
            more=((7, 1),),
            note="two dtypes for one load",
        ),
        Case(
            "import torch as th\n"
            "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
            "model = AutoModelForCausalLM.from_pretrained("
            '"m", quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="auto")\n'
            "model.half()\n",
            at=(4, 1),
            unsafe=True,
            fixed="import torch as th\n"
            "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
            "model = AutoModelForCausalLM.from_pretrained("
            '"m", quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="auto",'
            " dtype=th.float16)\n",
            note="the torch alias is used, no import added",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        found: list[tuple[ModelUse, str, str | None]] = []
        for use in model.uses:
            site = use.site
            q = site.quantization
            if q is None or q.mode not in MODE_LABELS or q.conditional:
                continue
            if not _transformers_load(site):
                continue
            cast = _cast(use, q.mode)
            if cast is not None:
                found.append((use, *cast))
        dtypes: dict[int, set[str | None]] = {}
        for use, _, dtype in found:
            if use.method != "cuda":
                dtypes.setdefault(id(use.site), set()).add(dtype)
        for use, message, dtype in found:
            one_dtype = len(dtypes.get(id(use.site), set())) == 1
            fix = self.fix(use, dtype, model, context) if dtype is not None and one_dtype else None
            yield Diagnostic(self.code, message, use.call, use.site, fix)

    def fix(
        self, use: ModelUse, dtype: str, model: ModuleModel, context: RuleContext
    ) -> Fix | None:
        site = use.site
        func = use.call.func
        receiver = func.value if isinstance(func, ast.Attribute) else None
        if not isinstance(receiver, ast.Name) or use.block != site.block:
            return None
        load_dtype = site.dtype
        if load_dtype.state is State.ABSENT:
            add_dtype = True
        elif site.known_dtype is not None and site.known_dtype.name == dtype:
            add_dtype = False
        else:
            return None
        kept = _kept_args(use)
        if kept is None:
            return None
        ops: list[Operation] = []
        if kept:
            # The call as written, without its dtype: each kept argument keeps its text.
            texts = [written(model, arg) for arg in kept]
            args = [t for t in texts if t is not None]
            callee = written(model, func)
            if callee is None or len(args) != len(kept):
                return None
            code = f"{callee}({', '.join(args)})"
            ops.append(ReplaceNode(use.call, code))
            what = f"Keep `{code}`"
        elif use.statement is not None and (use.whole_statement or use.assigned_to == receiver.id):
            ops.append(RemoveStatement(use.statement))
            what = f"Remove `.{use.method}()`"
        else:
            return None
        alias = model.torch_alias or "torch"
        if add_dtype:
            if model.torch_alias is None:
                ops.append(AddImport("torch"))
            # `dtype=` exists from transformers 4.56 on; an older target keeps `torch_dtype=`.
            keyword = "torch_dtype" if context.target.admits_below((4, 56)) else "dtype"
            ops.append(AddKeyword(site.call, keyword, f"{alias}.{dtype}"))
            what += f" and pass `{keyword}={alias}.{dtype}` to the load"
        else:
            what += " (the load already has that dtype)"
        return Fix(what, Applicability.UNSAFE, tuple(ops))


def _transformers_load(site: LoadSite) -> bool:
    """A transformers class's from_pretrained: its model refuses casts (PEFT's wrapper does not)."""
    return (
        site.api == "from_pretrained"
        and site.receiver is not None
        and site.receiver.split(".")[0] == "transformers"
    )


def _cast(use: ModelUse, mode: str) -> tuple[str, str | None] | None:
    """(message, target dtype or None when unknown) for a call transformers refuses."""
    method = use.method
    model = f"{'an' if mode == '8bit' else 'a'} {MODE_LABELS[mode]} bitsandbytes model"
    dtype: str | None
    if method in REFUSED:  # refused before its arguments are looked at
        dtype = REFUSED[method]
        message = (
            f'`.{method}()` on {model} raises ValueError ("`.{method}()` is not supported for '
            f'quantized model"); pass `dtype=torch.{dtype}` to `from_pretrained` instead'
        )
        return message, dtype
    if method == "to":
        dtypes = [a for a in use.args if _is_dtype(a)]
        keyword = use.kwargs.entries.get("dtype")
        if not dtypes and keyword is None:
            return None
        if keyword is not None:
            value = keyword.value
            dtype = value.name if isinstance(value, Dtype) and _is_dtype(value) else None
        else:
            first = dtypes[0]
            assert isinstance(first, Dtype)
            dtype = first.name
        message = (
            f'`.to()` with a dtype on {model} raises ValueError ("{TO_ERROR}"); '
            "pass the dtype to `from_pretrained` instead"
        )
        return message, dtype
    if method == "cuda" and mode == "8bit":
        message = (
            f'`.cuda()` on {model} raises ValueError ("Calling `cuda()` is not supported for '
            "`8-bit` quantized models\"); place it with the load's `device_map` instead"
        )
        return message, None
    return None


def _is_dtype(value: object) -> bool:
    """A torch dtype written as ``torch.X`` (a string is a device to ``.to()``, not a dtype)."""
    return isinstance(value, Dtype) and not value.spelled_as_string


def _kept_args(use: ModelUse) -> list[ast.expr | ast.keyword] | None:
    """The call's arguments without its dtype, in order; None when they cannot be told apart."""
    call = use.call
    if use.method in REFUSED:
        return None if call.args or call.keywords else []
    if any(isinstance(a, ast.Starred) for a in call.args):
        return None
    if any(k.arg is None for k in call.keywords):
        return None
    if len(call.args) != len(use.args):
        return None
    # Without a star, the positional arguments come first.
    kept: list[ast.expr | ast.keyword] = [
        arg for arg, value in zip(call.args, use.args) if not _is_dtype(value)
    ]
    kept += [k for k in call.keywords if k.arg != "dtype"]
    if all(isinstance(a, ast.keyword) and a.arg in CAST_FLAGS for a in kept):
        return []  # nothing left but options of the cast itself
    return kept
