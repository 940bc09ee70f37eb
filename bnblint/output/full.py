"""Each finding with its source lines, the span underlined, and its fix as a unified diff."""

from __future__ import annotations

import difflib
from typing import TextIO

from bnblint.diagnostics import Applicability, Finding
from bnblint.output import Report
from bnblint.output.common import SourceLines, apply_edits, split_lines, strip_end
from bnblint.output.text import _fixed_summary, _summary, finding_line

CONTEXT = 1  # source lines shown around the span
MAX_SPAN_LINES = 6  # longer spans show their first and last lines only


def _red(text: str, color: bool) -> str:
    return f"\x1b[1;31m{text}\x1b[0m" if color else text


def _underline(line: str, start: int, end: int) -> str:
    """Blanks up to ``start`` (tabs kept, so the carets line up) and carets to ``end``."""
    pad = "".join(c if c == "\t" else " " for c in line[:start])
    return pad + "^" * max(end - start, 1)


def _frame(f: Finding, lines: list[str], color: bool) -> list[str]:
    first, last = f.location.row, min(f.end_location.row, len(lines))
    if first > len(lines):
        return []
    rows = list(range(first, last + 1))
    if len(rows) > MAX_SPAN_LINES:
        rows = rows[:3] + [0] + rows[-2:]  # 0 marks the elided middle
    shown = [r for r in range(max(1, first - CONTEXT), first)] + rows
    shown += [r for r in range(last + 1, min(len(lines), last + CONTEXT) + 1)]
    width = len(str(max(shown)))
    gutter = " " * width + " |"
    out = [gutter]
    for row in shown:
        if row == 0:
            out.append(" " * width + " ...")
            continue
        text = strip_end(lines[row - 1])
        out.append(f"{row:>{width}} | {text}".rstrip())
        if first <= row <= last:
            indent = len(text) - len(text.lstrip())
            start = f.location.column - 1 if row == first else indent
            end = f.end_location.column - 1 if row == last else len(text)
            label = f" {f.code}" if row == last else ""
            out.append(f"{gutter} {_red(_underline(text, start, end), color)}{label}")
    out.append(gutter)
    return out


def _fix(f: Finding, lines: list[str]) -> list[str]:
    if f.fix_message is None:
        return []
    kind = "unsafe fix" if f.applicability is Applicability.UNSAFE else "safe fix"
    if f.applicability is Applicability.DISPLAY_ONLY:
        kind = "suggestion"
    out = [" " * 2 + f"= help: {f.fix_message} ({kind})"]
    if f.edits and lines:
        before = "".join(lines)
        after = apply_edits(before, f.edits)
        diff = difflib.unified_diff(
            split_lines(before),
            split_lines(after),
            fromfile=f"a/{f.filename}",
            tofile=f"b/{f.filename}",
            n=1,
        )
        out.extend(strip_end(line) for line in diff)
    return out


def render(report: Report, out: TextIO) -> None:
    findings = report.findings
    sources = SourceLines(report.results)
    for f in findings:
        lines = sources.of(f)
        # A fix in a notebook may edit other cells too (an import): no diff of one cell.
        fix_lines = lines if f.cell is None else []
        block = [finding_line(f, report), *_frame(f, lines, report.color), *_fix(f, fix_lines)]
        out.write("\n".join(block) + "\n\n")
    _fixed_summary(report, out)
    _summary(report, findings, out)
