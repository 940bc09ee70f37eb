"""Which transformers the linted code runs on: the target the rules' messages and fixes follow.

An explicit ``target-transformers`` (``[tool.bnblint]`` or ``--target-transformers``) wins.
Otherwise the project's own pin decides, read from the nearest directory (from the file
upward, not past the project's or the repository's root) whose packaging files name
``transformers``: ``pyproject.toml`` (``[project]`` dependencies and optional dependencies,
``[dependency-groups]``, Poetry's tables), ``requirements*.txt`` / ``constraints*.txt``,
``setup.cfg``, a literal ``install_requires`` / ``extras_require`` in ``setup.py``. The lowest
version a specifier admits decides a version-dependent fix; every major version it admits gets
its behaviour in messages ("fails on transformers 5; deprecated on 4.x"). No pin: the newest
behaviour.

No dependency on ``packaging``: only the specifier operators (PEP 440 and Poetry's ``^``/``~``)
are needed, not version ordering of pre-releases.
"""

from __future__ import annotations

import ast
import configparser
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Version = tuple[int, ...]
# The major versions whose behaviours the rules know.
MAJORS = (4, 5)
# Packaging files are small; a larger one is not read.
_MAX_BYTES = 1024 * 1024
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_CLAUSE = re.compile(r"^(===|==|!=|~=|>=|<=|>|<|\^|~)?\s*v?([0-9][0-9a-zA-Z.*+!-]*)$")


class VersionError(ValueError):
    """A target version or specifier that cannot be read; the message is one line."""


def parse_version(text: str) -> Version:
    """``4.57.1`` -> (4, 57, 1); pre/post/dev suffixes are dropped (``5.0.0rc1`` -> (5, 0, 0))."""
    parts: list[int] = []
    for piece in text.strip().lstrip("v").split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.end() != len(piece):
            break  # 0rc1: the release part ends here
    if not parts:
        raise VersionError(f"not a version: {text!r}")
    return tuple(parts)


def show(version: Version) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True)
class Interval:
    """Versions from ``low`` (inclusive; None: unbounded) to ``high`` (None: unbounded)."""

    low: Version | None = None
    high: Version | None = None
    high_inclusive: bool = False

    def empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        low, high = _pad(self.low, self.high)
        return low > high or (low == high and not self.high_inclusive)

    def intersect(self, other: Interval) -> Interval:
        low = self.low
        if other.low is not None and (low is None or _gt(other.low, low)):
            low = other.low
        high, inclusive = self.high, self.high_inclusive
        if other.high is not None:
            if high is None or _gt(high, other.high):
                high, inclusive = other.high, other.high_inclusive
            elif _eq(high, other.high):
                inclusive = inclusive and other.high_inclusive
        return Interval(low, high, inclusive)

    def admits_major(self, major: int) -> bool:
        return not self.intersect(Interval((major,), (major + 1,))).empty()


def _pad(a: Version, b: Version) -> tuple[Version, Version]:
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)), b + (0,) * (n - len(b))


def _gt(a: Version, b: Version) -> bool:
    x, y = _pad(a, b)
    return x > y


def _eq(a: Version, b: Version) -> bool:
    x, y = _pad(a, b)
    return x == y


def _bump(version: Version, index: int) -> Version:
    """The first version after all of ``version[: index + 1]``'s series (4.46 at 0 -> 5)."""
    head = list(version[: index + 1])
    head[-1] += 1
    return tuple(head)


def clause_interval(clause: str) -> Interval | None:
    """One comparison (``>=4.46``, ``==4.*``, ``^4.46``, ``~=4.46.0``, ``4.57.1``); None for
    one that constrains nothing we track (``!=4.50``, ``*``)."""
    clause = clause.strip()
    if clause in ("", "*"):
        return None
    m = _CLAUSE.match(clause)
    if m is None:
        raise VersionError(f"not a version specifier: {clause!r}")
    op, text = m.group(1) or "==", m.group(2)
    if op == "!=":
        return None
    wildcard = text.endswith(".*")
    if wildcard:
        text = text[:-2]
    version = parse_version(text)
    if op in ("==", "==="):
        if wildcard:
            return Interval(version, _bump(version, len(version) - 1))
        return Interval(version, version, True)
    if op == ">=":
        return Interval(version)
    if op == ">":
        # Admits versions just above: for a behaviour threshold the bound itself is the
        # conservative lowest (``>4.55`` admits 4.55.1, older than 4.56).
        return Interval(version)
    if op == "<=":
        return Interval(None, version, True)
    if op == "<":
        return Interval(None, version)
    if op == "~=":
        if len(version) < 2:
            raise VersionError(f"`~=` needs two version parts: {clause!r}")
        return Interval(version, _bump(version, len(version) - 2))
    if op == "^":  # Poetry: up to the next change of the first non-zero part
        nonzero = next((i for i, p in enumerate(version) if p != 0), len(version) - 1)
        return Interval(version, _bump(version, nonzero))
    # Poetry's ~: ~4.46.1 -> >=4.46.1,<4.47; ~4.46 -> >=4.46,<4.47; ~4 -> >=4,<5
    return Interval(version, _bump(version, 1 if len(version) >= 2 else 0))


