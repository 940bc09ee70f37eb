"""The bitsandbytes option catalogue the config rules share: which options exist, which
values each accepts (and what transformers raises otherwise), which mode reads which option,
and did-you-mean suggestions. Facts carry their evidence; rules carry the messages' framing."""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bnblint.analysis.model import LoadSite, Mode, ModuleModel
from bnblint.analysis.syntax import DictItem
from bnblint.analysis.values import BnbConfig, Dtype, Entry, Literal, Value, truthy
from bnblint.diagnostics import (
    AddImport,
    Applicability,
    Fix,
    Operation,
    ReplaceNode,
)

if TYPE_CHECKING:
    from bnblint.analysis.builder import ModelBuilder

# The keywords of transformers.BitsAndBytesConfig.__init__, identical in transformers 4.57.1 and
# 5.24.0 (evidence/repro_bnb008.txt). Anything else lands in its **kwargs: logged at INFO level
# ("Unused kwargs: [...]") and ignored.
VALID_OPTIONS = (
    "load_in_8bit",
    "load_in_4bit",
    "llm_int8_threshold",
    "llm_int8_skip_modules",
    "llm_int8_enable_fp32_cpu_offload",
    "llm_int8_has_fp16_weight",
    "bnb_4bit_compute_dtype",
    "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant",
    "bnb_4bit_quant_storage",
)
# Keys that ``BitsAndBytesConfig.to_dict()`` writes into a saved config.json besides the options.
# Passed back in, they are "Unused kwargs" too, but harmless: the class sets ``quant_method``
# itself and ``_load_in_*`` mirror ``load_in_*``. A dict copied from a config.json carries them.
SAVED_CONFIG_KEYS = frozenset({"quant_method", "_load_in_4bit", "_load_in_8bit"})

# Options that post_init requires to be a bool (TypeError "<name> must be a boolean"); all
# default to False.
BOOL_OPTIONS = frozenset(
    {
        "load_in_8bit",
        "load_in_4bit",
        "llm_int8_enable_fp32_cpu_offload",
        "llm_int8_has_fp16_weight",
        "bnb_4bit_use_double_quant",
    }
)
QUANT_TYPES = ("nf4", "fp4")
# Strings accepted for bnb_4bit_quant_storage (else ValueError at construction).
QUANT_STORAGE_NAMES = ("float16", "float32", "int8", "uint8", "float64", "bfloat16")
# Every attribute of torch 2.13 that is a torch.dtype: a bnb_4bit_compute_dtype string is passed
# to getattr(torch, ...), so any other string fails at construction.
TORCH_DTYPE_NAMES = frozenset(
    "bfloat16 bit bits16 bits1x8 bits2x4 bits4x2 bits8 bool cdouble cfloat chalf complex128 "
    "complex32 complex64 double float float16 float32 float4_e2m1fn_x2 float64 float8_e4m3fn "
    "float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu half int int1 int16 int2 int3 "
    "int32 int4 int5 int6 int64 int7 int8 long qint32 qint8 quint2x4 quint4x2 quint8 short uint1 "
    "uint16 uint2 uint3 uint32 uint4 uint5 uint6 uint64 uint7 uint8".split()
)
# Spellings of a floating dtype that are not torch attribute names (lower-cased, without a
# "torch." prefix), and the dtype each evidently means. None of them is a torch attribute, so
# getattr(torch, ...) raises AttributeError (evidence/repro_bnb007.txt).
DTYPE_ALIASES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}
BOTH_FLAGS = (
    "load_in_4bit and load_in_8bit are both True, but only one can be used at the same time"
)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one option's value, and the value that fixes it (Python source)."""

    message: str
    fix_code: str | None = None
    applicability: Applicability = Applicability.SAFE
    needs_torch: bool = False


def owned(config: BnbConfig, entry: Entry) -> bool:
    """The option is written in the config itself (not in a dict splatted into it)."""
    return entry.container is not None and entry.container is config.node


def versions(model: ModuleModel, config: BnbConfig) -> list[BnbConfig]:
    """The config as it reaches each load (after attribute or key assignments)."""
    return _index(model)[0].get(id(config.node), [])


