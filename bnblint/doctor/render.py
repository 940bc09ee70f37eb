"""Print the doctor's checks: JSON, a rich table (when rich is installed), or plain text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from bnblint.doctor.logic import FAIL, PASS, SKIP, WARN, Check, verdict

COLORS = {PASS: "green", WARN: "yellow", FAIL: "red", SKIP: "bright_black"}


def to_json(checks: Sequence[Check]) -> str:
    return json.dumps(
        {"checks": [c.as_json() for c in checks], "verdict": verdict(checks)}, indent=2
    )


def verdict_line(checks: Sequence[Check]) -> str:
    result = verdict(checks)
    names = {s: [c.name for c in checks if c.status == s] for s in (FAIL, WARN, SKIP)}
    counts = ", ".join(
        f"{len(names[s])} {label}"
        for s, label in ((FAIL, "failed"), (WARN, "warned"), (SKIP, "skipped"))
        if names[s]
    )
    head = f"Verdict: {result.upper()}" + (f" ({counts})" if counts else "")
    if result == FAIL:
        return f"{head}: fix {', '.join(names[FAIL])} before loading 4-bit models here."
    if result == WARN:
        return f"{head}: 4-bit loads should work; review {', '.join(names[WARN])}."
    gpu = next((c for c in checks if c.name == "gpu"), None)
    if gpu is not None and gpu.status == SKIP:
        return f"{head}: no GPU, so 4-bit runs on the bitsandbytes CPU backend."
    return f"{head}: 4-bit bitsandbytes loads should work here."


def to_text(checks: Sequence[Check], out: TextIO, color: bool) -> None:
    import click

    width = max(len(c.name) for c in checks) if checks else 0
    pad = " " * (6 + width + 2)
    for c in checks:
        label = (
            click.style(f"{c.status.upper():<4}", fg=COLORS[c.status], bold=True)
            if color
            else f"{c.status.upper():<4}"
        )
        out.write(f"{label}  {c.name:<{width}}  {c.reason}\n")
        if c.remedy:
            fix = f"fix: {c.remedy}"
            out.write(f"{pad}{click.style(fix, dim=True) if color else fix}\n")
    line = verdict_line(checks)
    if color:
        line = click.style(line, fg=COLORS[verdict(checks)], bold=True)
    out.write(f"\n{line}\n")


def to_rich(checks: Sequence[Check], out: TextIO, color: bool) -> bool:
    """Print with rich if it is installed; False if it is not."""
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        return False
    console = Console(file=out, no_color=not color, highlight=False, soft_wrap=False)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result")
    for c in checks:
        cell = Text(c.reason)  # Text, not markup: reasons contain [tool.bnblint]
        if c.remedy:
            cell.append(f"\nfix: {c.remedy}", style="dim")
        table.add_row(Text(c.status.upper(), style=f"bold {COLORS[c.status]}"), c.name, cell)
    console.print(table)
    console.print()
    console.print(Text(verdict_line(checks), style=f"bold {COLORS[verdict(checks)]}"))
    return True
