"""``[tool.bnblint]`` configuration: discovery, validation and per-file rule selection."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from bnblint.analysis.values import TORCH_DTYPES
from bnblint.discovery import glob_excludes
from bnblint.rules import Rule, RuleContext, is_code_prefix, select_rules
from bnblint.source import SourceError, read_bytes
from bnblint.versions import Target, VersionError, explicit_target, pinned_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

COMPUTE_DTYPES = ("float16", "bfloat16", "float32")
KEYS = (
    "select",
    "ignore",
    "per-file-ignores",
    "exclude",
    "extend-exclude",
    "compute-dtype",
    "include-docs",
    "target-transformers",
)


class ConfigError(Exception):
    """A bad configuration value; the message names the file and the key."""


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ("BNB",)
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] | None = None  # None: the default excludes
    extend_exclude: tuple[str, ...] = ()
    compute_dtype: str = "float16"
    include_docs: bool = False  # also lint Python blocks in Markdown / reST found in directories
    # ``target-transformers`` as written (validated); None: the project's pin decides.
    target_transformers: str | None = None
    root: Path = field(default_factory=Path.cwd)
    source: Path | None = None  # the pyproject.toml read, if any

    def rules_for(self, path: str | None) -> list[type[Rule]]:
        ignore = list(self.ignore)
        if path is not None and self.per_file_ignores:
            rel = _relative(path, self.root)
            name = os.path.basename(path)
            for pattern, codes in self.per_file_ignores:
                if glob_excludes(pattern, rel, name):
                    ignore.extend(codes)
        return list(_selected(tuple(self.select), tuple(ignore)))

    @property
    def context(self) -> RuleContext:
        return RuleContext(compute_dtype=self.compute_dtype)

    def context_for(self, path: str | None) -> RuleContext:
        """What the rules read for one file: the settings and the file's target."""
        return RuleContext(compute_dtype=self.compute_dtype, target=self.target_for(path))

    def target_for(self, path: str | None) -> Target:
        """The transformers ``path`` runs on: the setting, else the nearest pin, else the
        newest (``bnblint.versions``)."""
        if self.target_transformers is not None:
            where = f"target-transformers = {self.target_transformers!r}"
            if self.source is not None:
                where += f" in {_shown(self.source)}"
            return explicit_target(self.target_transformers, where)
        directory = Path(path).absolute().parent if path else Path.cwd()
        return pinned_target(directory)

    def override(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@lru_cache(maxsize=64)
def _selected(select: tuple[str, ...], ignore: tuple[str, ...]) -> tuple[type[Rule], ...]:
    # Called once per file: thousands of times on a large tree, with the same few arguments.
    return tuple(select_rules([_prefix(s) for s in select], [_prefix(i) for i in ignore]))


def _prefix(code: str) -> str:
    return "" if code == "ALL" else code


def _relative(path: str, root: Path) -> str | None:
    """``path`` relative to ``root``, "/"-separated, or None outside it (as discovery sees
    it: the path as named, then resolved for a root reached through a link)."""
    for norm in (os.path.abspath, os.path.realpath):
        try:
            rel = os.path.relpath(norm(path), norm(root))
        except ValueError:  # another drive on Windows
            return None
        if rel in (os.curdir, os.pardir) or rel.startswith(os.pardir + os.sep):
            continue
        return rel.replace(os.sep, "/")
    return None


# A pyproject.toml larger than this is no configuration (and must not be read whole).
MAX_PYPROJECT_BYTES = 10 * 1024 * 1024
# `[tool.bnblint]`, `[tool.bnblint.x]`, `tool.bnblint.select = ...`, `"tool"."bnblint"`, and
# `bnblint = ...` after a `[tool]` header: how to tell, in a file that does not parse, that it
# was meant for bnblint.
_MENTIONS_US = re.compile(
    rb"""["']?tool["']?\s*\.\s*["']?bnblint\b|^\s*\[\s*tool\s*\][^\[]*^\s*["']?bnblint\b""",
    re.MULTILINE | re.DOTALL,
)


def _parse(path: Path) -> dict[str, Any]:
    """The TOML document of ``path``; ConfigError names the file and the reason."""
    try:
        data = read_bytes(path, MAX_PYPROJECT_BYTES)
    except SourceError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid TOML: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None


def _tool_table(data: dict[str, Any], path: Path) -> Any:
    """``data["tool"]["bnblint"]``, None when absent; a ``tool`` that is not a table is an
    error only in a file named by ``--config`` (discovery passes such files by)."""
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: `tool` must be a table, got {type(tool).__name__}")
    return tool.get("bnblint")


def _ours(path: Path) -> bool:
    """Whether ``path`` holds a ``[tool.bnblint]`` table; a file that cannot be parsed counts
    when its text mentions the table, or when it cannot be read at all (it might)."""
    try:
        data = _parse(path)
    except ConfigError:
        try:
            text = read_bytes(path, MAX_PYPROJECT_BYTES)
        except SourceError:
            return True  # unreadable: using other settings silently would be worse
        return _MENTIONS_US.search(text) is not None
    try:
        return _tool_table(data, path) is not None
    except ConfigError:
        return False  # `tool = 5`: not a pyproject.toml meant for bnblint


def find_config(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.bnblint]`` table, from ``start`` upward.

    A broken file that holds (or may hold) the table is returned, so that
    :func:`load_settings` reports it; a broken unrelated one is passed by. Never raises."""
    try:
        directory = start if start.is_dir() else start.parent
    except OSError:
        directory = start.parent
    for candidate in (directory, *directory.parents):
        path = candidate / "pyproject.toml"
        try:
            if not path.is_file():  # FIFOs and devices are no configuration
                continue
        except OSError:
            continue
        if _ours(path):
            return path
    return None


def settings_for_path(path: Path) -> Settings:
    """What ``bnblint check PATH`` uses: the nearest ``[tool.bnblint]``, else the defaults.
    Every front end (CLI, flake8, verify) finds its settings through this."""
    found = find_config(path.absolute())
    return load_settings(found) if found else Settings()


def load_settings(path: Path) -> Settings:
    table = _tool_table(_parse(path), path)
    return parse_table({} if table is None else table, path)


def parse_table(table: Any, path: Path) -> Settings:
    where = f"{path}: [tool.bnblint]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key `{unknown[0]}` (expected one of {', '.join(KEYS)})"
        )
    settings = Settings(root=path.parent, source=path)
    changes: dict[str, Any] = {}
    for key in ("select", "ignore"):
        if key in table:
            changes[key] = tuple(_codes(table[key], f"{where}.{key}"))
    for key in ("exclude", "extend-exclude"):
        if key in table:
            changes[key.replace("-", "_")] = tuple(_strings(table[key], f"{where}.{key}"))
    if "per-file-ignores" in table:
        value = table["per-file-ignores"]
        if not isinstance(value, dict):
            raise ConfigError(f"{where}.per-file-ignores must be a table of glob = [codes]")
        changes["per_file_ignores"] = tuple(
            (glob, tuple(_codes(codes, f"{where}.per-file-ignores.{glob}")))
            for glob, codes in value.items()
        )
    if "include-docs" in table:
        if not isinstance(table["include-docs"], bool):
            raise ConfigError(f"{where}.include-docs must be true or false")
        changes["include_docs"] = table["include-docs"]
    if "target-transformers" in table:
        changes["target_transformers"] = parse_target(
            table["target-transformers"], f"{where}.target-transformers"
        )
    if "compute-dtype" in table:
        changes["compute_dtype"] = parse_compute_dtype(
            table["compute-dtype"], f"{where}.compute-dtype"
        )
    return replace(settings, **changes)


def parse_compute_dtype(value: Any, where: str) -> str:
    name = value.removeprefix("torch.") if isinstance(value, str) else None
    if name is None or TORCH_DTYPES.get(name) not in COMPUTE_DTYPES:
        raise ConfigError(f"{where}: expected one of {', '.join(COMPUTE_DTYPES)}, got {value!r}")
    return TORCH_DTYPES[name]


def parse_target(value: Any, where: str) -> str:
    """A target version (``"4.57"``) or specifier (``">=4.46,<5"``), checked now so that a typo
    is a configuration error, not a silent default."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a version string such as \"4.57\", got {value!r}")
    try:
        explicit_target(value, where)
    except VersionError as exc:
        raise ConfigError(str(exc)) from None
    return value


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    return value


def _codes(value: Any, where: str) -> list[str]:
    codes = _strings(value, where)
    for code in codes:
        if not is_code_prefix(code):
            raise ConfigError(f"{where}: unknown rule code or prefix `{code}`")
    return codes


def parse_cli_codes(values: tuple[str, ...], option: str) -> tuple[str, ...] | None:
    """``--select BNB001,BNB002`` (repeatable); None when the option was not given."""
    if not values:
        return None
    codes = [c.strip() for v in values for c in v.split(",") if c.strip()]
    for code in codes:
        if not is_code_prefix(code):
            raise ConfigError(f"{option}: unknown rule code or prefix `{code}`")
    return tuple(codes)
