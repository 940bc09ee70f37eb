"""The analysis model that rules read: load sites and the quantization that reaches them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: the builder imports this module at run time.
    import ast

    from bnblint.analysis.builder import Hop, ModelBuilder
    from bnblint.analysis.syntax import Node

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Literal as L

from bnblint.analysis.context import distributed_reason
from bnblint.analysis.syntax import Positions
from bnblint.analysis.values import (
    BnbConfig,
    Entry,
    Mapping,
    OtherConfig,
    Overridden,
    Unknown,
    Value,
    as_dtype,
    flatten,
    is_none,
    truthy,
)
from bnblint.analysis.values import Dtype as DtypeValue

Mode = L["4bit", "8bit", "unknown"]
# How messages name a known mode.
MODE_LABELS: dict[str, str] = {"4bit": "4-bit", "8bit": "8-bit"}


class State(Enum):
    ABSENT = "absent"
    KNOWN = "known"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Field:
    """An argument of a load: absent, present with a known value, or present but unknown."""

    state: State
    value: Value | None = None
    node: Node | None = None  # the ast.keyword / DictItem / statement that sets it

    @property
    def absent(self) -> bool:
        return self.state is State.ABSENT

    @property
    def known(self) -> bool:
        return self.state is State.KNOWN


@dataclass(frozen=True)
class Quantization:
    """The bitsandbytes quantization that reaches a load site."""

    config: BnbConfig | None  # None when requested by legacy ``load_in_*`` keywords only
    mode: Mode
    conditional: bool = False  # reached on one branch only (``cfg if flag else None``)
    legacy: dict[str, Entry] = field(default_factory=dict)  # load_in_* given to the load itself


def config_mode(config: BnbConfig) -> Mode:
    """4-bit, 8-bit or unknown, as transformers would decide for this config."""
    entries = config.options.entries
    flags: dict[str, bool | None] = {}
    for key in ("load_in_4bit", "load_in_8bit"):
        entry = entries.get(key)
        flags[key] = False if entry is None else truthy(entry.value)
    if flags["load_in_4bit"] is None or flags["load_in_8bit"] is None:
        return "unknown"
    if flags["load_in_4bit"] and not flags["load_in_8bit"]:
        return "4bit"
    if flags["load_in_8bit"] and not flags["load_in_4bit"]:
        return "8bit"
    if not flags["load_in_4bit"] and not flags["load_in_8bit"]:
        if not config.complete:
            return "unknown"
        # BitsAndBytesConfig() with neither flag quantizes to 4-bit (evidence/README.md); a dict
        # with neither flag is not a bitsandbytes request we can recognise.
        return "unknown" if config.is_dict else "4bit"
    return "unknown"  # both set: invalid, a later rule reports it


@dataclass
class LoadSite:
    """A call that loads a model: ``<cls>.from_pretrained(...)`` or ``pipeline(...)``."""

    call: ast.Call
    api: L["from_pretrained", "pipeline", "trl"]  # trl: a trainer given a model id
    receiver: str | None  # qualified name of the class, when known
    kwargs: Mapping  # every keyword that reaches the model load, splats and model_kwargs merged
    # The function, class body or module the call is in.
    scope: ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    quantization: Quantization | None = None
    quantization_state: State = State.ABSENT
    # Every bitsandbytes config that may reach this load, even when its mode is unknown.
    configs: list[BnbConfig] = field(default_factory=list)
    # pipeline(model_kwargs=...) as evaluated, when it is a known mapping: its entries (also in
    # ``kwargs``) reach the model's from_pretrained; the pipeline's own keywords do not.
    model_kwargs: Mapping | None = None
    # Quantization keywords given to pipeline() itself, which never reach the model.
    ignored: dict[str, Entry] = field(default_factory=dict)
    # The nested blocks the call is in: the id of the function (or class) node whose body holds
    # it, then the id of each statement list it is nested in (``id(node.body)``,
    # ``id(node.orelse)``, ``id(handler.body)``, ``id(node.finalbody)``, ``id(case.body)``; an
    # ``elif`` adds no block of its own, its body does); empty at module level. A statement
    # with the same ``block`` runs exactly when it does.
    block: tuple[int, ...] = ()
    # The calls with known arguments through which this load was reached (outermost first);
    # empty for the load as its own function sees it.
    via: tuple[Hop, ...] = ()
    # The keywords per path when a ``**splat`` differs between branches (the builder makes one
    # site of each); empty when ``kwargs`` is the only one.
    alternatives: list[Mapping] = field(default_factory=list)
    # Written as an mmengine lazy config, ``dict(type=X.from_pretrained, ...)``: the keywords
    # are the dict's, the registry makes the call.
    lazy: bool = False

    def field(self, *names: str) -> Field:
        """The first of ``names`` that the load receives (``dtype``/``torch_dtype``)."""
        for name in names:
            entry = self.kwargs.entries.get(name)
            if entry is not None:
                state = State.UNKNOWN if _is_unknown(entry.value) else State.KNOWN
                return Field(state, entry.value, entry.node)
        if not self.kwargs.complete:
            return Field(State.UNKNOWN)
        return Field(State.ABSENT)

    @property
    def device_map(self) -> Field:
        if self.api == "pipeline":
            device = self.field("device")
            if not device.absent:  # an explicit device is a placement choice
                return device
        return self.field("device_map")

    @property
    def dtype(self) -> Field:
        return self.field("dtype", "torch_dtype")

    @property
    def known_dtype(self) -> DtypeValue | None:
        d = self.dtype
        return as_dtype(d.value) if d.known and d.value is not None else None


def _is_unknown(value: Value) -> bool:
    return any(isinstance(v, Unknown) for v in flatten(value))


@dataclass(frozen=True)
class ModelUse:
    """A method call on the result of a load (``model.half()``, ``model.to(torch.float16)``)."""

    site: LoadSite
    method: str
    call: ast.Call
    args: tuple[Value, ...]  # positional arguments, evaluated
    kwargs: Mapping  # keyword arguments, evaluated
    # The simple (not compound) statement holding the call, if it is in one; None for a call in
    # the header of a compound statement (an ``if`` test, a ``for`` iterable, a ``with`` item).
    statement: ast.stmt | None
    whole_statement: bool = False  # the statement is just this call (``model.half()``)
    assigned_to: str | None = None  # ``name = <this call>``
    block: tuple[int, ...] = ()  # as ``LoadSite.block``


@dataclass
class ModuleModel:
    """Everything the rules may read about one module."""

    module: ast.Module
    loads: list[LoadSite]
    uses: list[ModelUse]
    torch_alias: str | None  # the module-level name bound to ``torch``, if any
    source: str
    # Every transformers BitsAndBytesConfig(...) written in the module, and every dict that
    # reaches a load as its quantization_config, as first written (before later mutations).
    configs: list[BnbConfig] = field(default_factory=list)
    # Every name bound at module level, with the qualified name of the module or object it was
    # imported as (``{"tf": "transformers", "BnbConfig": "transformers.BitsAndBytesConfig"}``),
    # or None for other bindings.
    module_names: dict[str, str | None] = field(default_factory=dict)
    builder: ModelBuilder | None = None  # the builder that built it

    # A notebook is one process: only ``notebook_launcher`` starts more.
    notebook: bool = False

    @cached_property
    def positions(self) -> Positions:
        """Rows and character columns of this module's nodes (of ``source``)."""
        builder = self.builder
        if builder is not None and builder.source is self.source:
            return builder.positions
        return Positions(self.source)

    def source_of(self, node: Node, owner: ModelBuilder | None = None) -> str:
        """The exact source text of an expression node (without the parentheses around it):
        from ``owner``'s module when given and not this module's builder (a node of another
        project module, e.g. a config written there), else from this module."""
        if owner is not None and owner is not self.builder:
            return owner.positions.segment(node)
        return self.positions.segment(node)

    @cached_property
    def distributed(self) -> str | None:
        """Why this looks like a distributed-training file, if it does: its own code, or a
        distributed-training entry point of the project that imports it."""
        if self.notebook:
            return "it uses `notebook_launcher`" if "notebook_launcher" in self.source else None
        own = distributed_reason(self.source)
        if own is not None:
            return own
        builder = self.builder
        if builder is None or builder.project is None or builder.path is None:
            return None
        entry = builder.project.distributed_entry(builder.path)
        if entry is None:
            return None
        return f"imported by `{entry[0]}`, which {entry[1].removeprefix('it ')}"

    def torch_alias_for(self, config: BnbConfig) -> str | None:
        """The name bound to ``torch`` in the module where ``config`` is written (another
        project module's, when the config came from there), for fixes that write a dtype."""
        owner = config.owner
        env = owner.module_env if owner is not None else None
        if owner is None or owner is self.builder or env is None:
            return self.torch_alias
        alias = None
        for name, value in env.vars.items():
            if getattr(value, "qualname", None) == "torch" and (alias is None or name == "torch"):
                alias = name
        return alias

    def quantized_loads(self) -> Iterator[LoadSite]:
        for site in self.loads:
            if site.quantization is not None and site.quantization_state is State.KNOWN:
                yield site