def sites_of(model: ModuleModel, config: BnbConfig) -> list[LoadSite]:
    return _index(model)[1].get(id(config.node), [])


_INDEX = "_bnblint_config_index"


def _index(
    model: ModuleModel,
) -> tuple[dict[int, list[BnbConfig]], dict[int, list[LoadSite]]]:
    """Versions and sites of every config node, built once per model: asking per config was
    quadratic (2,000 loads in one file took 40 s)."""
    cached = getattr(model, _INDEX, None)
    if cached is not None and cached[0] == len(model.loads):
        return cached[1], cached[2]
    by_node: dict[int, list[BnbConfig]] = {}
    sites: dict[int, list[LoadSite]] = {}
    for site in model.loads:
        seen: set[int] = set()
        for c in site.configs:
            by_node.setdefault(id(c.node), []).append(c)
            if id(c.node) not in seen:
                seen.add(id(c.node))
                sites.setdefault(id(c.node), []).append(site)
    setattr(model, _INDEX, (len(model.loads), by_node, sites))
    return by_node, sites


def stands(model: ModuleModel, config: BnbConfig, key: str, entry: Entry) -> bool:
    """The option as written is what transformers receives.

    A ``BitsAndBytesConfig(...)`` call validates its keywords when it runs, so they always
    stand. A dict config is only read at the load: every load it reaches must get this very
    entry, from a dict the analysis fully knows (no unknown splat, no ``pop``).
    """
    if entry.container is None:  # set by a statement, or merged from several places
        return False
    if not config.is_dict:
        return True
    reaching = versions(model, config)
    return bool(reaching) and all(
        v.complete and v.options.entries.get(key) is entry for v in reaching
    )


def flag(config: BnbConfig, key: str) -> bool | None:
    """A load_in_* flag: its literal bool, False when absent, None when unknown or not a bool."""
    entry = config.options.entries.get(key)
    return False if entry is None else truthy(entry.value)


def written(
    model: ModuleModel, node: ast.expr | ast.keyword, config: BnbConfig | None = None
) -> str | None:
    """The author's text of ``node``: read in the module where ``config`` is written (another
    project module's, when the config came from there), else in this one, else in the project
    module that holds the node. None when no text at the node's span reads back as the node: a
    fix then declines rather than write other code."""
    owner = config.owner if config is not None else None
    owners = [owner] if owner is not None and owner is not model.builder else []
    for candidate in (*owners, None):
        text = _text(model, node, candidate)
        if text is not None:
            return text
    # A keyword set in another project module (a ``**kwargs`` dict imported from there).
    project = model.builder.project if model.builder is not None else None
    found = project.owner_of(node) if project is not None else None
    if found is not None and found[1] is not model.builder and found[1] not in owners:
        return _text(model, node, found[1])
    return None


def _text(
    model: ModuleModel, node: ast.expr | ast.keyword, owner: ModelBuilder | None
) -> str | None:
    """The text at the span of ``node`` in the owner's module, if it reads back as ``node``."""
    try:
        text = model.source_of(node, owner)
    except (IndexError, ValueError):
        return None  # the span lies outside that text
    return text if _reads_as(text, node) else None


def source(
    model: ModuleModel, node: ast.expr | ast.keyword, config: BnbConfig | None = None
) -> str:
    """The author's text of ``node`` where it can be found (see ``written``), else the
    expression as ``ast`` writes it: for messages."""
    text = written(model, node, config)
    return text if text is not None else ast.unparse(node)


def _reads_as(text: str, node: ast.expr | ast.keyword) -> bool:
    """``text`` parses back to ``node`` (positions aside)."""
    try:
        if isinstance(node, ast.keyword):
            call = ast.parse(f"f(\n{text}\n)", mode="eval").body
            parsed: ast.AST | None = None
            if isinstance(call, ast.Call) and len(call.keywords) == 1 and not call.args:
                parsed = call.keywords[0]
        else:
            parsed = ast.parse(f"(\n{text}\n)", mode="eval").body
    except (SyntaxError, ValueError):
        return False
    return parsed is not None and ast.dump(parsed) == ast.dump(node)


