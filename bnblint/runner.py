"""Lint many files: byte prefilter in this process, parsing in a process pool when it pays."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from bnblint.diagnostics import Finding
from bnblint.guard import MAX_NESTING, RECURSION, TOO_DEEP, nesting_depth
from bnblint.pipeline import FileResult, lint_source, may_matter, rule_words, words_for
from bnblint.project import Project, find_root
from bnblint.settings import Settings
from bnblint.source import SourceError, read_bytes, read_source

# Below this many files that pass the prefilter, starting worker processes (each importing
# the analysis) costs more than it saves...
POOL_THRESHOLD = 16
# ...unless the tree is large: then a pool started at the first file that passes lets the
# workers import the analysis and the rules while this process is still reading the rest.
LARGE_TREE = 500


def _warm_up(fixes: bool = False) -> None:
    import bnblint.analysis.builder  # noqa: F401

    if fixes:
        import bnblint.fix.apply  # noqa: F401  (imports LibCST, about 0.25 s)


# Projects by root, per process: the files of one run share their module summaries.
_PROJECTS: dict[Path, Project | None] = {}


def project_for(path: Path) -> Project | None:
    """The project a file belongs to (nearest pyproject.toml/.git/setup.py above it)."""
    root = _root_for_dir(os.path.dirname(os.path.abspath(path)))
    if root is None:
        root = _fallback_root(os.path.abspath(path))
    if root is None:
        return None
    if root not in _PROJECTS:
        _PROJECTS[root] = Project(root)
    return _PROJECTS[root]


def _fallback_root(path: str) -> Path | None:
    """A tree with no pyproject.toml, .git or setup.py (a copied checkout): the current
    directory is the project when the file is inside it, as Python's path would have it."""
    cwd = os.getcwd()
    if cwd in ("/", os.path.expanduser("~")) or not path.startswith(cwd + os.sep):
        return None
    return Path(cwd)


@lru_cache(maxsize=4096)
def _root_for_dir(directory: str) -> Path | None:
    return find_root(Path(os.path.realpath(directory)) / "_")


def _lint_one(
    path: Path, data: bytes, settings: Settings, fix: bool, unsafe_fixes: bool, want_edits: bool
) -> FileResult:
    try:
        source = read_source(path, data)
    except SourceError as exc:
        return FileResult(str(path), error=str(exc))
    result = guarded(
        source.text,
        str(path),
        lambda: lint_source(
            source.text,
            str(path),
            settings,
            fix=fix,
            unsafe_fixes=unsafe_fixes,
            want_edits=want_edits,
            project=project_for(path),
        ),
    )
    result.source = source
    return result


def guarded(text: str, filename: str, lint: Callable[[], FileResult]) -> FileResult:
    """``lint()``, unless the text is nested deeper than the parsers hold (one error line
    instead), or the analysis recurses too deep on it: one file must not take the run down."""
    if filename.endswith(".py") and nesting_depth(text) > MAX_NESTING:
        return FileResult(filename, error=TOO_DEEP)
    try:
        return lint()
    except RecursionError:
        return FileResult(filename, error=RECURSION)


def lint_one_text(
    text: str,
    filename: str,
    settings: Settings,
    *,
    fix: bool = False,
    unsafe_fixes: bool = False,
    want_edits: bool = False,
) -> FileResult:
    """One document given as text (flake8, stdin, an editor buffer), analysed with the project
    around its file when there is one: its imports resolve, and the findings its importers'
    loads reveal in it are reported, as ``bnblint check`` on the whole tree reports them."""
    path = Path(filename)
    project = project_for(path) if filename not in ("-", "") else None
    if project is not None:
        project.overlays[str(path.resolve())] = text
    try:
        result = guarded(
            text,
            filename,
            lambda: lint_source(
                text,
                filename,
                settings,
                fix=fix,
                unsafe_fixes=unsafe_fixes,
                want_edits=want_edits,
                project=project,
            ),
        )
        if project is None or path.suffix != ".py" or result.error is not None:
            return result
        # With ``fix``, the importers' findings in this file need their edits: they fix it.
        results = [result, *_importers([path], settings, fix, unsafe_fixes, want_edits)]
        foreign_fix = fix and result.fixed_text is None
        merge_foreign(results, [path], False, unsafe_fixes)
        if foreign_fix:
            from bnblint.source import SourceFile

            result.source = result.source or SourceFile(path, text, "utf-8")
            _apply_foreign_fixes(result, unsafe_fixes)
        return result
    finally:
        if project is not None:
            project.overlays.pop(str(path.resolve()), None)


