"""Findings grouped under each file name (like ruff's ``grouped``), then the text summary."""

from __future__ import annotations

from itertools import groupby
from typing import TextIO

from bnblint.output import Report
from bnblint.output.text import _fixed_summary, _summary, finding_line


def render(report: Report, out: TextIO) -> None:
    findings = report.findings
    for filename, group in groupby(findings, key=lambda f: f.filename):
        items = list(group)
        out.write(f"\x1b[1m{filename}\x1b[0m:\n" if report.color else f"{filename}:\n")
        # Pad "row:col" so that the codes line up within a file.
        width = max(len(f"{f.location.row}:{f.location.column}") for f in items)
        for f in items:
            line = finding_line(f, report, filename=False)
            where, rest = line.split(": ", 1)
            out.write(f"  {where.ljust(width)} {rest}\n")
        out.write("\n")
    _fixed_summary(report, out)
    _summary(report, findings, out)