# Where a value is written as a keyword argument or a dict value, these need parentheses; as
# the condition of ``a if <condition> else b`` (an or-test), conditionals and lambdas too.
_NEEDS_PARENS = (ast.NamedExpr, ast.Yield, ast.YieldFrom)
_NEEDS_PARENS_AS_CONDITION = (*_NEEDS_PARENS, ast.IfExp, ast.Lambda)


def operand(text: str, node: ast.expr, condition: bool = False) -> str:
    """``text``, the source of ``node`` (which never holds the parentheses around it),
    parenthesized where it is to be written as a keyword or dict value, or as a condition."""
    kinds = _NEEDS_PARENS_AS_CONDITION if condition else _NEEDS_PARENS
    return f"({text})" if isinstance(node, kinds) else text


_STRING_START = re.compile("([A-Za-z]*)('''|\"\"\"|'|\")")
_LAYOUT = frozenset({tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT})


def string_parts(text: str) -> tuple[str, str] | None:
    """(prefix, quote) when ``text`` is one string literal (not an implicit concatenation)."""
    match = _STRING_START.match(text)
    if match is None:
        return None
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in _LAYOUT and t.type != tokenize.ENDMARKER
        ]
    except (tokenize.TokenError, SyntaxError):
        return None
    if len(tokens) != 1 or tokens[0].type != tokenize.STRING or tokens[0].string != text:
        return None
    return match.group(1), match.group(2)


def renamed(text: str, name: str) -> str | None:
    """``text``, the source of a keyword argument, with the keyword renamed to ``name``: the
    rest (spaces around ``=``, the value) as written."""
    match = re.match(r"\w+", text)
    return name + text[match.end() :] if match is not None else None


def quoted(text: str, literal: str | None = None) -> str:
    """``text`` as a string literal, in the quotes of ``literal`` (the source of the string
    it replaces) when that is a plain string: no prefix, not triple-quoted."""
    quote = '"'
    parts = string_parts(literal) if literal is not None else None
    if parts is not None and parts[0] == "" and len(parts[1]) == 1:
        quote = parts[1]
    return f"{quote}{text}{quote}"


