"""JSON Lines: one object per finding (the ``json`` format's fields), one per line."""

from __future__ import annotations

import json
from typing import Any, TextIO

from bnblint.output import Report
from bnblint.output.json_format import _filename, finding_dict
from bnblint.pipeline import FileResult


def error_dict(result: FileResult) -> dict[str, Any]:
    """An unreadable or unparsable file, with the same keys as a finding (``code`` null)."""
    return {
        "cell": None,
        "code": None,
        "end_location": None,
        "filename": _filename(result.filename),
        "fix": None,
        "level": "error",
        "load_site": None,
        "location": None,
        "message": result.error,
        "noqa_row": None,
        "url": None,
    }


def render(report: Report, out: TextIO) -> None:
    for f in report.findings:
        out.write(json.dumps(finding_dict(f), ensure_ascii=False) + "\n")
    for result in report.errors:
        out.write(json.dumps(error_dict(result), ensure_ascii=False) + "\n")
