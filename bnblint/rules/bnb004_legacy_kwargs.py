from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import fields
from typing import Union

from bnblint.analysis.model import LoadSite, ModuleModel
from bnblint.analysis.syntax import DictItem, string_value
from bnblint.analysis.values import Entry, Overridden, maybe_absent, truthy
from bnblint.diagnostics import (
    AddDictEntry,
    AddImportFrom,
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
from bnblint.rules.options import VALID_OPTIONS, operand, written

LEGACY = ("load_in_4bit", "load_in_8bit")
# The other BitsAndBytesConfig parameters: transformers 4.x moved them from from_pretrained's
# keywords into the config it built from a true load_in_* (evidence/repro_bnb004.txt).
BNB_OPTIONS = tuple(o for o in VALID_OPTIONS if o not in LEGACY)
CONFIG = "quantization_config"

Place = Union[ast.Call, ast.Dict]  # the call or the dict literal whose entry sets a keyword


# The cases' first line: most import both names the fix may need.
_IMPORTS = "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"


class LegacyLoadKwargs(Rule):
    code = "BNB004"
    name = "legacy-load-kwargs"
    summary = "`load_in_4bit=`/`load_in_8bit=` passed to `from_pretrained`"
    level = Level.ERROR
    words = (b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds `load_in_4bit=` and `load_in_8bit=` keywords that reach a transformers `from_pretrained`:
written in the call, in a `**kwargs` dict it receives, or in `pipeline(model_kwargs=...)`.
Loaders whose own `from_pretrained` takes these keywords (unsloth, optimum-intel, ipex-llm,
intel-extension-for-transformers) are not checked, nor classes that are not known to be
transformers'. A `load_in_4bit` given to `pipeline(...)` itself is not reported here: it never
reaches the model.

## Why is this bad?
transformers 5 no longer accepts them: the load raises
`TypeError: LlamaForCausalLM.__init__() got an unexpected keyword argument 'load_in_4bit'`, even
for `load_in_8bit=False`. transformers 4.x only warned that they are deprecated, and raised
``ValueError: You can't pass `load_in_4bit`or `load_in_8bit` as a kwarg when passing
`quantization_config` argument at the same time.`` when a `quantization_config` was given too.

## Example
```python
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct", load_in_4bit=True, device_map="auto"
)
```

## Use instead
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(load_in_4bit=True),
    device_map="auto",
)
```

## Fix safety
The fix writes what transformers 4.x did with these keywords, so a program that worked on 4.x
does the same and now also loads on 5:
- `load_in_4bit=True` becomes `quantization_config=BitsAndBytesConfig(load_in_4bit=True)`, and
  the bitsandbytes options passed next to it (`bnb_4bit_compute_dtype=...`, ...) move into the
  config, as 4.x moved them. Safe. The name is written as the module already spells it
  (`BitsAndBytesConfig`, an alias, `transformers.BitsAndBytesConfig`), else
  `from transformers import BitsAndBytesConfig` is added.
- A value not known statically, `load_in_4bit=args.q`, becomes
  `quantization_config=BitsAndBytesConfig(load_in_4bit=True) if args.q else None`: 4.x did not
  quantize when the value was false, while `BitsAndBytesConfig(load_in_4bit=False)` quantizes to
  4-bit. Safe for a name or attribute; unsafe for any other expression (it is evaluated after
  the other arguments instead of in its place).
- `load_in_8bit=False` (or `load_in_4bit=False`) is removed: 4.x ignored it. Safe.
- With a `quantization_config` given too (an error on both versions), the flag is removed from
  the call and set in the config where it is written: safe when the config already means that
  mode, unsafe for `load_in_8bit` into a config with neither flag (that config was 4-bit); no fix
  when the config sets the other mode.
- In a dict (`model_kwargs={...}`, a `**kwargs` dict, `dict(...)`), the entry is replaced by
  `"quantization_config": BitsAndBytesConfig(...)` in that dict.
- Moving a true or unknown flag is unsafe whenever the load also receives a `**kwargs` that is
  not known statically (it may hold more options).
- No fix when the keywords are set by a statement (`kw["load_in_4bit"] = True`), come from
  several places, or both flags are set.

After the fix, BNB002 and BNB001 may report the new config (no compute dtype, no `device_map`)
exactly as they would have reported the old keywords' implicit config.

## Evidence
- transformers 5.17.0, bitsandbytes 0.50.2, H100: `from_pretrained(path, load_in_4bit=True,
  device_map="auto")` raised the TypeError above (`evidence/gpu/README.md`).
- `evidence/repro_bnb004.txt` (`evidence/repro_bnb004.py`, CPU, torch 2.13.0, bitsandbytes
  0.50.2): on transformers 5.24.0, `load_in_4bit=True`, `load_in_8bit=True`,
  `load_in_8bit=False` and `load_in_4bit=False` all raise the TypeError, with or without a
  `quantization_config`. On transformers 4.57.1, `load_in_4bit=True` loads
  4-bit with a deprecation warning and moves `bnb_4bit_compute_dtype`/`bnb_4bit_quant_type`
  passed next to it into the config; `load_in_8bit=False` loads unquantized; with
  `quantization_config` too it raises the ValueError above. On both,
  `BitsAndBytesConfig(load_in_4bit=False)` quantizes to 4-bit, `... if flag else None` with a
  false flag does not, and `pipeline(load_in_4bit=True)` silently loads an unquantized model.
- `evidence/cpu_facts.json` (transformers 5.24.0, CPU): `pipeline(model_kwargs={"load_in_4bit":
  True})` fails with `ValueError: Could not load model ...` wrapping the same TypeError.
"""

    fixable = "sometimes"
    valid = (
        Case(
            "from transformers import pipeline\n"
            'p = pipeline("text-generation", model="m", load_in_4bit=True)\n'
            'q = pipeline("text-generation", model="m", **{"load_in_4bit": True})\n',
            note="pipeline()'s own keyword: loads unquantized, no TypeError (measured), BNB010's",
        ),
        Case(
            "from mylib import Loader\n"
            "from unsloth import FastLanguageModel\n"
            'a = Loader.from_pretrained("m", load_in_4bit=True)\n'
            'b = FastLanguageModel.from_pretrained("m", load_in_4bit=True)\n'
            'c = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True)  # not imported\n',
            note="not transformers' from_pretrained",
        ),
    )
    invalid = (
        Case(
            _IMPORTS + 'm = AutoModelForCausalLM.from_pretrained("m", load_in_8bit=True,'
            " quantization_config=BitsAndBytesConfig(llm_int8_threshold=5.0))\n",
            at="load_in_8bit=True",
            message="with a `quantization_config`",
            fixed=_IMPORTS + 'm = AutoModelForCausalLM.from_pretrained("m",'
            " quantization_config=BitsAndBytesConfig(llm_int8_threshold=5.0, load_in_8bit=True))\n",
            unsafe=True,
            note="8-bit into a config with neither flag: that config was 4-bit",
        ),
        Case(
            "from diffusers import BitsAndBytesConfig\n"
            "from transformers import AutoModelForCausalLM\n"
            'm = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True)\n',
            at="load_in_4bit",
            note="the name is bound to another config: no fix",
        ),
        Case(
            "import transformers\n"
            'm = transformers.AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True)\n',
            at="load_in_4bit",
            fixed="import transformers\n"
            'm = transformers.AutoModelForCausalLM.from_pretrained("m",'
            " quantization_config=transformers.BitsAndBytesConfig(load_in_4bit=True))\n",
            note="a module import spells the config through it",
        ),
        Case(
            _IMPORTS + "kw = {}\n"
            "kw.update(load_in_4bit=True)\n"
            'm = AutoModelForCausalLM.from_pretrained("m", **kw)\n',
            at="load_in_4bit",
            fixed=_IMPORTS + "kw = {}\n"
            "kw.update(quantization_config=BitsAndBytesConfig(load_in_4bit=True))\n"
            'm = AutoModelForCausalLM.from_pretrained("m", **kw)\n',
            note="an update() call is rewritten in place",
        ),
        Case(
            _IMPORTS + "QUANTIZE = True\n"
            'm = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=QUANTIZE)\n',
            at="load_in_4bit",
            fixed=_IMPORTS + "QUANTIZE = True\n"
            'm = AutoModelForCausalLM.from_pretrained("m",'
            " quantization_config=BitsAndBytesConfig(load_in_4bit=QUANTIZE))\n",
            note="a variable known to be True is kept",
        ),
        Case(
            "from peft import AutoPeftModelForCausalLM\n"
            'a = AutoPeftModelForCausalLM.from_pretrained("m", load_in_4bit=True)\n',
            at="load_in_4bit",
            fixed="from peft import AutoPeftModelForCausalLM\n"
            "from transformers import BitsAndBytesConfig\n"
            'a = AutoPeftModelForCausalLM.from_pretrained("m",'
            " quantization_config=BitsAndBytesConfig(load_in_4bit=True))\n",
            note="peft's auto classes forward the load keywords",
        ),
        Case(
            "import sys\n" + _IMPORTS + "cfg = BitsAndBytesConfig(load_in_4bit=True)"
            ' if "-q" in sys.argv else None\n'
            'm = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True,'
            " quantization_config=cfg)\n",
            at="load_in_4bit=True,",
            note="a conditional config and a legacy flag: no fix",
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        groups: dict[tuple[int, ...], tuple[dict[str, Entry], list[LoadSite]]] = {}
        for site in model.loads:
            legacy = _legacy(site)
            if legacy:
                key = tuple(id(e.node) for e in legacy.values())
                groups.setdefault(key, (legacy, []))[1].append(site)
        for legacy, sites in groups.values():
            site = sites[0]
            flags = {k: truthy(e.value) for k, e in legacy.items()}
            active = [k for k, v in flags.items() if v is not False]
            primary = legacy[active[0]] if active else next(iter(legacy.values()))
            message = self.message(site, legacy, active, primary, context)
            fixes = [self.fix(model, s, legacy, flags, active) for s in sites]
            fix = fixes[0] if all(_same(f, fixes[0]) for f in fixes) else None
            yield Diagnostic(self.code, message, primary.node, site, fix)

    def message(
        self,
        site: LoadSite,
        legacy: dict[str, Entry],
        active: list[str],
        primary: Entry,
        context: RuleContext,
    ) -> str:
        if site.api == "pipeline":
            where = "in `pipeline(model_kwargs=...)`"
        elif site.api == "trl":
            where = "in `model_init_kwargs`, which TRL passes to `from_pretrained`"
        elif primary.container is site.call:
            where = "passed to `from_pretrained`"
        else:
            where = "reaches `from_pretrained` through `**kwargs`"
        on_4, on_5 = context.target.admits_major(4), context.target.admits_major(5)
        fails = "the load fails on transformers 5 (TypeError: unexpected keyword argument)"
        if on_4 and not on_5:
            # A 4.x target (evidence/repro_bnb004.txt, 4.57.1): a deprecation warning there.
            fails = "deprecated on transformers 4 (a warning) and a TypeError on transformers 5"
        elif on_4:
            fails += "; deprecated on 4.x"
        if not active:
            shown = ", ".join(f"`{k}=False`" for k in legacy)
            if on_4 and not on_5:
                return f"{shown} {where}: harmless on transformers 4, a TypeError on 5; remove it"
            return f"{shown} {where}: {fails}; remove it (transformers 4 ignored it)"
        shown = ", ".join(f"`{k}`" for k in legacy)
        if len(active) > 1:
            return f"{shown} {where}: {fails}; keep one, in `{CONFIG}=BitsAndBytesConfig(...)`"
        flag = active[0]
        if CONFIG in site.kwargs.entries:
            return (
                f"{shown} {where} with a `{CONFIG}`: {fails}, and on transformers 4 "
                f"(ValueError); set `{flag}=True` in the config"
            )
        return f"{shown} {where}: {fails}; use `{CONFIG}=BitsAndBytesConfig({flag}=True)`"

    def fix(
        self,
        model: ModuleModel,
        site: LoadSite,
        legacy: dict[str, Entry],
        flags: dict[str, bool | None],
        active: list[str],
    ) -> Fix | None:
        places = {k: _place(e) for k, e in legacy.items()}
        if any(p is None for p in places.values()):
            return None
        removes = [_remove(p, k) for k, p in places.items() if p is not None]
        if not active:
            shown = ", ".join(f"`{k}=False`" for k in legacy)
            return Fix(f"Remove {shown}", Applicability.SAFE, tuple(removes))
        if len(active) > 1:
            return None  # both flags set (or unknown): nothing to translate
        if any(isinstance(e.value, Overridden) for e in legacy.values()):
            return None  # a later merge may change the flag: nothing certain to translate
        flag = active[0]
        entry = legacy[flag]
        place = places[flag]
        assert place is not None
        options = {k: site.kwargs.entries[k] for k in BNB_OPTIONS if k in site.kwargs.entries}
        applicability = Applicability.SAFE if site.kwargs.complete else Applicability.UNSAFE
        if CONFIG in site.kwargs.entries:
            return self.merge(site, flag, flags[flag], removes, options, applicability)
        option_places = {k: _place(e) for k, e in options.items()}
        if any(p is not place for p in option_places.values()):
            return None  # options set elsewhere: moving them is not a local edit
        ref = _config_ref(model)
        if ref is None:
            return None
        name, import_op = ref
        value = _value(entry)
        if value is None:
            return None
        args = [f"{flag}=True"]
        if flags[flag]:
            text = _code(model, value)  # True, or a name known to be True: kept as written
            if text is None:
                return None
            args = [f"{flag}={text}"]
        for k, e in options.items():
            option = _value(e)
            text = _code(model, option) if option is not None else None
            if text is None:
                return None
            args.append(f"{k}={text}")
        code = f"{name}({', '.join(args)})"
        if flags[flag] is None:
            test = _code(model, value, condition=True)
            if test is None:
                return None
            code = f"{code} if {test} else None"
            if not _plain(value):
                applicability = Applicability.UNSAFE
        ops: list[Operation] = [*removes]
        ops += [_remove(p, k) for k, p in option_places.items() if p is not None]
        ops.append(_add(place, CONFIG, code))
        if import_op is not None:
            ops.append(import_op)
        shown = code if flags[flag] else f"{name}({flag}=...)"
        return Fix(f"Pass `{CONFIG}={shown}`", applicability, tuple(ops))

    def merge(
        self,
        site: LoadSite,
        flag: str,
        value: bool | None,
        removes: list[Operation],
        options: dict[str, Entry],
        applicability: Applicability,
    ) -> Fix | None:
        """The load has a ``quantization_config`` too: move the flag into it."""
        q = site.quantization
        if value is not True or options or q is None or q.config is None or q.conditional:
            return None
        config = q.config
        entries = config.options.entries
        other = "load_in_8bit" if flag == "load_in_4bit" else "load_in_4bit"
        own = truthy(entries[flag].value) if flag in entries else None
        if other in entries and truthy(entries[other].value) is not False:
            return None  # the config sets the other mode (or may): which one was meant?
        if flag in entries and own is not True:
            return None  # the config says False (or unknown) for this very flag
        ops = [*removes]
        if own is None:  # neither flag in the config
            if isinstance(config.node, ast.Call):
                ops.append(AddKeyword(config.node, flag, "True"))
            elif isinstance(config.node, ast.Dict):
                ops.append(AddDictEntry(config.node, flag, "True"))
            else:
                return None
            if flag == "load_in_8bit":  # a config with neither flag quantizes to 4-bit
                applicability = Applicability.UNSAFE
        return Fix(f"Set `{flag}=True` in the `{CONFIG}`", applicability, tuple(ops))


def _legacy(site: LoadSite) -> dict[str, Entry]:
    """The load_in_* keywords that reach a transformers model load."""
    if site.api == "pipeline":
        # Only model_kwargs reach the model; pipeline(load_in_4bit=True) is silently ignored.
        inner = site.model_kwargs
        found: dict[str, Entry] = {}
        for k in LEGACY:
            entry = site.kwargs.entries.get(k)
            if entry is not None and inner is not None and inner.entries.get(k) is entry:
                found[k] = entry
        return found
    if site.receiver is None or site.receiver.split(".")[0] not in ("transformers", "peft"):
        return {}  # PEFT's AutoPeftModel* forward the load keywords to transformers
    # A key present on some of many merged paths only is not certainly there.
    return {
        k: e
        for k in LEGACY
        if (e := site.kwargs.entries.get(k)) is not None and not maybe_absent(e.value)
    }


def _place(entry: Entry) -> Place | None:
    node, container = entry.node, entry.container
    if isinstance(node, ast.keyword) and node.arg is not None and isinstance(container, ast.Call):
        return container
    if (
        isinstance(node, DictItem)
        and string_value(node.key) is not None
        and isinstance(container, ast.Dict)
    ):
        return container
    return None


def _remove(place: Place, key: str) -> Operation:
    if isinstance(place, ast.Call):
        return RemoveKeyword(place, key)
    return RemoveDictEntry(place, key)


def _add(place: Place, key: str, value: str) -> Operation:
    if isinstance(place, ast.Call):
        return AddKeyword(place, key, value)
    return AddDictEntry(place, key, value)


def _value(entry: Entry) -> ast.expr | None:
    """The expression written for an entry (the keyword's or the dict item's value)."""
    if isinstance(entry.node, (ast.keyword, DictItem)):
        return entry.node.value
    return None


def _code(model: ModuleModel, node: ast.expr, condition: bool = False) -> str | None:
    """The author's text of a value, to write as a keyword (or as the condition of a
    conditional expression); None when it is not at hand (written in another module)."""
    text = written(model, node)
    return operand(text, node, condition) if text is not None else None


def _plain(node: ast.expr) -> bool:
    """A name, an attribute or a constant name (``None``): evaluated later, to the same."""
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, bool)
    return isinstance(node, (ast.Name, ast.Attribute))


def _config_ref(model: ModuleModel) -> tuple[str, Operation | None] | None:
    """How this module can name transformers' BitsAndBytesConfig, and the import it needs."""
    from bnblint.analysis.builder import BNB_CONFIG_NAMES  # lazily: rules load without it

    transformers_config = BNB_CONFIG_NAMES - {"BitsAndBytesConfig"}
    names = model.module_names
    if names.get("BitsAndBytesConfig") in transformers_config:
        return "BitsAndBytesConfig", None
    for name, qualname in names.items():
        if qualname in transformers_config:
            return name, None  # an alias: from transformers import BitsAndBytesConfig as Bnb
    if "BitsAndBytesConfig" in names:
        return None  # the name means something else here (diffusers' config, ...)
    from_imports = any(q is not None and q.startswith("transformers.") for q in names.values())
    modules = [n for n, q in names.items() if q == "transformers"]
    if modules and not from_imports:
        return f"{modules[0]}.BitsAndBytesConfig", None
    return "BitsAndBytesConfig", AddImportFrom("transformers", "BitsAndBytesConfig")


def _key(op: Operation) -> tuple[object, ...]:
    values = (getattr(op, f.name) for f in fields(op))
    return (
        type(op).__name__,
        *(id(v) if isinstance(v, (ast.AST, DictItem)) else v for v in values),
    )


def _same(a: Fix | None, b: Fix | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.applicability == b.applicability and [_key(o) for o in a.operations] == [
        _key(o) for o in b.operations
    ]