def _string_source(model: ModuleModel, node: ast.expr, config: BnbConfig) -> str | None:
    """The source of a string literal, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return written(model, node, config)
    return None


def describe(key: str, value_node: ast.expr, model: ModuleModel, config: BnbConfig) -> str:
    shown = source(model, value_node, config)
    if len(shown) > 40 or "\n" in shown:
        shown = "..."
    return f"`{key}={shown}`"


@dataclass(frozen=True)
class _Shown:
    """``describe`` for a message, read only when a message is made (most values are fine)."""

    key: str
    value_node: ast.expr
    model: ModuleModel
    config: BnbConfig

    def __str__(self) -> str:
        return describe(self.key, self.value_node, self.model, self.config)


class _TorchDtype:
    """Stands for a ``torch.<dtype>`` value among the literal values that ``check_value`` sees."""


TORCH_DTYPE = _TorchDtype()


def _kind(value: object) -> str:
    if value is None:
        return "None"
    if value is TORCH_DTYPE:
        return "a torch dtype"
    names = {str: "a string", int: "an int", float: "a float", bool: "a bool"}
    return names.get(type(value), f"a {type(value).__name__}")


def check_value(
    key: str,
    value: Value,
    value_node: ast.expr,
    config: BnbConfig,
    model: ModuleModel,
    mode: Mode,
) -> Problem | None:
    """The problem with one literal option value, or None (unknown values are never wrong)."""
    if isinstance(value, Dtype):
        v: object = TORCH_DTYPE
    elif isinstance(value, Literal):
        v = value.value
    else:
        return None
    shown = _Shown(key, value_node, model, config)
    where = "the load" if config.is_dict else "`BitsAndBytesConfig`"
    if key in BOOL_OPTIONS and not isinstance(v, bool):
        other = {"load_in_4bit": "load_in_8bit", "load_in_8bit": "load_in_4bit"}.get(key)
        other_entry = config.options.entries.get(other) if other else None
        if (
            v
            and other_entry is not None
            and isinstance(other_entry.value, Literal)
            and other_entry.value.value
        ):
            exc = f"ValueError: {BOTH_FLAGS}"  # checked before the types
        else:
            exc = f"TypeError: {key} must be a boolean"
        fix = None
        if isinstance(v, str) and v in ("True", "true", "False", "false"):
            fix = str(v.lower() == "true")
        elif type(v) is int and v in (0, 1):
            fix = str(bool(v))
        elif v is None:
            fix = "False"  # None means "the default", which is False
        return Problem(f"{shown} is {_kind(v)}, not a bool: {where} raises `{exc}`", fix)
    if key == "llm_int8_threshold" and not isinstance(v, float):
        fix = None
        if type(v) is int:
            fix = repr(float(v))
        elif v is None:
            fix = "6.0"  # the default
        elif isinstance(v, str):
            try:
                number = float(v)
            except ValueError:
                number = None
            if number is not None and number == number and abs(number) != float("inf"):
                fix = repr(number)
        exc = "TypeError: llm_int8_threshold must be a float"
        return Problem(f"{shown} is {_kind(v)}, not a float: {where} raises `{exc}`", fix)
    if key == "llm_int8_skip_modules" and v is not None and not isinstance(v, list):
        fix = None
        if isinstance(v, str) and v and not any(c in v for c in ", \t\n"):
            text = written(model, value_node, config)
            fix = f"[{text}]" if text is not None else None
        elif isinstance(v, tuple) and isinstance(value_node, ast.Tuple):
            items = [written(model, e, config) for e in value_node.elts]
            texts = [t for t in items if t is not None]
            fix = f"[{', '.join(texts)}]" if len(texts) == len(items) else None
        exc = "TypeError: llm_int8_skip_modules must be a list of strings"
        return Problem(f"{shown} is {_kind(v)}, not a list: {where} raises `{exc}`", fix)
    if key == "bnb_4bit_compute_dtype" and v is not None and v is not TORCH_DTYPE:
        if not isinstance(v, str):
            exc = "ValueError: bnb_4bit_compute_dtype must be a string or a torch.dtype"
            return Problem(f"{shown} is {_kind(v)}: {where} raises `{exc}`")
        if v in TORCH_DTYPE_NAMES:
            return None
        return _compute_dtype_problem(shown, where, v, value_node, config, model)
    if key == "bnb_4bit_quant_storage" and v is not None and v is not TORCH_DTYPE:
        if not isinstance(v, str):
            exc = "ValueError: bnb_4bit_quant_storage must be a string or a torch.dtype"
            return Problem(f"{shown} is {_kind(v)}: {where} raises `{exc}`")
        if v in QUANT_STORAGE_NAMES:
            return None
        name = DTYPE_ALIASES.get(_normalized(v))
        literal = _string_source(model, value_node, config)
        fix = quoted(name, literal) if name in QUANT_STORAGE_NAMES else None
        accepted = ", ".join(repr(n) for n in QUANT_STORAGE_NAMES)
        return Problem(f"{shown} is not one of {accepted}: {where} raises `ValueError`", fix)
    if key == "bnb_4bit_quant_type":
        if not isinstance(v, str):
            fix = quoted("fp4") if v is None else None  # None means the default, "fp4"
            exc = "TypeError: bnb_4bit_quant_type must be a string"
            return Problem(f"{shown} is {_kind(v)}, not a string: {where} raises `{exc}`", fix)
        if v in QUANT_TYPES or mode != "4bit":
            return None  # an 8-bit load never reads it
        normalized = v.strip().lower()
        literal = _string_source(model, value_node, config)
        fix = quoted(normalized, literal) if normalized in QUANT_TYPES else None
        exc = f"ValueError: quant_type must be 'nf4' or 'fp4', got {v!r}"
        return Problem(
            f'{shown} is not "nf4" or "fp4": the 4-bit load fails with `{exc}` '
            "(a RuntimeError on transformers 5)",
            fix,
        )
    return None


def _normalized(text: str) -> str:
    text = text.strip().lower()
    return text[len("torch.") :] if text.startswith("torch.") else text


def _compute_dtype_problem(
    shown: _Shown,
    where: str,
    text: str,
    value_node: ast.expr,
    config: BnbConfig,
    model: ModuleModel,
) -> Problem:
    normalized = _normalized(text)
    if normalized in DTYPE_ALIASES or normalized == "auto" or not text.isidentifier():
        fails = f"raises `AttributeError: module 'torch' has no attribute {text!r}`"
    else:  # maybe a torch attribute that is not a dtype: TypeError instead
        fails = f"fails on `getattr(torch, {text!r})`"
    message = f"{shown} is not a torch dtype name: {where} {fails}"
    name = DTYPE_ALIASES.get(normalized)
    applicability = Applicability.SAFE
    if name is None and normalized == "auto":
        # "auto" means "the model's dtype": known only from the loads this config reaches.
        dtypes = {s.known_dtype.name if s.known_dtype else None for s in sites_of(model, config)}
        if len(dtypes) == 1 and None not in dtypes:
            name = dtypes.pop()
            applicability = Applicability.UNSAFE
    if name is None:
        return Problem(message)
    if config.is_dict:
        literal = _string_source(model, value_node, config)
        return Problem(message, quoted(name, literal), applicability)
    torch_alias = model.torch_alias_for(config)
    alias = torch_alias or "torch"
    return Problem(message, f"{alias}.{name}", applicability, torch_alias is None)


def value_fix(problem: Problem, entry: Entry, model: ModuleModel, config: BnbConfig) -> Fix | None:
    """Replace the value of ``entry`` (a keyword argument or dict item) by the problem's fix."""
    node = entry.node
    if problem.fix_code is None or not isinstance(node, (ast.keyword, DictItem)):
        return None
    target: ast.expr | ast.keyword | DictItem = node.value
    code = problem.fix_code
    if isinstance(node.value, ast.Tuple):
        # A tuple's parentheses belong to it (LibCST leaves them out of its span, ast does
        # not): replace the whole keyword or dict entry.
        if isinstance(node, ast.keyword) and node.arg is not None:
            target, code = node, f"{node.arg}={code}"
        elif isinstance(node, DictItem) and node.key is not None:
            key = written(model, node.key, config)
            if key is None:
                return None
            target, code = node, f"{key}: {code}"
    ops: list[Operation] = [ReplaceNode(target, code)]
    if problem.needs_torch:
        ops.append(AddImport("torch"))
    return Fix(f"Replace with `{problem.fix_code}`", problem.applicability, tuple(ops))


