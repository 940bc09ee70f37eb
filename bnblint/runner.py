"""Lint many files: byte prefilter in this process, parsing in a process pool when it pays."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from bnblint.pipeline import FileResult, lint_source, may_matter, words_for
from bnblint.settings import Settings
from bnblint.source import SourceError, read_bytes, read_source

# Below this many files that pass the prefilter, starting worker processes (each importing
# LibCST) costs more than it saves...
POOL_THRESHOLD = 16
# ...unless the tree is large: then a pool started at the first file that passes lets the
# workers import LibCST (about 0.25 s) while this process is still reading the rest.
LARGE_TREE = 500


def _warm_up() -> None:
    import bnblint.analysis.builder  # noqa: F401  (imports LibCST)


def _lint_one(
    path: Path, data: bytes, settings: Settings, fix: bool, unsafe_fixes: bool, want_edits: bool
) -> FileResult:
    try:
        source = read_source(path, data)
    except SourceError as exc:
        return FileResult(str(path), error=str(exc))
    result = lint_source(
        source.text, str(path), settings, fix=fix, unsafe_fixes=unsafe_fixes, want_edits=want_edits
    )
    result.source = source
    return result


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
            if early and pool is None:
                pool = _pool(workers)
            if pool is not None:
                futures.append(pool.submit(_lint_one, path, data, *args))
            else:
                todo.append((path, data))
        if pool is None and len(todo) >= POOL_THRESHOLD and workers > 1:
            pool = _pool(workers)
            futures.extend(pool.submit(_lint_one, p, d, *args) for p, d in todo)
            todo = []
        results.extend(_lint_one(p, d, *args) for p, d in todo)
        results.extend(f.result() for f in futures)
    finally:
        if pool is not None:
            pool.shutdown()
    return results


def _pool(workers: int) -> ProcessPoolExecutor:
    # fork where available: the workers start at once, with bnblint already imported.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_warm_up)
