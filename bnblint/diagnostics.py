"""What rules produce: diagnostics with optional fixes, and their resolved, positioned form.

Every node here is a stdlib AST node of the one parse of the document's text the analysis
model was built from (or a ``DictItem`` of one of its dicts); the fix layer finds their LibCST
counterparts only when a fix is rendered or applied (``bnblint.fix.nodes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import ast

    from bnblint.analysis.model import LoadSite
    from bnblint.analysis.syntax import DictItem, Node


class Applicability(str, Enum):
    """Ruff's fix applicability: safe fixes run with ``--fix``, unsafe ones need opting in."""

    SAFE = "safe"
    UNSAFE = "unsafe"
    DISPLAY_ONLY = "display-only"


class Level(str, Enum):
    ERROR = "error"  # the load fails
    WARNING = "warning"  # the load works, slowly or not as written


@dataclass(frozen=True)
class AddKeyword:
    """Append ``name=value`` to a call's arguments (a load call, or a config constructor)."""

    call: ast.Call
    name: str
    value: str  # Python source of the value


@dataclass(frozen=True)
class AddDictEntry:
    """Append ``"key": value`` to a dict literal."""

    dict: ast.Dict
    key: str
    value: str


@dataclass(frozen=True)
class AddImport:
    """Add ``import module`` at the top of the module unless already bound at module level."""

    module: str


@dataclass(frozen=True)
class AddImportFrom:
    """Add ``from module import name`` unless ``name`` is already bound at module level."""

    module: str
    name: str


@dataclass(frozen=True)
class RemoveKeyword:
    """Remove the keyword argument ``name`` from a call."""

    call: ast.Call
    name: str


@dataclass(frozen=True)
class RemoveDictEntry:
    """Remove the entry with the string key ``key`` from a dict literal."""

    dict: ast.Dict
    key: str


@dataclass(frozen=True)
class ReplaceNode:
    """Replace an expression, a keyword argument (``name=value`` or ``**value``), a dict entry
    or a simple statement by new source."""

    node: ast.expr | ast.keyword | DictItem | ast.stmt
    code: str


@dataclass(frozen=True)
class RemoveStatement:
    """Remove a simple statement (``ast.Assign``, ``ast.Expr``, ...; its whole line when it
    stands alone)."""

    statement: ast.stmt


Operation = Union[
    AddKeyword,
    AddDictEntry,
    AddImport,
    AddImportFrom,
    RemoveKeyword,
    RemoveDictEntry,
    ReplaceNode,
    RemoveStatement,
]


@dataclass(frozen=True)
class Fix:
    message: str
    applicability: Applicability
    operations: tuple[Operation, ...]


@dataclass
class Diagnostic:
    """A finding as a rule reports it: on a node of the model (an ``ast.Call``, ``ast.Dict``,
    ``ast.keyword``, ``DictItem``, expression or statement), before positions are resolved."""

    code: str
    message: str
    node: Node
    site: LoadSite | None = None
    fix: Fix | None = None
    # Other load sites of the same call the finding speaks for (reached through other callers).
    related: tuple[LoadSite, ...] = ()


@dataclass(frozen=True, order=True)
class Location:
    row: int  # 1-based
    column: int  # 1-based, in characters


@dataclass(frozen=True)
class TextEdit:
    content: str
    location: Location
    end_location: Location


@dataclass
class Finding:
    """A diagnostic resolved to positions in a file, ready for any output format."""

    code: str
    message: str
    filename: str
    location: Location
    end_location: Location
    level: Level
    url: str
    noqa_row: int
    load_site: Location | None = None
    fix_message: str | None = None
    applicability: Applicability | None = None
    edits: list[TextEdit] = field(default_factory=list)
    cell: int | None = None

    @property
    def fixable(self) -> bool:
        return self.applicability in (Applicability.SAFE, Applicability.UNSAFE)

    def sort_key(self) -> tuple[str, int, int, int, str]:
        return (self.filename, self.cell or 0, self.location.row, self.location.column, self.code)