# Options that only the 4-bit layers read (integrations/bitsandbytes.py builds Linear4bit from
# them, Linear8bitLt from the llm_int8_* ones). Not bnb_4bit_quant_storage: the Trainer's FSDP
# setup reads it for any bitsandbytes model (transformers 4.57 trainer.py, 5.x
# distributed/fsdp.py), so it is not dead in an 8-bit config.
OPTIONS_4BIT_ONLY = ("bnb_4bit_compute_dtype", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant")
# Options that only LLM.int8() reads. llm_int8_skip_modules and llm_int8_enable_fp32_cpu_offload
# apply to 4-bit too (despite their names).
OPTIONS_8BIT_ONLY = ("llm_int8_threshold", "llm_int8_has_fp16_weight")


def dead_options(mode: Mode) -> tuple[str, ...]:
    """The options that a config of this mode ignores."""
    if mode == "8bit":
        return OPTIONS_4BIT_ONLY
    if mode == "4bit":
        return OPTIONS_8BIT_ONLY
    return ()


SUGGEST_CUTOFF = 0.6  # difflib's default: below it, no "did you mean"
RENAME_MIN_RATIO = 0.85  # a fix needs a close match...
RENAME_MIN_GAP = 0.05  # ...clearly closer than the next valid name


def ranked(key: str) -> list[tuple[float, str]]:
    return sorted(
        ((difflib.SequenceMatcher(None, key, name).ratio(), name) for name in VALID_OPTIONS),
        reverse=True,
    )


def suggestions(key: str) -> list[str]:
    """The nearest valid option, or the two nearest when they are about as close."""
    best = ranked(key)
    if best[0][0] < SUGGEST_CUTOFF:
        return []
    close = [name for ratio, name in best[:2] if best[0][0] - ratio < RENAME_MIN_GAP]
    return close if close[1:] and best[1][0] >= SUGGEST_CUTOFF else close[:1]
