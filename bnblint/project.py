"""The project around a document: the tree it belongs to, its module names, and the analysis of
the project modules it imports.

A name imported from a project module (``from .quant import bnb_config``, ``import pkg.mod as
m; m.CFG``, a re-export in ``__init__.py``) resolves to what that module binds it to, so a
config, a kwargs dict, a helper or a class defined in one file reaches a load in another.
Modules are found the way Python finds them when the project runs: from the importer's own
package root (a script's directory is on ``sys.path``), the project root and ``src/``.

Imported modules are summarised lazily: parsed and walked at module level only (their function
bodies run when a call reaches them), and cached by content hash, so an editor keystroke or a
flake8 run over many files does not rebuild the project.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterator
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bnblint.analysis.builder import ModelBuilder
    from bnblint.analysis.syntax import Node
    from bnblint.analysis.values import Value

Span = tuple[int, int, int, int]  # (row, column, end row, end column), 1-based, in characters

# Packages that are never project modules, even where the tree holds a copy (linting
# transformers' own repository): their names keep their meaning as the libraries.
EXTERNAL_ROOTS = frozenset(
    {"transformers", "peft", "trl", "torch", "bitsandbytes", "accelerate", "diffusers"}
)
# Markers of a project root, nearest first wins.
ROOT_MARKERS = ("pyproject.toml", ".git", "setup.py", "setup.cfg")
# Modules larger than this are not summarised (generated code, vendored bundles).
MAX_MODULE_BYTES = 1_000_000
# How many re-exports (``from .a import x`` in ``__init__.py``) a lookup follows.
MAX_HOPS = 8


def find_root(path: Path) -> Path | None:
    """The nearest directory above ``path`` with a project marker."""
    return _root_of(str(path if path.is_dir() else path.parent))


@lru_cache(maxsize=4096)
def _root_of(directory: str) -> Path | None:
    start = Path(directory)
    if any((start / marker).exists() for marker in ROOT_MARKERS):
        return start
    return None if start.parent == start else _root_of(str(start.parent))


@dataclass
class _Module:
    path: Path
    digest: str
    builder: ModelBuilder | None = None  # None while it is being built (an import cycle)
    spans: NodeSpans | None = None


# Summaries by (path, content hash), shared by every Project of this process.
_CACHE: dict[tuple[str, str], _Module] = {}


@dataclass
class Project:
    """The linted tree: ``root`` and, optionally, the texts of documents not on disk (stdin,
    editor buffers), which win over the files."""

    root: Path
    overlays: dict[str, str] = field(default_factory=dict)
    _paths: dict[tuple[str, str], Path | None] = field(default_factory=dict)
    _import_roots: dict[Path, Path] = field(default_factory=dict)
    _lookups: dict[str, Value | None] = field(default_factory=dict)
    _modules: dict[str, _Module] = field(default_factory=dict)
    # Every module tree seen (a file's summary and its own analysis are different parses):
    # a node is found in whichever it came from.
    _known: list[_Module] = field(default_factory=list)
    _files: list[Path] | None = None
    _entries: list[tuple[Path, str]] | None = None
    _imports: dict[str, tuple[tuple[int, int], frozenset[str]]] = field(default_factory=dict)

    @classmethod
    def around(cls, path: Path) -> Project | None:
        root = find_root(path.resolve())
        return cls(root) if root is not None else None

    # -- module names -------------------------------------------------------------------

    def import_root(self, path: Path) -> Path:
        """The directory a file is imported from: above its outermost package (cached per
        directory: every import of every file asks)."""
        start = path.parent
        cached = self._import_roots.get(start)
        if cached is not None:
            return cached
        directory = start
        while (directory / "__init__.py").exists() and directory != self.root.parent:
            directory = directory.parent
        self._import_roots[start] = directory
        return directory

    def module_name(self, path: str | Path) -> str | None:
        p = Path(path).resolve()
        try:
            base = self.import_root(p)
            parts = list(p.relative_to(base).with_suffix("").parts)
        except ValueError:
            return None
        if parts and parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts) or None

    def module_path(self, name: str, importer: str | None) -> Path | None:
        """The project file of module ``name``, as seen from the file ``importer``."""
        base_root = self.import_root(Path(importer).resolve()) if importer else None
        return self.module_path_at(name, base_root)

    def module_path_at(self, name: str, base_root: Path | None) -> Path | None:
        """``module_path`` for an importer whose import root is ``base_root``."""
        key = (name, str(base_root) if base_root is not None else "")
        if key in self._paths:
            return self._paths[key]
        found = None
        if name.split(".")[0] not in EXTERNAL_ROOTS:
            roots: list[Path] = []
            if base_root is not None:
                roots.append(base_root)
            roots.extend([self.root, self.root / "src"])
            rel = Path(*name.split("."))
            for base in dict.fromkeys(roots):
                for candidate in (base / f"{rel}.py", base / rel / "__init__.py"):
                    if candidate.is_file() and self._inside(candidate):
                        found = candidate.resolve()
                        break
                if found is not None:
                    break
        self._paths[key] = found
        return found

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True

    # -- summaries ----------------------------------------------------------------------

    def set_overlay(self, path: str, text: str | None) -> None:
        """Analyse ``path`` as ``text`` from now on (None: as on disk again): the summaries
        and lookups seen so far are dropped, as they may hold its old text."""
        key = str(Path(path).resolve())
        if text is None:
            self.overlays.pop(key, None)
        else:
            self.overlays[key] = text
        self._modules.pop(key, None)
        self._lookups.clear()

    def register(self, path: str, builder: ModelBuilder, text: str) -> None:
        """The document being analysed is a module too: imports of it (a cycle) see what it
        has bound so far."""
        resolved = str(Path(path).resolve())
        module = _Module(Path(resolved), _digest(text), builder)
        self._modules[resolved] = module
        self._known.append(module)

    def builder_for(self, path: Path, name: str | None = None) -> ModelBuilder | None:
        """The summary of the module at ``path``, imported as ``name`` when known."""
        key = str(path)
        module = self._modules.get(key)
        if module is not None:
            return module.builder
        text = self.overlays.get(key)
        if text is None:
            try:
                if path.stat().st_size > MAX_MODULE_BYTES:
                    return None
                data = _read(path)
            except OSError:
                return None
            from bnblint.source import decode

            try:
                text = decode(data)[0]
            except Exception:  # undecodable: it resolves to nothing, and is reported itself
                return None
        digest = _digest(text)
        cached = _CACHE.get((key, digest))
        if cached is not None and cached.builder is not None:
            cached.builder.project = self
            self._modules[key] = cached
            self._known.append(cached)
            return cached.builder
        module = self._modules[key] = _Module(path, digest)
        builder = _summarise(text, key, self, name)
        module.builder = builder
        self._known.append(module)
        if builder is not None:
            _CACHE[(key, digest)] = module
        return builder

    def lookup(self, qualname: str, importer: str | None = None) -> Value | None:
        """What ``qualname`` (``pkg.quant.CFG``) is bound to in the project, or None when it
        is not a project name."""
        key = f"{importer}|{qualname}"
        if key in self._lookups:
            return self._lookups[key]
        self._lookups[key] = None  # a cycle of re-exports resolves to "not known"
        value = self._lookup(qualname, importer, 0)
        self._lookups[key] = value
        return value

    def _lookup(self, qualname: str, importer: str | None, hops: int) -> Value | None:
        from bnblint.analysis.values import ClassValue, Symbol

        parts = qualname.split(".")
        if parts[0] in EXTERNAL_ROOTS or len(parts) < 2 or hops > MAX_HOPS:
            return None
        for cut in range(len(parts) - 1, 0, -1):
            path = self.module_path(".".join(parts[:cut]), importer)
            if path is None:
                continue
            builder = self.builder_for(path, ".".join(parts[:cut]))
            if builder is None or builder.module_env is None:
                return None
            value = builder.module_env.vars.get(parts[cut])
            if value is None:
                return None
            for attr in parts[cut + 1 :]:
                if isinstance(value, Symbol):
                    value = self._lookup(f"{value.qualname}.{attr}", str(path), hops + 1)
                elif isinstance(value, ClassValue):
                    value = value.attrs.get(attr)
                else:
                    return None
                if value is None:
                    return None
            if isinstance(value, Symbol):
                inner = self._lookup(value.qualname, str(path), hops + 1)
                return inner if inner is not None else value
            return value
        return None

    # -- who imports whom ---------------------------------------------------------------

    def files(self) -> list[Path]:
        """Every Python file of the project (default excludes and .gitignore honoured)."""
        if self._files is None:
            from bnblint.discovery import DEFAULT_EXCLUDES, discover

            found, _ = discover((str(self.root),), exclude=DEFAULT_EXCLUDES, root=self.root)
            self._files = [p.resolve() for p in found]
        return self._files

    def imports_of(self, path: Path) -> frozenset[str]:
        """The project files a file imports (stdlib AST, cached by size and mtime)."""
        import ast

        key = str(path)
        try:
            st = path.stat()
            stamp = (st.st_size, st.st_mtime_ns)
            cached = self._imports.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            data = _read(path) if st.st_size <= MAX_MODULE_BYTES else b""
        except OSError:
            return frozenset()
        targets: set[str] = set()
        if b"import" in data:
            try:
                tree = ast.parse(data)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                tree = None
            name = self.module_name(path) or ""
            is_package = path.name == "__init__.py"
            base_root = self.import_root(path.resolve())
            for node in _import_statements(tree) if tree is not None else ():
                modules: list[str] = []
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parts = name.split(".")
                        keep = len(parts) - node.level + (1 if is_package else 0)
                        if keep < 1:
                            continue
                        base = ".".join([*parts[:keep], *([base] if base else [])])
                    modules = [base, *(f"{base}.{a.name}" for a in node.names)]
                for module in modules:
                    found = self.module_path_at(module, base_root) if module else None
                    if found is not None:
                        targets.add(str(found))
        result = frozenset(targets)
        self._imports[key] = (stamp, result)
        return result

    def importers_of(self, targets: set[str]) -> list[Path]:
        """Project files that import any of ``targets`` (resolved paths), directly or through
        other project modules: their loads may reach what the targets define.

        A worklist over the reverse import graph: each reached module is looked for, by its
        name's bytes first, in the files not reached yet; a file is read once and parsed (for
        its imports) only when it mentions a reached module's name."""
        reached = set(targets)
        out: list[Path] = []
        contents: dict[str, bytes] = {}
        candidates = [p for p in self.files() if str(p) not in reached]
        todo = list(targets)
        while todo:
            target = Path(todo.pop())
            name = (target.parent.name if target.name == "__init__.py" else target.stem).encode()
            for path in candidates:
                key = str(path)
                if key in reached:
                    continue
                data = contents.get(key)
                if data is None:
                    try:
                        data = contents[key] = _read(path)
                    except OSError:
                        data = contents[key] = b""
                if name not in data or b"import" not in data:
                    continue
                if str(target) in self.imports_of(path):
                    reached.add(key)
                    out.append(path)
                    todo.append(key)
        return out

    def closure(self, path: Path) -> set[str]:
        """The project files ``path`` imports, transitively."""
        seen: set[str] = set()
        todo = [str(path)]
        while todo:
            current = todo.pop()
            for target in self.imports_of(Path(current)):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    def distributed_entry(self, path: str) -> tuple[str, str] | None:
        """A distributed-training entry point of the project (a script that uses Trainer,
        Accelerator, torch.distributed...) that imports ``path``, and why it is one."""
        from bnblint.analysis.context import DISTRIBUTED_NAMES, distributed_reason

        if self._entries is None:
            words = [n.encode() for n in DISTRIBUTED_NAMES] + [b"LOCAL_RANK", b"WORLD_SIZE"]
            self._entries = []
            for file in self.files():
                try:
                    data = _read(file)
                except OSError:
                    continue
                if len(data) > MAX_MODULE_BYTES or not any(w in data for w in words):
                    continue
                reason = distributed_reason(data.decode("utf-8", "replace"))
                if reason is not None:
                    self._entries.append((file, reason))
        target = str(Path(path).resolve())
        for entry, reason in self._entries:
            if str(entry) != target and target in self.closure(entry):
                return self.relative(str(entry)), reason
        return None

    # -- where a node is ----------------------------------------------------------------

    def owner_of(self, node: Node) -> tuple[str, ModelBuilder] | None:
        """The project file whose syntax tree holds ``node`` (an ast node or a ``DictItem``),
        among the summarised modules."""
        for module in reversed(self._known):
            builder = module.builder
            if builder is None:
                continue
            if module.spans is None:
                module.spans = NodeSpans(builder)
            if module.spans.holds(node):
                return str(module.path), builder
        return None

    def positions_of(self, builder: ModelBuilder) -> NodeSpans:
        """The spans of ``builder``'s nodes by ``id()``: ``(row, column, end row, end column)``,
        1-based, columns in characters (``builder.positions.span(node)`` for one node)."""
        for module in self._known:
            if module.builder is builder:
                if module.spans is None:
                    module.spans = NodeSpans(builder)
                return module.spans
        return NodeSpans(builder)

    def position(self, node: Node) -> tuple[str, int, int] | None:
        """(file, row, column) of a node of a summarised module."""
        owner = self.owner_of(node)
        if owner is None:
            return None
        row, col, _, _ = owner[1].positions.span(node)
        return owner[0], row, col

    def relative(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path


def _read(path: Path) -> bytes:
    """A project file's bytes; a FIFO, device or oversized file reads as nothing."""
    from bnblint.source import SourceError, read_bytes

    try:
        return read_bytes(path, MAX_MODULE_BYTES)
    except SourceError:
        return b""


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _summarise(
    text: str, path: str, project: Project, name: str | None = None
) -> ModelBuilder | None:
    """Parse a project module and walk its module level (functions run when called)."""
    from bnblint.analysis.builder import ModelBuilder
    from bnblint.parse import parse_ast

    try:
        module = parse_ast(text)
    except Exception:  # an unparsable module resolves to nothing; it is reported on its own
        return None
    builder = ModelBuilder(module, text, None, project, path, name)
    try:
        builder.summarise()
    except RecursionError:
        return None
    return builder


class NodeSpans(AbcMapping[int, Span]):
    """The spans of the nodes of one module's tree, by ``id()`` of the node: every ast node and
    every ``DictItem`` made of its dicts. Built on first use; a span is computed when read."""

    def __init__(self, builder: ModelBuilder) -> None:
        self.builder = builder
        self._nodes: dict[int, Node] | None = None
        self._dicts: list[ast.Dict] = []

    def _index(self) -> dict[int, Node]:
        if self._nodes is None:
            self._nodes = {}
            for node in ast.walk(self.builder.module):
                self._nodes[id(node)] = node
                if isinstance(node, ast.Dict):
                    self._dicts.append(node)
        return self._nodes

    def _take_items(self) -> None:
        """Dict entries are made on demand (``dict_items``): take in those made so far."""
        from bnblint.analysis.syntax import made_dict_items

        nodes = self._index()
        for d in self._dicts:
            for item in made_dict_items(d):
                nodes.setdefault(id(item), item)

    def _find(self, key: int) -> Node | None:
        found = self._index().get(key)
        if found is None:
            self._take_items()
            found = self._index().get(key)
        return found

    def holds(self, node: Node) -> bool:
        from bnblint.analysis.syntax import DictItem

        target = node.dict if isinstance(node, DictItem) else node
        return id(target) in self._index()

    def __getitem__(self, key: int) -> Span:
        node = self._find(key)
        if node is None or not hasattr(node, "lineno"):  # not a node, or no position (Module)
            raise KeyError(key)
        return self.builder.positions.span(node)

    def __iter__(self) -> Iterator[int]:
        self._take_items()
        return iter([k for k, n in self._index().items() if hasattr(n, "lineno")])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _import_statements(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth: a walk over statement lists only (expressions
    hold no imports and are most of a tree's nodes)."""
    stack: list[list[ast.stmt]] = [tree.body]
    while stack:
        for node in stack.pop():
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
                continue
            for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
                value = getattr(node, field_name, None)
                if isinstance(value, list) and value:
                    stack.append(value)
