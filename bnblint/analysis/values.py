"""Static values: what the analysis knows about an expression.

Every evaluated expression becomes one of these. ``Unknown`` is explicit so that rules can tell
"absent" from "present but not statically knowable" and stay silent on the latter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: the builder and the model import this module at run time.
    import ast

    from bnblint.analysis.builder import ModelBuilder
    from bnblint.analysis.model import LoadSite
    from bnblint.analysis.syntax import Node

from dataclasses import dataclass, field
from typing import Union

# torch attribute names that are dtypes, mapped to their canonical name.
TORCH_DTYPES: dict[str, str] = {
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "float32": "float32",
    "float": "float32",
    "float64": "float64",
    "double": "float64",
    "int8": "int8",
    "uint8": "uint8",
}


@dataclass(frozen=True, eq=False)
class Unknown:
    """An expression whose value cannot be known statically."""

    node: Node | None  # an ast node, or the DictItem / keyword of an entry it stands for
    reason: str = "not statically known"


@dataclass(frozen=True, eq=False)
class MaybeAbsent(Unknown):
    """A key present on some paths only, when too many paths were merged to tell which: no
    rule may take it as present, nor as absent."""


def maybe_absent(value: Value) -> bool:
    return any(isinstance(v, MaybeAbsent) for v in flatten(value))


@dataclass(frozen=True, eq=False)
class Overridden(Unknown):
    """A key that is certainly present whose value a later unknown merge may have replaced
    (``kw["k"] = v; kw.update(opts)``): presence rules may fire on it, value rules may not."""

    previous: Value | None = None


@dataclass(frozen=True, eq=False)
class Literal:
    """A Python literal: str, int, float, bool or None."""

    value: object
    node: ast.AST | None


@dataclass(frozen=True, eq=False)
class Dtype:
    """A torch dtype, written as an attribute (``torch.float16``) or a string (``"float16"``)."""

    name: str
    node: ast.AST | None
    spelled_as_string: bool = False


@dataclass(frozen=True, eq=False)
class Symbol:
    """A module or an imported object, by qualified name (``transformers.AutoModel``)."""

    qualname: str
    node: ast.AST | None = None


@dataclass(frozen=True, eq=False)
class Entry:
    """One key of a mapping or keyword of a call: its value and where it was set."""

    value: Value
    node: Node  # the ast.keyword, DictItem or statement that set it
    # The ast.Call whose ``keywords`` hold ``node`` (an ast.keyword) or the ast.Dict holding it
    # (a DictItem); None when set by a statement or merged from several places.
    container: ast.Call | ast.Dict | None = None


@dataclass(frozen=True, eq=False)
class Mapping:
    """A dict built from a literal, ``dict(...)`` or keyword arguments.

    ``complete`` is False when part of it is unknown (a ``**splat`` of an unknown value, a
    non-literal key), so an absent key may still be present at run time.
    """

    entries: dict[str, Entry]
    node: ast.AST
    complete: bool = True

    def with_entry(self, key: str, entry: Entry) -> Mapping:
        return Mapping({**self.entries, key: entry}, self.node, self.complete)


@dataclass(frozen=True, eq=False)
class BnbConfig:
    """A transformers ``BitsAndBytesConfig(...)`` call, or a dict used as one.

    ``node`` is where the config is written (the call or the dict literal): fixes edit it there.
    Later attribute assignments (``cfg.bnb_4bit_compute_dtype = ...``) add options without
    changing ``node``, so identity of the config is identity of ``node``.
    """

    options: Mapping
    node: ast.Call | ast.Dict
    is_dict: bool = False
    owner: ModelBuilder | None = None  # the builder of the module it is written in

    @property
    def complete(self) -> bool:
        return self.options.complete

    def with_option(self, key: str, entry: Entry) -> BnbConfig:
        return BnbConfig(self.options.with_entry(key, entry), self.node, self.is_dict, self.owner)


@dataclass(frozen=True, eq=False)
class OtherConfig:
    """A quantization config of another method (GPTQ, AWQ, TorchAo, diffusers' bnb config...)."""

    qualname: str
    node: ast.AST


@dataclass(frozen=True, eq=False)
class Choice:
    """One of several values, depending on a run-time condition (``a if c else b``, branches)."""

    options: tuple[Value, ...]
    node: ast.AST | None = None
    # Set when the choice is the join of branches (``if``/``else``, ``try``, loops): then
    # ``options[branches[i]]`` is the value on branch ``i``, and every choice made by the same
    # join picks the same branch on one path (a kwargs dict and a config written in one ``if``).
    join: int | None = None
    branches: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class LoadResult:
    """The object returned by a model load (the model)."""

    site: LoadSite
    node: ast.AST | None = None


@dataclass(frozen=True, eq=False)
class Function:
    """A function defined in an analysed module; calls to it evaluate its ``return``.

    ``owner`` is the builder of the module that defines it (a function imported from another
    project module runs in that module's builder, with its globals); ``cls`` the class whose
    method it is.
    """

    node: ast.FunctionDef | ast.AsyncFunctionDef
    returns: list[Value] = field(default_factory=list)
    owner: ModelBuilder | None = None
    cls: ClassValue | None = None


@dataclass(eq=False)
class ClassValue:
    """A class defined in an analysed module.

    ``bases`` are the evaluated base classes; ``attrs`` the class-level bindings and, per
    instance attribute, every value assigned to ``self.<name>`` in its methods (in the order
    the walk met them); ``mutated`` the instance attributes changed in place somewhere
    (``self.kw.update(...)``), whose mappings are therefore open.
    """

    name: str
    node: ast.ClassDef
    bases: tuple[Value, ...] = ()
    attrs: dict[str, Value] = field(default_factory=dict)
    instance_attrs: dict[str, list[Value]] = field(default_factory=dict)
    mutated: set[str] = field(default_factory=set)
    owner: ModelBuilder | None = None
    module: str | None = None  # dotted module name, when known

    def mro(self) -> list[ClassValue]:
        out: list[ClassValue] = [self]
        for base in self.bases:
            if isinstance(base, ClassValue) and base not in out:
                out.extend(b for b in base.mro() if b not in out)
        return out

    def external_bases(self) -> list[str]:
        """Qualified names of the non-project classes it derives from, through project ones."""
        names: list[str] = []
        for cls in self.mro():
            for base in cls.bases:
                if isinstance(base, Symbol):
                    names.append(base.qualname)
        return names


@dataclass(frozen=True, eq=False)
class TrlConfig:
    """A TRL training config (``SFTConfig(model_init_kwargs=...)``): when its trainer gets a
    model id, TRL loads the model with ``from_pretrained(model_id, **model_init_kwargs)``."""

    model_init_kwargs: Value | None
    node: ast.AST


@dataclass(frozen=True, eq=False)
class Instance:
    """``self`` (or ``cls``) inside a method of a project class."""

    cls: ClassValue
    node: ast.AST | None = None


Value = Union[
    Unknown,
    Literal,
    Dtype,
    Symbol,
    Mapping,
    BnbConfig,
    OtherConfig,
    Choice,
    LoadResult,
    Function,
    ClassValue,
    Instance,
    TrlConfig,
]


def flatten(value: Value) -> list[Value]:
    """The alternatives of a value, nested choices expanded."""
    if isinstance(value, Choice):
        out: list[Value] = []
        for option in value.options:
            out.extend(flatten(option))
        return out
    return [value]


def is_none(value: Value) -> bool:
    return isinstance(value, Literal) and value.value is None


def as_dtype(value: Value) -> Dtype | None:
    """The dtype a value denotes, accepting the string spellings transformers accepts."""
    if isinstance(value, Dtype):
        return value
    if isinstance(value, Literal) and isinstance(value.value, str):
        name = TORCH_DTYPES.get(value.value)
        if name is not None and value.value == name:
            return Dtype(name, value.node, spelled_as_string=True)
    return None


def truthy(value: Value) -> bool | None:
    """True/False for a literal bool, None when unknown or not a bool."""
    if isinstance(value, Literal) and isinstance(value.value, bool):
        return value.value
    return None