def merge_foreign(
    results: list[FileResult],
    files: Sequence[Path],
    fix: bool,
    unsafe_fixes: bool,
    settings: Settings | None = None,
) -> None:
    """Give each linted file the findings other files' loads revealed in it, and, with
    ``fix``, apply their fixes where the file's own fixes did not already change it."""
    by_path: dict[str, FileResult] = {os.path.realpath(r.filename): r for r in results}
    named = {os.path.realpath(p): p for p in files}
    for result in list(results):
        for finding in result.foreign:
            key = os.path.realpath(finding.filename)
            owner = by_path.get(key)
            if owner is None:
                if key not in named:
                    continue  # not linted in this run: its own run reports it
                owner = _empty_result(named[key])
                if owner is None:
                    continue
                results.append(owner)
                by_path[key] = owner
            if owner.error is not None:
                continue
            finding.filename = owner.filename
            owner.revealed_by.add(result.filename)
            spot = (finding.code, finding.location)
            same = [f for f in owner.findings if (f.code, f.location) == spot]
            if same:
                # Its own analysis found it too (through the same importer): it is as much a
                # finding of that file's loads, re-derived in the fix rounds.
                owner.from_foreign.extend(f for f in same if f not in owner.from_foreign)
            elif all((f.code, f.location) != spot for f in owner.fixed):
                owner.findings.append(finding)
                owner.from_foreign.append(finding)
        result.foreign = []
    if not fix:
        for result in results:
            result.findings.sort(key=Finding.sort_key)
        return
    changed: list[FileResult] = []
    for r in results:
        if r.source is None:
            continue
        if r.fixed_text is None:
            if _apply_foreign_fixes(r, unsafe_fixes):
                changed.append(r)
        elif r.from_foreign:
            # Its own fixes changed it: what other files reveal in it is re-derived against its
            # new text in the rounds (the edits merged here are on the text read).
            changed.append(r)
    if changed and settings is not None:
        _project_fix_rounds(results, settings, unsafe_fixes, changed)
    for result in results:
        result.findings.sort(key=Finding.sort_key)


def _empty_result(path: Path) -> FileResult | None:
    try:
        source = read_source(path)
    except SourceError:
        return None
    return FileResult(str(path), source=source)


def _apply_foreign_fixes(result: FileResult, unsafe_fixes: bool) -> bool:
    """Apply fixes given as text edits on the file's current text (its fixed text, else what
    was read), skipping any that overlap an edit already applied (the next round applies it).
    Whether anything was applied."""
    assert result.source is not None
    text = result.fixed_text if result.fixed_text is not None else result.source.text
    out, applied = _splice_fixes(text, result.findings, unsafe_fixes)
    if not applied:
        return False
    result.fixed_text = out
    result.fixed = [*result.fixed, *applied]
    result.findings = [f for f in result.findings if f not in applied]
    result.from_foreign = [f for f in result.from_foreign if f not in applied]
    return True


def _splice_fixes(
    text: str, findings: Sequence[Finding], unsafe_fixes: bool
) -> tuple[str, list[Finding]]:
    from bnblint.fix.apply import LineIndex
    from bnblint.pipeline import fix_allowed, parse_ast

    index = LineIndex(text)
    chosen: list[tuple[int, int, str]] = []
    applied: list[Finding] = []
    for finding in findings:
        if not finding.edits or not fix_allowed(finding.applicability, unsafe_fixes):
            continue
        spans = [
            (index.offset(e.location), index.offset(e.end_location), e.content)
            for e in finding.edits
        ]
        new = [s for s in spans if s not in chosen]
        if any(a < d and c < b or (a == b == c == d) for a, b, _ in new for c, d, _ in chosen):
            continue
        chosen.extend(new)
        applied.append(finding)
    if not applied:
        return text, []
    out = text
    for start, end, content in sorted(chosen, reverse=True):
        out = out[:start] + content + out[end:]
    try:
        parse_ast(out)
    except (SyntaxError, ValueError):
        return text, []  # never write a file that does not parse
    return out, applied


