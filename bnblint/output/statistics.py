"""``--statistics``: how many findings of each code, most frequent first (like ruff's)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TextIO

from bnblint.output import Report
from bnblint.output.text import fix_marker
from bnblint.rules import RULES_BY_CODE


@dataclass(frozen=True)
class Statistic:
    code: str
    name: str
    count: int
    fixable: bool  # some finding of this code has a fix that --fix applies with these options


def statistics(report: Report) -> list[Statistic]:
    findings = report.findings
    counts = Counter(f.code for f in findings)
    fixable = {f.code for f in findings if fix_marker(f, report.unsafe_fixes)}
    rows = [
        Statistic(code, getattr(RULES_BY_CODE.get(code), "name", ""), n, code in fixable)
        for code, n in counts.items()
    ]
    return sorted(rows, key=lambda s: (-s.count, s.code))


def render_text(report: Report, out: TextIO) -> None:
    rows = statistics(report)
    if not rows:
        return
    count_width = max(len(str(s.count)) for s in rows)
    code_width = max(len(s.code) for s in rows)
    any_fixable = any(s.fixable for s in rows)
    for s in rows:
        marker = ("[*] " if s.fixable else "[ ] ") if any_fixable else ""
        out.write(f"{s.count:>{count_width}}\t{s.code:<{code_width}}\t{marker}{s.name}\n")
    if any_fixable:
        out.write("[*] fixable with `bnblint check --fix`\n")


def render_json(report: Report, out: TextIO) -> None:
    rows = [
        {"code": s.code, "name": s.name, "count": s.count, "fixable": s.fixable}
        for s in statistics(report)
    ]
    json.dump(rows, out, indent=2)
    out.write("\n")
