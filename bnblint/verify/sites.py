"""The bitsandbytes load sites of a file and their arguments, built statically.

Each site's keyword arguments are built twice from the analysis model: as written, and as
``bnblint check --fix --unsafe-fixes`` would rewrite the file. Nothing is guessed: an argument
the analysis does not know (a parameter, an argparse value, an unknown ``**kwargs``) makes the
site skipped, with the reason naming the argument. Values that cannot cross a process boundary
as JSON (torch dtypes, ``BitsAndBytesConfig(...)``) become marker objects that the worker turns
into the real thing.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bnblint.analysis.builder import build_model
from bnblint.analysis.model import LoadSite, State
from bnblint.analysis.syntax import Positions, string_value
from bnblint.analysis.values import (
    BnbConfig,
    Choice,
    Dtype,
    Literal,
    Mapping,
    OtherConfig,
    Value,
    flatten,
    is_none,
)
from bnblint.parse import parse_failure
from bnblint.pipeline import lint_text, parse_ast
from bnblint.settings import Settings
from bnblint.verify import MARK

LEGACY = ("load_in_4bit", "load_in_8bit")
# device_map strings that name no GPU: kept as written when verifying on the CPU.
GPU_FREE = frozenset({"auto", "balanced", "balanced_low_0", "sequential", "cpu", "disk", "meta"})


class Skip(Exception):
    """Why a site cannot be verified; the message names the argument."""


class SiteError(Exception):
    """The file cannot be analysed (it does not parse)."""


@dataclass
class Variant:
    """One version of the call: its keyword arguments, or why they are not known."""

    kwargs: dict[str, Any] | None = None  # JSON-able, with MARK objects
    skip: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Site:
    line: int
    column: int
    api: str  # "from_pretrained" or "pipeline"
    receiver: str | None  # qualified class name, when known
    callee: str  # the called expression as written: "AutoModelForCausalLM.from_pretrained"
    model_id: str | None  # the model id when it is a string known statically
    task: str | None  # pipeline task
    original: Variant
    fixed: Variant
    skip: str | None = None  # why the site cannot be verified at all

    @property
    def class_name(self) -> str | None:
        return self.receiver.rsplit(".", 1)[-1] if self.receiver else None

    @property
    def changed(self) -> bool:
        return self.original.kwargs != self.fixed.kwargs

    @property
    def reason(self) -> str | None:
        """Why the site is skipped: its own reason, else the first variant's."""
        if self.skip:
            return self.skip
        if self.original.skip:
            return self.original.skip
        if self.fixed.skip:
            return f"{self.fixed.skip} in the fixed call"
        return None


@dataclass
class _Parsed:
    positions: Positions
    loads: list[tuple[LoadSite, int, int]]  # site, line, column (1-based), in file order
    constants: dict[str, str]


def find_sites(text: str, filename: str, settings: Settings) -> list[Site]:
    """Every bitsandbytes load site of ``text``, with its arguments as written and as fixed."""
    original = _parse(text)
    result = lint_text(text, filename, settings, fix=True, unsafe_fixes=True)
    if result.error is not None:
        raise SiteError(result.error)
    fixed_text = result.fixed_text if result.fixed_text is not None else text
    fixed = original if fixed_text == text else _parse(fixed_text)
    # Fixes edit arguments and imports, never add or remove a load, so the n-th load of the
    # fixed file is the n-th load of the original.
    matched = len(fixed.loads) == len(original.loads)
    sites = []
    for i, (load, line, column) in enumerate(original.loads):
        if not is_bnb_site(load):
            continue
        site = _site(load, line, column, original)
        if not matched:
            site.fixed = Variant(skip="the fixed file's loads could not be matched to these")
        elif fixed is original:
            site.fixed = site.original
        else:
            site.fixed = _site(fixed.loads[i][0], line, column, fixed).original
        sites.append(site)
    return sites


def is_bnb_site(site: LoadSite) -> bool:
    """A load that bitsandbytes quantization reaches, or may reach."""
    if site.quantization is not None and site.quantization_state is State.KNOWN:
        return True
    entries = site.kwargs.entries
    if site.configs or any(k in entries for k in LEGACY):
        return True
    if "quantization_config" in entries and site.quantization_state is State.UNKNOWN:
        return True  # reported as skipped, naming the unknown config
    return any(isinstance(v, BnbConfig) for e in entries.values() for v in flatten(e.value))


def _parse(text: str) -> _Parsed:
    try:
        tree = parse_ast(text)
    except (SyntaxError, ValueError, MemoryError) as exc:
        raise SiteError(parse_failure(exc)) from exc
    model = build_model(tree, text)
    positions = Positions(text)
    loads = []
    for site in model.loads:
        row, column, _, _ = positions.span(site.call)
        loads.append((site, row, column))
    loads.sort(key=lambda item: (item[1], item[2]))  # functions are walked after the module
    return _Parsed(positions, loads, _string_constants(tree))