def specifier_interval(specifier: str) -> list[Interval]:
    """The versions a specifier admits: one interval per ``||`` alternative (Poetry), each the
    intersection of its comma- or space-separated clauses."""
    alternatives: list[Interval] = []
    for alternative in specifier.split("||"):
        interval = Interval()
        clauses = [c for c in re.split(r"[,\s]+", alternative) if c]
        for clause in _join_operators(clauses):
            part = clause_interval(clause)
            if part is not None:
                interval = interval.intersect(part)
        if not interval.empty():
            alternatives.append(interval)
    return alternatives


def _join_operators(pieces: list[str]) -> Iterator[str]:
    """``[">=", "4.46"]`` (Poetry allows a space after the operator) -> ``[">=4.46"]``."""
    pending = ""
    for piece in pieces:
        piece = piece.strip()
        if re.fullmatch(r"(===|==|!=|~=|>=|<=|>|<|\^|~)", piece):
            pending = piece
            continue
        yield pending + piece
        pending = ""


@dataclass(frozen=True)
class Target:
    """The transformers the code runs on. ``intervals`` empty: the newest (no pin)."""

    intervals: tuple[Interval, ...] = ()
    source: str = "no pin found: the newest transformers"

    @property
    def pinned(self) -> bool:
        return bool(self.intervals)

    @property
    def lowest(self) -> Version | None:
        """The lowest version admitted (``(0,)`` when unbounded below); None without a pin."""
        if not self.intervals:
            return None
        lows = [i.low or (0,) for i in self.intervals]
        return min(lows, key=lambda v: _pad(v, (0, 0, 0))[0])

    def admits_major(self, major: int) -> bool:
        if not self.intervals:
            return major == max(MAJORS)
        return any(i.admits_major(major) for i in self.intervals)

    def admits_below(self, version: Version) -> bool:
        """Whether some admitted version is older than ``version`` (a feature added there may
        be missing): with no pin, never."""
        lowest = self.lowest
        return lowest is not None and _gt(version, lowest)

    def describe(self) -> str:
        majors = [m for m in MAJORS if self.admits_major(m)]
        if not self.intervals:
            return f"transformers {max(MAJORS)}.x (newest), {self.source}"
        lowest = self.lowest
        low = "any version" if lowest in (None, (0,)) else f">= {show(lowest or (0,))}"
        span = ", ".join(f"{m}.x" for m in majors) or "no known major version"
        return f"transformers {low} ({span}), from {self.source}"


def explicit_target(text: str, where: str) -> Target:
    """``target-transformers = "4.57"`` / ``--target-transformers 4.57``: that release
    series exactly (a bare ``4`` is the 4.x series); a specifier is accepted too."""
    text = text.strip()
    try:
        if re.fullmatch(r"v?\d+(\.\d+)*", text):
            version = parse_version(text)
            interval = Interval(version, _bump(version, len(version) - 1))
            return Target((interval,), where)
        intervals = specifier_interval(text)
    except VersionError as exc:
        raise VersionError(f"{where}: {exc}") from None
    if not intervals:
        raise VersionError(f"{where}: {text!r} admits no version")
    return Target(tuple(intervals), where)


def requirement_spec(requirement: str) -> str | None:
    """The version specifier of a ``transformers`` requirement (``""`` when unpinned), None
    when the requirement is for another package. A URL requirement counts as unpinned."""
    requirement = requirement.split(";", 1)[0].split("#", 1)[0].strip()
    m = _NAME.match(requirement)
    if m is None or _normalise(m.group(1)) != "transformers":
        return None
    rest = m.group(3).strip()
    if rest.startswith("@"):
        return ""
    return rest.strip("()").strip()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements_lines(text: str) -> Iterator[tuple[int, str]]:
    joined, start = "", 0
    for row, line in enumerate(text.splitlines(), 1):
        if not joined:
            start = row
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            joined += line[:-1]
            continue
        yield start, joined + line
        joined = ""
    if joined:
        yield start, joined


