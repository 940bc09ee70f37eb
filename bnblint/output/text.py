"""Human-readable output: ``path:row:col: CODE [*] message``, then a summary line."""

from __future__ import annotations

from collections import Counter
from typing import TextIO

from bnblint.diagnostics import Applicability, Finding
from bnblint.output import Report


def _style(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def fix_marker(finding: Finding, unsafe_fixes: bool) -> str:
    if finding.applicability is Applicability.SAFE or (
        unsafe_fixes and finding.applicability is Applicability.UNSAFE
    ):
        return "[*] "
    return ""


def finding_line(f: Finding, report: Report, *, filename: bool = True) -> str:
    """One finding's line (without the path when ``filename`` is false)."""
    cell = f"cell {f.cell}:" if f.cell is not None else ""
    where = f"{cell}{f.location.row}:{f.location.column}"
    if filename:
        where = f"{_style(f.filename, '1', report.color)}:{where}"
    code = _style(f.code, "1;31", report.color)
    return f"{where}: {code} {fix_marker(f, report.unsafe_fixes)}{f.message}"


def render(report: Report, out: TextIO) -> None:
    findings = report.findings
    for f in findings:
        out.write(finding_line(f, report) + "\n")
    if report.show_fixes or report.fix:
        _fixed_summary(report, out)
    _summary(report, findings, out)


def _fixed_summary(report: Report, out: TextIO) -> None:
    fixed = [r for r in report.results if r.fixed]
    if not fixed or not report.show_fixes:
        return
    total = sum(len(r.fixed) for r in fixed)
    out.write(f"\nFixed {total} error{'s' if total != 1 else ''}:\n")
    for result in fixed:
        out.write(f"- {result.filename}:\n")
        for (code, _), n in sorted(Counter((f.code, f.message) for f in result.fixed).items()):
            out.write(f"    {n} × {code}\n")


def _summary(report: Report, findings: list[Finding], out: TextIO) -> None:
    fixed = sum(len(r.fixed) for r in report.results)
    n = len(findings)
    plural = "s" if n != 1 else ""
    if report.fix and fixed:
        out.write(f"Found {n + fixed} error{'s' if n + fixed != 1 else ''} ")
        out.write(f"({fixed} fixed, {n} remaining).\n")
        return
    if n == 0:
        if not report.errors:
            out.write("All checks passed!\n")
        return
    safe = sum(1 for f in findings if f.applicability is Applicability.SAFE)
    unsafe = sum(1 for f in findings if f.applicability is Applicability.UNSAFE)
    fixable = safe + (unsafe if report.unsafe_fixes else 0)
    hint = " --unsafe-fixes" if report.unsafe_fixes and unsafe else ""
    line = f"Found {n} error{plural}"
    if fixable:
        line += f" ({fixable} fixable with --fix{hint})"
    out.write(line + ".\n")
    if unsafe and not report.unsafe_fixes:
        s = "es" if unsafe != 1 else ""
        out.write(f"{unsafe} hidden fix{s} can be enabled with the `--unsafe-fixes` option.\n")
