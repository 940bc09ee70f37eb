"""One line per finding, ``path:row:col: CODE [*] message``, and nothing else (for tools)."""

from __future__ import annotations

from typing import TextIO

from bnblint.output import Report
from bnblint.output.text import finding_line


def render(report: Report, out: TextIO) -> None:
    for f in report.findings:
        out.write(finding_line(f, report) + "\n")