def _site(load: LoadSite, line: int, column: int, parsed: _Parsed) -> Site:
    site = Site(
        line=line,
        column=column,
        api=load.api,
        receiver=load.receiver,
        callee=parsed.positions.segment(load.call.func),
        model_id=None,
        task=None,
        original=Variant(),
        fixed=Variant(),
    )
    try:
        if load.api == "pipeline":
            site.task, site.model_id, entries = _pipeline_arguments(load, parsed.constants)
        else:
            site.model_id, entries = _model_arguments(load, parsed.constants)
    except Skip as exc:
        site.skip = str(exc)
        return site
    site.original = _variant(entries, load.kwargs.complete)
    return site


def _variant(entries: dict[str, Value], complete: bool) -> Variant:
    variant = Variant()
    if not complete:
        variant.skip = "its keyword arguments are not all statically known (an unknown `**` splat)"
        return variant
    try:
        variant.kwargs = {k: _convert(k, v, variant.notes) for k, v in entries.items()}
    except Skip as exc:
        variant.skip = str(exc)
    return variant


def _positional(load: LoadSite) -> list[ast.expr]:
    if any(isinstance(a, ast.Starred) for a in load.call.args):
        raise Skip("its `*args` are not statically known")
    return list(load.call.args)


def _model_arguments(
    load: LoadSite, constants: dict[str, str]
) -> tuple[str | None, dict[str, Value]]:
    name = load.receiver
    if name is None:
        raise Skip("the model class is not statically known")
    if "." in name and not name.startswith("transformers."):
        raise Skip(f"`{name}` is not a transformers class")
    positional = _positional(load)
    if len(positional) > 1:
        raise Skip("positional arguments after the model id are not supported")
    entries = {k: e.value for k, e in load.kwargs.entries.items()}
    given = entries.pop("pretrained_model_name_or_path", None)
    if positional:
        return _string(positional[0], constants), entries
    return _literal_string(given), entries


def _pipeline_arguments(
    load: LoadSite, constants: dict[str, str]
) -> tuple[str | None, str | None, dict[str, Value]]:
    positional = _positional(load)
    if len(positional) > 2:
        raise Skip("positional arguments after the task and model are not supported")
    inner = load.model_kwargs
    # ``load.kwargs`` merges model_kwargs into the pipeline's own keywords (what reaches the
    # model); the call needs them apart again.
    own = {
        k: e.value
        for k, e in load.kwargs.entries.items()
        if inner is None or inner.entries.get(k) is not e
    }
    if inner is not None:
        own["model_kwargs"] = inner
    task_value = own.pop("task", None)
    model_value = own.pop("model", None)
    task = _string(positional[0], constants) if positional else _literal_string(task_value)
    if len(positional) > 1:
        model = _string(positional[1], constants)
    elif model_value is None:
        model = None
    else:
        model = _literal_string(model_value)
        if model is None:
            raise Skip("`model` is not a model id known statically")
    if task is None and (positional or task_value is not None):
        raise Skip("the pipeline task is not statically known")
    return task, model, own


def _literal_string(value: Value | None) -> str | None:
    if isinstance(value, Literal) and isinstance(value.value, str):
        return value.value
    return None


def _string(node: ast.expr, constants: dict[str, str]) -> str | None:
    value = string_value(node)
    if value is not None:
        return value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _convert(name: str, value: Value, notes: list[str]) -> Any:
    """A JSON-able form of ``value``, or Skip naming the argument."""
    if isinstance(value, Choice):
        return _choice(name, value, notes)
    if isinstance(value, Literal):
        v = value.value
        return list(v) if isinstance(v, tuple) else v
    if isinstance(value, Dtype):
        return {MARK: "dtype", "name": value.name}
    if isinstance(value, BnbConfig):
        if not value.complete:
            raise Skip(f"`{name}` is not statically known (set partly by code not followed)")
        entries = value.options.entries
        options = {k: _convert(f"{name}.{k}", e.value, notes) for k, e in entries.items()}
        return options if value.is_dict else {MARK: "BitsAndBytesConfig", "options": options}
    if isinstance(value, Mapping):
        if not value.complete:
            raise Skip(f"`{name}` is not statically known (an unknown `**` splat or key)")
        return {k: _convert(f"{name}[{k!r}]", e.value, notes) for k, e in value.entries.items()}
    if isinstance(value, OtherConfig):
        raise Skip(f"`{name}` is a {value.qualname.rsplit('.', 1)[-1]}, not bitsandbytes")
    raise Skip(f"`{name}` is not statically known")


def _choice(name: str, value: Choice, notes: list[str]) -> Any:
    options = flatten(value)
    if name == "quantization_config" or name.endswith("['quantization_config']"):
        real: list[Value] = []
        for option in options:
            if not is_none(option) and not any(option is r for r in real):
                real.append(option)
        if len(real) == 1:
            if len(real) < len(options):
                notes.append(
                    f"`{name}` is None on another path: verified as when quantization is enabled"
                )
            return _convert(name, real[0], notes)
        if not real:
            return None
        raise Skip(f"`{name}` depends on a run-time condition")
    converted = [_convert(name, o, notes) for o in options]
    if all(c == converted[0] for c in converted):
        return converted[0]
    raise Skip(f"`{name}` depends on a run-time condition")


