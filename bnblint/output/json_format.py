"""JSON output: a list of objects with ruff's field names, plus ``load_site``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from bnblint.diagnostics import Finding, Location
from bnblint.output import Report


def _loc(loc: Location | None) -> dict[str, int] | None:
    return None if loc is None else {"column": loc.column, "row": loc.row}


def _filename(name: str) -> str:
    return name if name == "-" else str(Path(name).absolute())


def finding_dict(f: Finding) -> dict[str, Any]:
    fix = None
    if f.applicability is not None:
        fix = {
            "applicability": f.applicability.value,
            "edits": [
                {
                    "content": e.content,
                    "end_location": _loc(e.end_location),
                    "location": _loc(e.location),
                }
                for e in f.edits
            ],
            "message": f.fix_message,
        }
    return {
        "cell": f.cell,
        "code": f.code,
        "end_location": _loc(f.end_location),
        "filename": _filename(f.filename),
        "fix": fix,
        "level": f.level.value,
        "load_site": _loc(f.load_site),
        "location": _loc(f.location),
        "message": f.message,
        "noqa_row": f.noqa_row,
        "url": f.url,
    }


def render(report: Report, out: TextIO) -> None:
    items = [finding_dict(f) for f in report.findings]
    # Unreadable files, and fixes not applied (a syntax error, no convergence, lost bytes).
    problems = [(r, r.error) for r in report.errors]
    problems += [(r, p) for r in report.results for p in r.fix_problems]
    for r, message in problems:
        items.append(
            {
                "cell": None,
                "code": None,
                "end_location": None,
                "filename": _filename(r.filename),
                "fix": None,
                "level": "error",
                "load_site": None,
                "location": None,
                "message": message,
                "noqa_row": None,
                "url": None,
            }
        )
    json.dump(items, out, indent=2, ensure_ascii=False)
    out.write("\n")