def resolve_quantization(site: LoadSite) -> None:
    """Fill ``site.quantization`` from its keywords."""
    entries = site.kwargs.entries
    legacy: dict[str, Entry] = {
        k: entries[k] for k in ("load_in_4bit", "load_in_8bit") if k in entries
    }
    qc = entries.get("quantization_config")
    if qc is None:
        if not site.kwargs.complete and not legacy:
            site.quantization_state = State.UNKNOWN
            return
        if legacy:
            _resolve_legacy(site, legacy)
        return
    options = flatten(qc.value)
    non_none = [v for v in options if not is_none(v)]
    site.configs = [v for v in non_none if isinstance(v, BnbConfig)]
    if not non_none:
        return  # quantization_config=None
    if all(isinstance(v, OtherConfig) for v in non_none):
        site.quantization_state = State.KNOWN  # known, and not bitsandbytes
        return
    # One bitsandbytes config must reach the call on some path; the other paths may pass None,
    # another method's config or a value the analysis does not know (a caller's config, when a
    # parameter's default is rebuilt in the body). The builder splits several configs into one
    # site each.
    configs = [v for v in non_none if isinstance(v, BnbConfig)]
    if len({id(v) for v in configs}) != 1 or isinstance(qc.value, Overridden):
        site.quantization_state = State.UNKNOWN
        return
    conditional = len(configs) < len(options)
    config = configs[-1]
    assert isinstance(config, BnbConfig)
    mode = config_mode(config)
    if mode == "unknown":
        site.quantization_state = State.UNKNOWN
        return
    site.quantization = Quantization(config, mode, conditional, legacy)
    site.quantization_state = State.KNOWN


def _resolve_legacy(site: LoadSite, legacy: dict[str, Entry]) -> None:
    flags = {k: truthy(e.value) for k, e in legacy.items()}
    if any(v is None for v in flags.values()):
        site.quantization_state = State.UNKNOWN
        return
    if flags.get("load_in_4bit") and not flags.get("load_in_8bit"):
        mode: Mode = "4bit"
    elif flags.get("load_in_8bit") and not flags.get("load_in_4bit"):
        mode = "8bit"
    else:
        return  # load_in_8bit=False: not quantized
    site.quantization = Quantization(None, mode, False, legacy)
    site.quantization_state = State.KNOWN
