"""GitLab Code Quality (a Code Climate subset): a JSON list of issues with stable fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, TextIO

from bnblint.diagnostics import Finding, Level
from bnblint.output import Report
from bnblint.output.common import SourceLines, relative_path, strip_end

SEVERITY = {Level.ERROR: "major", Level.WARNING: "minor"}


def _root() -> Path:
    # GitLab resolves paths against the repository root, which CI_PROJECT_DIR names.
    return Path(os.environ.get("CI_PROJECT_DIR") or Path.cwd())


def fingerprint(path: str, code: str, message: str, line: str) -> str:
    """From what the finding says and the text of its line, not its position, so that the
    fingerprint survives edits elsewhere in the file and GitLab keeps tracking the issue."""
    data = "\0".join((path, code, message, line.strip()))
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def _unique(value: str, seen: set[str]) -> str:
    # Identical findings on identical lines would collide; GitLab drops duplicates, so number
    # the repeats (stable while their order is).
    n, candidate = 1, value
    while candidate in seen:
        candidate = hashlib.sha256(f"{value}:{n}".encode()).hexdigest()
        n += 1
    seen.add(candidate)
    return candidate


def issue(f: Finding, path: str, line: str, seen: set[str]) -> dict[str, Any]:
    return {
        "description": f"{f.code}: {f.message}",
        "check_name": f.code,
        "fingerprint": _unique(fingerprint(path, f.code, f.message, line), seen),
        "severity": SEVERITY[f.level],
        "location": {"path": path, "lines": {"begin": f.location.row, "end": f.end_location.row}},
    }


def render(report: Report, out: TextIO) -> None:
    root = _root()
    sources = SourceLines(report.results)
    seen: set[str] = set()
    issues = []
    for f in report.findings:
        lines = sources.of(f)
        line = strip_end(lines[f.location.row - 1]) if f.location.row <= len(lines) else ""
        issues.append(issue(f, relative_path(f.filename, root), line, seen))
    for result in report.errors:
        path = relative_path(result.filename, root)
        message = result.error or ""
        issues.append(
            {
                "description": message,
                "check_name": "bnblint-error",
                "fingerprint": _unique(fingerprint(path, "error", message, ""), seen),
                "severity": "critical",
                "location": {"path": path, "lines": {"begin": 1, "end": 1}},
            }
        )
    json.dump(issues, out, indent=2, ensure_ascii=False)
    out.write("\n")