def _project_fix_rounds(
    results: list[FileResult], settings: Settings, unsafe_fixes: bool, changed: list[FileResult]
) -> None:
    """Fixes revealed in a file by another file's loads, to a fixpoint: after a round changes
    a file, the files whose loads reach it are analysed again against its new text (a fix
    that overlapped one applied, or one that the first enabled, comes next), as the fix loop
    of one file does. At most ``MAX_FIX_PASSES`` rounds; the texts are only written after."""
    from bnblint.fix.engine import MAX_FIX_PASSES

    by_name = {r.filename: r for r in results}
    for _ in range(MAX_FIX_PASSES - 1):
        if not changed:
            return
        owners = {os.path.realpath(r.filename): r for r in changed}
        projects: dict[int, Project] = {}
        for owner in changed:
            project = project_for(Path(owner.filename))
            if project is not None and owner.fixed_text is not None:
                project.set_overlay(owner.filename, owner.fixed_text)
                projects[id(project)] = project
        sources = sorted({s for owner in changed for s in owner.revealed_by})
        revealed: dict[str, list[Finding]] = {}
        for name in sources:
            source = by_name.get(name)
            path = Path(name)
            try:
                if source is not None and source.fixed_text is not None:
                    text = source.fixed_text
                else:
                    text = read_source(path).text
            except SourceError:
                continue
            again = lint_source(
                text, name, settings, want_edits=True, project=project_for(path)
            )
            for finding in again.foreign:
                target = owners.get(os.path.realpath(finding.filename))
                if target is not None:
                    finding.filename = target.filename
                    revealed.setdefault(target.filename, []).append(finding)
        changed = []
        for owner in owners.values():
            found = revealed.get(owner.filename, [])
            # What the owner's findings from other files now are: this round's, not the last.
            stale = set(map(id, owner.from_foreign))
            owner.findings = [f for f in owner.findings if id(f) not in stale]
            owner.findings.extend(found)
            owner.from_foreign = list(found)
            if _apply_foreign_fixes(owner, unsafe_fixes):
                changed.append(owner)
        for project in projects.values():
            for owner in owners.values():
                project.set_overlay(owner.filename, None)


def lint_paths(
    files: Sequence[Path],
    settings: Settings,
    *,
    fix: bool = False,
    unsafe_fixes: bool = False,
    want_edits: bool = False,
    jobs: int | None = None,
) -> list[FileResult]:
    results: list[FileResult] = []
    todo: list[tuple[Path, bytes]] = []
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    early = workers > 1 and len(files) >= LARGE_TREE
    pool: ProcessPoolExecutor | None = None
    futures: list[Future[FileResult]] = []
    args = (settings, fix, unsafe_fixes, want_edits)
    # Without per-file ignores every file gets the same rules: decide them, and their words, once.
    shared = None if settings.per_file_ignores else settings.rules_for(None)
    shared_words = words_for(shared) if shared is not None else ()
    try:
        for path in files:
            rules = shared if shared is not None else settings.rules_for(str(path))
            if not rules:
                continue
            try:
                data = read_bytes(path)
            except SourceError as exc:
                results.append(FileResult(str(path), error=str(exc)))
                continue
            if shared is not None:
                if not any(word in data for word in shared_words):
                    continue
            elif not may_matter(data, rules):
                continue
            if not any(w in data for w in rule_words(rules)) and project_for(path) is None:
                continue  # only a load, and no project whose modules could quantize it
            if early and pool is None:
                pool = _pool(workers, fix or want_edits)
            if pool is not None:
                futures.append(pool.submit(_lint_one, path, data, *args))
            else:
                todo.append((path, data))
        if pool is None and len(todo) >= POOL_THRESHOLD and workers > 1:
            pool = _pool(workers, fix or want_edits)
            futures.extend(pool.submit(_lint_one, p, d, *args) for p, d in todo)
            todo = []
        results.extend(_lint_one(p, d, *args) for p, d in todo)
        results.extend(f.result() for f in futures)
    finally:
        if pool is not None:
            pool.shutdown()
    results.extend(_importers(files, settings, fix, unsafe_fixes, want_edits))
    merge_foreign(results, files, fix, unsafe_fixes, settings)
    return [r for r in results if not r.context_only]


def _importers(
    files: Sequence[Path], settings: Settings, fix: bool, unsafe_fixes: bool, want_edits: bool
) -> list[FileResult]:
    """The project files outside this run that import the named ones: their loads may reveal
    findings in the named files (a config a named module defines), so a file's findings do
    not depend on which of the project's files were named. Only their foreign findings count."""
    by_project: dict[Path, set[str]] = {}
    for path in files:
        if path.suffix != ".py":
            continue
        project = project_for(path)
        if project is not None:
            by_project.setdefault(project.root, set()).add(str(path.resolve()))
    out: list[FileResult] = []
    for root, named in by_project.items():
        project = _PROJECTS[root]
        assert project is not None
        if len(named) >= len(project.files()) and named >= {str(p) for p in project.files()}:
            continue  # the whole tree is in the run
        for path in project.importers_of(named):
            if str(path) in named:
                continue
            try:
                data = read_bytes(path)
            except SourceError:
                continue
            if not may_matter(data, settings.rules_for(str(path))):
                continue
            # Not fixed itself; with ``fix`` its findings in the named files come with their
            # edits (LibCST parsed for them), which fix those files.
            result = _lint_one(path, data, settings, False, unsafe_fixes, want_edits or fix)
            result.findings, result.fixed, result.fixed_text = [], [], None
            result.context_only = True
            out.append(result)
    return out


def _pool(workers: int, fixes: bool) -> ProcessPoolExecutor:
    """``fixes``: the files' fixes are applied or rendered, so the workers import LibCST."""
    # fork where available: the workers start at once, with bnblint already imported.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_warm_up, initargs=(fixes,)
    )