def _read(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _from_pyproject(text: str) -> Iterator[tuple[str, str]]:
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return
    project = data.get("project")
    if isinstance(project, dict):
        yield from _pep508(project.get("dependencies"), "[project] dependencies")
        extras = project.get("optional-dependencies")
        if isinstance(extras, dict):
            for name, deps in extras.items():
                yield from _pep508(deps, f"[project.optional-dependencies] {name}")
    groups = data.get("dependency-groups")
    if isinstance(groups, dict):
        for name, deps in groups.items():
            yield from _pep508(deps, f"[dependency-groups] {name}")
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    if isinstance(poetry, dict):
        tables: list[tuple[str, Any]] = [("[tool.poetry.dependencies]", poetry.get("dependencies"))]
        for key in ("dev-dependencies",):
            tables.append((f"[tool.poetry.{key}]", poetry.get(key)))
        group = poetry.get("group")
        if isinstance(group, dict):
            for name, table in group.items():
                if isinstance(table, dict):
                    tables.append(
                        (f"[tool.poetry.group.{name}.dependencies]", table.get("dependencies"))
                    )
        for where, table in tables:
            if not isinstance(table, dict):
                continue
            for name, value in table.items():
                if _normalise(str(name)) != "transformers":
                    continue
                for v in value if isinstance(value, list) else [value]:
                    spec = v.get("version", "") if isinstance(v, dict) else v
                    if isinstance(spec, str):
                        yield spec, where


def _pep508(deps: Any, where: str) -> Iterator[tuple[str, str]]:
    if not isinstance(deps, list):
        return
    for dep in deps:
        if isinstance(dep, str):
            spec = requirement_spec(dep)
            if spec is not None:
                yield spec, f"{where} `{dep.strip()}`"


def _from_setup_cfg(text: str) -> Iterator[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return
    if parser.has_option("options", "install_requires"):
        lines = parser.get("options", "install_requires").splitlines()
        yield from _pep508(lines, "[options] install_requires")
    if parser.has_section("options.extras_require"):
        for name, value in parser.items("options.extras_require"):
            yield from _pep508(value.splitlines(), f"[options.extras_require] {name}")


def _from_setup_py(text: str) -> Iterator[tuple[str, str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "install_requires":
                yield from _pep508(_strings(kw.value), "install_requires")
            elif kw.arg == "extras_require" and isinstance(kw.value, ast.Dict):
                for value in kw.value.values:
                    yield from _pep508(_strings(value), "extras_require")


def _strings(node: ast.AST) -> list[str]:
    if not isinstance(node, (ast.List, ast.Tuple)):
        return []
    return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def _pins_in(directory: Path) -> list[tuple[str, str]]:
    """(specifier, where) for every ``transformers`` requirement in one directory's files."""
    found: list[tuple[str, str]] = []
    text = _read(directory / "pyproject.toml")
    if text is not None:
        found += [(s, f"pyproject.toml {w}") for s, w in _from_pyproject(text)]
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    for name in names:
        if re.fullmatch(r"(requirements|constraints)[\w.-]*\.(txt|in)", name):
            text = _read(directory / name)
            for row, line in _requirements_lines(text or ""):
                spec = requirement_spec(line)
                if spec is not None:
                    found.append((spec, f"{name}:{row} `{line.strip()}`"))
    text = _read(directory / "setup.cfg")
    if text is not None:
        found += [(s, f"setup.cfg {w}") for s, w in _from_setup_cfg(text)]
    text = _read(directory / "setup.py")
    if text is not None and "transformers" in text:
        found += [(s, f"setup.py {w}") for s, w in _from_setup_py(text)]
    return found


@lru_cache(maxsize=256)
def pinned_target(directory: Path) -> Target:
    """The target from the nearest directory at or above ``directory`` whose packaging files
    require transformers; the walk stops at the project's root (a directory with a
    ``pyproject.toml``, ``setup.py`` or ``setup.cfg``) and at a repository root (``.git``): a
    pin above them belongs to another project."""
    for candidate in (directory, *directory.parents):
        pins = _pins_in(candidate)
        if pins:
            return _combine(pins, candidate)
        if any((candidate / marker).exists() for marker in _BOUNDARIES):
            break
    return Target()


_BOUNDARIES = (".git", "pyproject.toml", "setup.py", "setup.cfg")


def _combine(pins: Iterable[tuple[str, str]], directory: Path) -> Target:
    """Every requirement found counts: a file that admits 4.x and another that admits 5.x
    give both behaviours. Unpinned mentions add nothing; all unpinned: the newest."""
    intervals: list[Interval] = []
    sources: list[str] = []
    for spec, where in pins:
        try:
            found = specifier_interval(spec) if spec else []
        except VersionError:
            continue  # an unreadable pin is no pin
        if found and not (len(found) == 1 and found[0] == Interval()):
            intervals += found
            sources.append(where)
    if not intervals:
        return Target()
    where = "; ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
    try:
        place = os.path.relpath(directory)
    except ValueError:  # another drive
        place = str(directory)
    prefix = "" if place == os.curdir else f"{place}/"
    return Target(tuple(intervals), prefix + where)
