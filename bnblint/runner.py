"""Lint many files: byte prefilter in this process, parsing in a process pool when it pays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bnblint.pipeline import FileResult, lint_source, may_matter
from bnblint.settings import Settings
from bnblint.source import SourceError, read_bytes, read_source

# Below this many files that pass the prefilter, starting worker processes (each importing
# LibCST) costs more than it saves.
POOL_THRESHOLD = 16


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
    for path in files:
        rules = settings.rules_for(str(path))
        if not rules:
            continue
        try:
            data = read_bytes(path)
        except SourceError as exc:
            results.append(FileResult(str(path), error=str(exc)))
            continue
        if may_matter(data, rules):
            todo.append((path, data))
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    if len(todo) >= POOL_THRESHOLD and workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(_lint_one, p, d, settings, fix, unsafe_fixes, want_edits)
                for p, d in todo
            ]
            results.extend(f.result() for f in futures)
    else:
        results.extend(_lint_one(p, d, settings, fix, unsafe_fixes, want_edits) for p, d in todo)
    return results
