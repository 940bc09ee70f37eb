"""Find the files bnblint should check.

:func:`discover` expands the paths given on the command line into a sorted list of files.
Directories are walked recursively; while walking, entries are filtered by

* ``exclude`` / ``extend_exclude`` globs (matched against an entry's name, or, when the
  pattern contains a ``/``, against its path relative to ``root``), and
* ``.gitignore`` files, ``.git/info/exclude`` of the enclosing repository, with git's
  semantics (implemented here; git itself is never run).

Paths named explicitly are never filtered: a named file is always returned and a named
directory is always walked.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

__all__ = ["DEFAULT_EXCLUDES", "discover", "glob_excludes"]

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    "build",
    "dist",
    "node_modules",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".eggs",
    "site-packages",
    "*.egg-info",
    "__pypackages__",
    ".ipynb_checkpoints",
)

_NOT_FOUND = "No such file or directory"

# One compiled ignore file: (file_regex, file_negated, dir_regex, dir_negated).  Each regex is
# an alternation of the file's patterns, last pattern first, each in its own capturing group,
# so ``fullmatch`` picks the last matching pattern and ``m.lastindex`` says which one it was.
_Compiled = tuple[
    Optional[re.Pattern[str]], tuple[bool, ...], Optional[re.Pattern[str]], tuple[bool, ...]
]
# An ignore file in effect while walking: (base_len, *_Compiled).  ``base_len`` is the length
# of the prefix ("dir/") to skip in a repository-relative path to make it relative to the
# directory holding the ignore file.
_IgnoreList = tuple[
    int,
    Optional[re.Pattern[str]],
    tuple[bool, ...],
    Optional[re.Pattern[str]],
    tuple[bool, ...],
]
# Compiled excludes: (name_file, name_dir, path_file, path_dir) regexes, each may be None.
_Excludes = tuple[
    Optional[re.Pattern[str]],
    Optional[re.Pattern[str]],
    Optional[re.Pattern[str]],
    Optional[re.Pattern[str]],
]

# ---------------------------------------------------------------------------------------------
# Glob -> regex (git's wildmatch with WM_PATHNAME)
# ---------------------------------------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


def _translate_class(pat: str, i: int) -> tuple[str, int] | None:
    """Translate the bracket expression starting at ``pat[i] == "["``.

    Returns (regex, index after the closing ``]``), or None when the expression is malformed
    (git then never matches the pattern).
    """
    n = len(pat)
    i += 1
    negated = i < n and pat[i] in "!^"
    if negated:
        i += 1
    items: list[str] = []
    prev: str | None = None  # last single character, usable as the start of a range
    first = True
    while True:
        if i >= n:
            return None
        c = pat[i]
        if c == "]" and not first:
            break
        first = False
        if c == "\\":
            i += 1
            if i >= n:
                return None
            prev = pat[i]
            items.append(re.escape(prev))
        elif c == "-" and prev is not None and i + 1 < n and pat[i + 1] != "]":
            i += 1
            hi = pat[i]
            if hi == "\\":
                i += 1
                if i >= n:
                    return None
                hi = pat[i]
            if prev <= hi:
                items.append(f"{re.escape(prev)}-{re.escape(hi)}")
            prev = None
        elif c == "[" and i + 1 < n and pat[i + 1] == ":":
            end = pat.find("]", i + 2)
            if end < 0:
                return None
            body = pat[i + 2 : end]
            if not body.endswith(":"):
                # Not "[:name:]": a literal "[", go on right after it.
                prev = "["
                items.append("\\[")
            else:
                cls = _POSIX_CLASSES.get(body[:-1])
                if cls is None:
                    return None
                items.append(cls)
                prev = None
                i = end
        else:
            prev = c
            items.append(re.escape(c))
        i += 1
    i += 1  # past "]"
    body = "".join(items)
    if negated:
        return f"[^/{body}]", i
    if not body:
        return "(?!)", i
    return f"(?!/)[{body}]", i


def _glob_to_regex(pat: str, start: int = 0) -> str | None:
    """Translate a gitignore glob to a regex matching a "/"-separated path (None: invalid).

    ``start``: position treated like the start of the pattern for the rule that ``**`` is
    special only after a "/" or at the start (see ``_parse_gitignore_line``).
    """
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            out.append(re.escape(pat[i + 1]))
            i += 2
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "*":
            j = i
            while j < n and pat[j] == "*":
                j += 1
            if j - i >= 2 and (i == 0 or i == start or pat[i - 1] == "/"):
                if j == n:  # trailing "**": everything below
                    out.append(".*")
                    i = j
                    continue
                if pat[j] == "/":  # "**/": zero or more directories
                    out.append("(?:.*/)?")
                    i = j + 1
                    continue
            out.append("[^/]*")
            i = j
        elif c == "[":
            res = _translate_class(pat, i)
            if res is None:
                return None
            frag, i = res
            out.append(frag)
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# .gitignore parsing
# ---------------------------------------------------------------------------------------------


def _literal_prefix_len(pat: str) -> int:
    for i, c in enumerate(pat):
        if c in "*?[\\":
            return i
    return len(pat)


def _trim_trailing_spaces(line: str) -> str:
    """Strip trailing spaces that are not escaped with a backslash (as git does)."""
    last_space = -1
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == " ":
            if last_space < 0:
                last_space = i
        elif c == "\\":
            i += 1
            if i >= n:
                return line
            last_space = -1
        else:
            last_space = -1
        i += 1
    return line[:last_space] if last_space >= 0 else line


def _parse_gitignore_line(line: str) -> tuple[str, bool, bool] | None:
    """Parse one .gitignore line into (regex, negated, dir_only), or None if it is a no-op."""
    if not line or line[0] == "#":
        return None
    line = _trim_trailing_spaces(line)
    negated = line[:1] == "!"
    if negated:
        line = line[1:]
    dir_only = line[-1:] == "/"
    if dir_only:
        line = line[:-1]
    if not line:
        return None
    anchored = "/" in line
    if line[0] == "/":
        line = line[1:]
    # git compares the literal prefix of an anchored pattern (up to the first glob character)
    # separately and runs wildmatch on the rest, so a "**" right after that prefix counts as
    # being at the start of the pattern: "foo**/bar" matches "foo/bar" and "fooX/Y/bar".
    start = _literal_prefix_len(line) if anchored else 0
    body = _glob_to_regex(line, start)
    if body is None:
        return None
    # Without a "/" the pattern matches a name at any depth below the ignore file.
    return (body if anchored else "(?:.*/)?" + body), negated, dir_only


def _alternation(
    rules: list[tuple[str, bool, bool]],
) -> tuple[re.Pattern[str] | None, tuple[bool, ...]]:
    if not rules:
        return None, ()
    rules = rules[::-1]  # last pattern first: the first alternative to match wins
    regex = re.compile("|".join(f"({r[0]})" for r in rules), re.DOTALL)
    return regex, (False, *(r[1] for r in rules))


@functools.lru_cache(maxsize=1024)
def _compile_gitignore(text: str) -> _Compiled | None:
    rules = []
    for line in text.split("\n"):
        rule = _parse_gitignore_line(line.rstrip("\r"))
        if rule is not None:
            rules.append(rule)
    if not rules:
        return None
    file_rx, file_neg = _alternation([r for r in rules if not r[2]])
    dir_rx, dir_neg = _alternation(rules)
    return file_rx, file_neg, dir_rx, dir_neg


def _load_ignore_file(path: str, cache: dict[str, _Compiled | None]) -> _Compiled | None:
    try:
        return cache[path]
    except KeyError:
        pass
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as fh:
            compiled = _compile_gitignore(fh.read())
    except (OSError, ValueError):
        compiled = None
    cache[path] = compiled
    return compiled


def _is_ignored(lists: tuple[_IgnoreList, ...], path: str, is_dir: bool) -> bool:
    """Whether repository-relative ``path`` is ignored; ``lists`` is ordered deepest first."""
    for base_len, file_rx, file_neg, dir_rx, dir_neg in lists:
        if is_dir:
            m = dir_rx.fullmatch(path, base_len) if dir_rx is not None else None
            if m is not None:
                return not dir_neg[m.lastindex or 0]
        else:
            m = file_rx.fullmatch(path, base_len) if file_rx is not None else None
            if m is not None:
                return not file_neg[m.lastindex or 0]
    return False


def _info_exclude_path(top: str) -> str | None:
    """Path of ``info/exclude`` for the repository whose work tree is ``top``."""
    dotgit = os.path.join(top, ".git")
    if os.path.isdir(dotgit):
        return os.path.join(dotgit, "info", "exclude")
    try:  # worktree / submodule: ".git" is a file "gitdir: <path>"
        with open(dotgit, encoding="utf-8", errors="surrogateescape") as fh:
            content = fh.read().strip()
    except OSError:
        return None
    if not content.startswith("gitdir:"):
        return None
    gitdir = os.path.join(top, content[len("gitdir:") :].strip())
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
            gitdir = os.path.join(gitdir, fh.read().strip())
    except OSError:
        pass
    return os.path.join(gitdir, "info", "exclude")


def _repo_ignore_list(
    top: str, base: str, cache: dict[str, _Compiled | None]
) -> tuple[_IgnoreList, ...]:
    path = _info_exclude_path(top)
    compiled = _load_ignore_file(path, cache) if path is not None else None
    if compiled is None:
        return ()
    return ((len(base) + 1 if base else 0, *compiled),)


def _find_repo_top(abs_dir: str) -> str | None:
    d = abs_dir
    while True:
        if os.path.lexists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _ancestor_ignores(
    abs_dir: str, cache: dict[str, _Compiled | None]
) -> tuple[tuple[_IgnoreList, ...], str]:
    """Ignore lists in effect at ``abs_dir`` (excluding its own .gitignore), deepest first,
    and ``abs_dir`` relative to the repository top ("" outside a repository)."""
    top = _find_repo_top(abs_dir)
    if top is None:
        return (), ""
    rel = os.path.relpath(abs_dir, top)
    rel = "" if rel == os.curdir else rel.replace(os.sep, "/")
    lists = _repo_ignore_list(top, "", cache)
    cur_abs, cur_rel = top, ""
    for part in rel.split("/") if rel else ():
        compiled = _load_ignore_file(os.path.join(cur_abs, ".gitignore"), cache)
        if compiled is not None:
            lists = ((len(cur_rel) + 1 if cur_rel else 0, *compiled), *lists)
        cur_abs = os.path.join(cur_abs, part)
        cur_rel = f"{cur_rel}/{part}" if cur_rel else part
    return lists, rel


# ---------------------------------------------------------------------------------------------
# Excludes
# ---------------------------------------------------------------------------------------------


def _join_regex(parts: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in parts), re.DOTALL) if parts else None


@functools.lru_cache(maxsize=64)
def _compile_excludes(patterns: tuple[str, ...]) -> _Excludes:
    name_file: list[str] = []
    name_dir: list[str] = []
    path_file: list[str] = []
    path_dir: list[str] = []
    for raw in patterns:
        pat = raw.strip()
        dir_only = pat.endswith("/")
        pat = pat.rstrip("/")
        if not pat:
            continue
        anchored = "/" in pat
        body = _glob_to_regex(pat.lstrip("/"))
        if body is None:
            continue
        if anchored:
            path_dir.append(body)
            if not dir_only:
                path_file.append(body)
        else:
            name_dir.append(body)
            if not dir_only:
                name_file.append(body)
    return (
        _join_regex(name_file),
        _join_regex(name_dir),
        _join_regex(path_file),
        _join_regex(path_dir),
    )


@functools.lru_cache(maxsize=1024)
def _compile_one(pattern: str) -> _Excludes:
    return _compile_excludes((pattern,))


def glob_excludes(pattern: str, path: str | None, name: str) -> bool:
    """Whether ``exclude = [pattern]`` leaves out the file ``name`` at ``path``.

    ``path``: the file's "/"-separated path relative to the root, None for a file outside it
    (then, as in :func:`discover`, only patterns without a "/" apply, to the name). As when
    walking, the pattern matches the file or one of the directories above it: ``tests`` and
    ``tests/*`` cover ``tests/a/b.py``, ``src/*.py`` covers ``src/a.py`` only. This is the
    one glob dialect of the configuration (``per-file-ignores`` use it too).
    """
    name_file, name_dir, path_file, path_dir = _compile_one(pattern)
    if path is None:
        return name_file is not None and name_file.fullmatch(name) is not None
    parts = path.split("/")
    for i in range(len(parts) - 1):
        if name_dir is not None and name_dir.fullmatch(parts[i]):
            return True
        if path_dir is not None and path_dir.fullmatch("/".join(parts[: i + 1])):
            return True
    if name_file is not None and name_file.fullmatch(parts[-1]):
        return True
    return path_file is not None and path_file.fullmatch(path) is not None


# ---------------------------------------------------------------------------------------------
# Walking
# ---------------------------------------------------------------------------------------------


def _reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return _NOT_FOUND
    return exc.strerror or str(exc) or type(exc).__name__


def _rel_to(abs_path: str, root_abs: str) -> str | None:
    """``abs_path`` relative to ``root_abs`` with "/" separators, None if not below it."""
    try:
        rel = os.path.relpath(abs_path, root_abs)
    except ValueError:  # different drives on Windows
        return None
    if rel == os.curdir:
        return ""
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return None
    return rel.replace(os.sep, "/")


def _walk(
    display_root: str,
    abs_root: str,
    root_abs: str,
    excludes: _Excludes,
    suffixes: tuple[str, ...],
    respect_gitignore: bool,
    cache: dict[str, _Compiled | None],
    found: dict[str, Path],
    errors: list[tuple[Path, str]],
) -> None:
    name_file_rx, name_dir_rx, path_file_rx, path_dir_rx = excludes
    want_rrel = path_file_rx is not None or path_dir_rx is not None
    lists: tuple[_IgnoreList, ...] = ()
    grel = ""
    if respect_gitignore:
        lists, grel = _ancestor_ignores(abs_root, cache)
    rrel = _rel_to(abs_root, root_abs) if want_rrel else None

    # (path to return, absolute path, path relative to repo top, path relative to root, lists);
    # Path(parent) / name is much cheaper than Path("long/string/path").
    stack: list[tuple[Path, str, str, str | None, tuple[_IgnoreList, ...]]] = [
        (Path(display_root), abs_root, grel, rrel, lists)
    ]
    while stack:
        d_path, d_abs, d_grel, d_rrel, d_lists = stack.pop()
        try:
            with os.scandir(d_abs) as it:
                entries = list(it)
        except OSError as exc:
            errors.append((d_path, _reason(exc)))
            continue

        if respect_gitignore:
            has_gitignore = has_git = False
            for entry in entries:
                if entry.name == ".gitignore":
                    has_gitignore = True
                elif entry.name == ".git":
                    has_git = True
            if has_git and d_abs != abs_root:
                # A nested repository: its own ignore rules replace the outer ones.
                d_lists = _repo_ignore_list(d_abs, d_grel, cache)
            if has_gitignore:
                compiled = _load_ignore_file(os.path.join(d_abs, ".gitignore"), cache)
                if compiled is not None:
                    d_lists = ((len(d_grel) + 1 if d_grel else 0, *compiled), *d_lists)

        pre_g = d_grel + "/" if d_grel else ""
        pre_r = (d_rrel + "/" if d_rrel else "") if d_rrel is not None else None
        pre_abs = d_abs if d_abs.endswith(os.sep) else d_abs + os.sep
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if respect_gitignore and name == ".git":
                    continue
                if name_dir_rx is not None and name_dir_rx.fullmatch(name):
                    continue
                e_rrel = pre_r + name if pre_r is not None else None
                if path_dir_rx is not None and e_rrel is not None and path_dir_rx.fullmatch(e_rrel):
                    continue
                e_grel = pre_g + name
                if d_lists and _is_ignored(d_lists, e_grel, True):
                    continue
                stack.append((d_path / name, pre_abs + name, e_grel, e_rrel, d_lists))
            else:
                if not name.endswith(suffixes):
                    continue
                try:
                    if not entry.is_file():  # follows symlinks; skips dangling/dir links
                        continue
                except OSError:
                    continue
                if name_file_rx is not None and name_file_rx.fullmatch(name):
                    continue
                if path_file_rx is not None and pre_r is not None:
                    if path_file_rx.fullmatch(pre_r + name):
                        continue
                if d_lists and _is_ignored(d_lists, pre_g + name, False):
                    continue
                key = pre_abs + name
                if key not in found:
                    found[key] = d_path / name


def discover(
    paths: Sequence[str | os.PathLike[str]],
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    extend_exclude: Sequence[str] = (),
    suffixes: tuple[str, ...] = (".py",),
    root: Path | None = None,
    respect_gitignore: bool = True,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Return (files, errors). files: sorted, de-duplicated. errors: (path, one-line reason)
    for paths that do not exist or cannot be read/listed.

    * A path naming a file is always returned, whatever its suffix, excludes or gitignore.
    * A directory is walked recursively (symlinked directories are not followed) for files
      whose name ends with one of ``suffixes``.  A directory named explicitly is walked even
      if it matches an exclude or an ignore rule; the rules apply to what is found inside.
    * ``exclude`` + ``extend_exclude`` are gitignore-style globs.  Without a "/" a pattern is
      matched against an entry's name ("build", "*.egg-info"); with one, against the entry's
      path relative to ``root`` (default: the current directory), e.g. "tests/fixtures" or
      "src/**/gen_*.py".  A trailing "/" restricts a pattern to directories.  Excluded
      directories are not descended into.
    * With ``respect_gitignore``, ``.gitignore`` files (of the walked directories and of their
      ancestors up to the repository top, i.e. the nearest ancestor holding ``.git``) and the
      repository's ``info/exclude`` are honoured with git's semantics.
    * Returned paths keep the form they were given in: walking "src" yields "src/a.py".
    """
    excludes = _compile_excludes((*exclude, *extend_exclude))
    suffixes = tuple(suffixes)
    root_abs = os.path.abspath(os.fspath(root)) if root is not None else os.getcwd()
    cache: dict[str, _Compiled | None] = {}
    found: dict[str, Path] = {}  # absolute path -> path as it will be returned
    errors: list[tuple[Path, str]] = []
    walked: set[str] = set()

    for item in paths:
        display = os.fspath(item)
        try:
            st = os.stat(display)
        except OSError as exc:
            errors.append((Path(display), _reason(exc)))
            continue
        except ValueError as exc:  # e.g. an embedded NUL byte
            errors.append((Path(display), str(exc)))
            continue
        abs_path = os.path.abspath(display)
        if not stat.S_ISDIR(st.st_mode):
            if abs_path not in found:
                found[abs_path] = Path(display)
            continue
        if abs_path in walked:
            continue
        walked.add(abs_path)
        _walk(
            display,
            abs_path,
            root_abs,
            excludes,
            suffixes,
            respect_gitignore,
            cache,
            found,
            errors,
        )

    files = list(found.values())
    if os.name == "nt":  # Path order is case-insensitive there
        files.sort()
    else:  # the same order as Path.__lt__, but compared in C: much faster
        files.sort(key=_parts)
    return files, errors


def _parts(path: Path) -> tuple[str, ...]:
    return path.parts