def _binding_counts(tree: ast.Module) -> Counter[str]:
    """How often each name is bound anywhere in the module (assignments, loops, parameters,
    ``as`` names)."""
    counts: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            counts[node.id] += 1
        elif isinstance(node, ast.arg):
            counts[node.arg] += 1
        elif isinstance(node, ast.alias) and node.asname is not None:
            counts[node.asname] += 1
        elif isinstance(node, ast.ExceptHandler) and node.name is not None:
            counts[node.name] += 1
    return counts


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` bound nowhere else: a model id is often one
    (``MODEL_ID = "meta-llama/..."``), and the analysis keeps no positional arguments."""
    counts = _binding_counts(tree)
    constants = {}
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            name = stmt.targets[0].id
            value = string_value(stmt.value)
            if value is not None and counts[name] == 1:
                constants[name] = value
    return constants


# -- adapting the arguments to where they are verified ---------------------------------------


def _names_gpu(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, str):
        return value not in GPU_FREE and (value.startswith("cuda") or value.isdigit())
    return False


def _cpu_placement(value: Any) -> Any:
    if isinstance(value, dict) and MARK not in value:
        return {k: "cpu" if _names_gpu(v) else v for k, v in value.items()}
    return "cpu" if _names_gpu(value) else value


def for_cpu(kwargs: dict[str, Any], api: str) -> tuple[dict[str, Any], list[str]]:
    """``device_map``/``device`` values that name a GPU, replaced by ``"cpu"``."""
    out = dict(kwargs)
    notes = []
    keys = ["device_map", "device"] if api == "pipeline" else ["device_map"]
    places: list[tuple[dict[str, Any], str, str]] = [(out, k, k) for k in keys]
    inner = out.get("model_kwargs")
    if api == "pipeline" and isinstance(inner, dict) and "device_map" in inner:
        out["model_kwargs"] = inner = dict(inner)
        places.append((inner, "device_map", "model_kwargs['device_map']"))
    for holder, key, label in places:
        if key not in holder:
            continue
        new = _cpu_placement(holder[key])
        if new != holder[key]:
            notes.append(
                f"`{label}={describe(holder[key])}` replaced by `{describe(new)}` "
                "in both calls: no CUDA here"
            )
            holder[key] = new
    return out, notes


# Arguments with which a load runs code shipped with the model, and what each would do.
MODEL_CODE = {
    "trust_remote_code": "run the model directory's own code",
    # torch.load with weights_only=False unpickles, and a pickle can call anything.
    "weights_only": "unpickle the model's weight files, which can run code hidden in them",
}


def model_code_argument(kwargs: dict[str, Any], where: str = "") -> tuple[str, str] | None:
    """``("trust_remote_code=True", why)`` for the first argument, at any depth (a pipeline's
    ``model_kwargs``), that lets the load run code from the model's files; else None."""
    for key, value in kwargs.items():
        label = f"{where}[{key!r}]" if where else key
        if key == "trust_remote_code" and value not in (False, None):
            return f"{label}={describe(value)}", MODEL_CODE[key]
        if key == "weights_only" and value is not True:
            return f"{label}={describe(value)}", MODEL_CODE[key]
        if isinstance(value, dict) and MARK not in value:
            found = model_code_argument(value, label)
            if found is not None:
                return found
    return None


# Arguments that locate the files on the Hub; meaningless for a stand-in or a local directory.
HUB_ARGUMENTS = (
    "revision",
    "subfolder",
    "cache_dir",
    "token",
    "use_auth_token",
    "force_download",
    "proxies",
    "local_files_only",
    "code_revision",
)


def without_hub_arguments(
    kwargs: dict[str, Any], model_id: str | None, path: str
) -> tuple[dict[str, Any], list[str]]:
    """Drop Hub location arguments, and point a ``tokenizer`` that names the model at ``path``."""
    out = {k: v for k, v in kwargs.items() if k not in HUB_ARGUMENTS}
    dropped = [k for k in kwargs if k in HUB_ARGUMENTS]
    notes = []
    if dropped:
        notes.append(f"ignored for the local model: {', '.join(f'`{k}`' for k in dropped)}")
    if model_id is not None and out.get("tokenizer") == model_id:
        out["tokenizer"] = path
    return out, notes


def describe(value: Any) -> str:
    """``value`` as it would be written in Python (dtypes and configs included)."""
    if isinstance(value, dict):
        if value.get(MARK) == "dtype":
            return f"torch.{value['name']}"
        if value.get(MARK) == "BitsAndBytesConfig":
            options = ", ".join(f"{k}={describe(v)}" for k, v in value["options"].items())
            return f"BitsAndBytesConfig({options})"
        return "{" + ", ".join(f"{json.dumps(k)}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def changes(original: dict[str, Any], fixed: dict[str, Any]) -> list[str]:
    """What the fix changed, one line per argument."""
    out = []
    for key in original:
        if key not in fixed:
            out.append(f"- {key}={describe(original[key])}")
        elif fixed[key] != original[key]:
            out.append(f"~ {key}: {describe(original[key])} -> {describe(fixed[key])}")
    out.extend(f"+ {key}={describe(fixed[key])}" for key in fixed if key not in original)
    return out
