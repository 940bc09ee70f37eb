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

import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libcst as cst

    from bnblint.analysis.builder import ModelBuilder
    from bnblint.analysis.values import Value

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
    positions: dict[int, tuple[int, int, int, int]] | None = None


# Summaries by (path, content hash), shared by every Project of this process.
_CACHE: dict[tuple[str, str], _Module] = {}


@dataclass
class Project:
    """The linted tree: ``root`` and, optionally, the texts of documents not on disk (stdin,
    editor buffers), which win over the files."""

    root: Path
    overlays: dict[str, str] = field(default_factory=dict)
    _paths: dict[tuple[str, str], Path | None] = field(default_factory=dict)
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
        """The directory a file is imported from: above its outermost package."""
        directory = path.parent
        while (directory / "__init__.py").exists() and directory != self.root.parent:
            directory = directory.parent
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
        key = (name, importer or "")
        if key in self._paths:
            return self._paths[key]
        found = None
        if name.split(".")[0] not in EXTERNAL_ROOTS:
            roots: list[Path] = []
            if importer:
                roots.append(self.import_root(Path(importer).resolve()))
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
            data = _read(path) if st.st_size <= MAX_MODULE_BYTES else b""
        except OSError:
            return frozenset()
        stamp = (st.st_size, st.st_mtime_ns)
        cached = self._imports.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        targets: set[str] = set()
        if b"import" in data:
            try:
                tree = ast.parse(data)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                tree = None
            name = self.module_name(path) or ""
            is_package = path.name == "__init__.py"
            for node in ast.walk(tree) if tree is not None else ():
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
                    found = self.module_path(module, key) if module else None
                    if found is not None:
                        targets.add(str(found))
        result = frozenset(targets)
        self._imports[key] = (stamp, result)
        return result

    def importers_of(self, targets: set[str]) -> list[Path]:
        """Project files that import any of ``targets`` (resolved paths), directly or through
        other project modules: their loads may reach what the targets define."""
        names = {Path(t).stem.encode() for t in targets} | {
            Path(t).parent.name.encode() for t in targets if t.endswith("__init__.py")
        }
        reached = set(targets)
        out: list[Path] = []
        changed = True
        candidates = [p for p in self.files() if str(p) not in reached]
        while changed:
            changed = False
            for path in candidates:
                if str(path) in reached:
                    continue
                try:
                    data = _read(path)
                except OSError:
                    continue
                if not any(n in data for n in names):
                    continue
                if self.imports_of(path) & reached:
                    reached.add(str(path))
                    names |= {path.stem.encode()}
                    out.append(path)
                    changed = True
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

    def owner_of(self, node: cst.CSTNode) -> tuple[str, ModelBuilder] | None:
        """The project file whose syntax tree holds ``node``, among the summarised modules."""
        for module in reversed(self._known):
            builder = module.builder
            if builder is None:
                continue
            if module.positions is None:
                module.positions = _positions(builder.module)
            if id(node) in module.positions:
                return str(module.path), builder
        return None

    def positions_of(self, builder: ModelBuilder) -> dict[int, tuple[int, int, int, int]]:
        for module in self._known:
            if module.builder is builder:
                if module.positions is None:
                    module.positions = _positions(builder.module)
                return module.positions
        return _positions(builder.module)

    def position(self, node: cst.CSTNode) -> tuple[str, int, int] | None:
        """(file, row, column) of a node of a summarised module."""
        owner = self.owner_of(node)
        if owner is None:
            return None
        row, col, _, _ = self.positions_of(owner[1])[id(node)]
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
    import libcst as cst

    from bnblint.analysis.builder import ModelBuilder

    try:
        module = cst.parse_module(text)
    except Exception:  # an unparsable module resolves to nothing; it is reported on its own
        return None
    builder = ModelBuilder(module, text, None, project, path, name)
    try:
        builder.summarise()
    except RecursionError:
        return None
    return builder


def _positions(module: cst.Module) -> dict[int, tuple[int, int, int, int]]:
    from libcst.metadata import MetadataWrapper, PositionProvider

    spans = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {
        id(node): (s.start.line, s.start.column + 1, s.end.line, s.end.column + 1)
        for node, s in spans.items()
    }


def same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
