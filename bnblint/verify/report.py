"""The verdict for each site, and the report: JSON, a rich table (on a terminal), plain text.

The report is one JSON-able dict, built by ``bnblint.verify.command``; every format prints the
same data. A site's verdict compares what the worker saw for the call as written and as fixed.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

FAILING = frozenset({"fix-fails", "load-fails", "error"})
COLORS = {
    "verified": "green",
    "no-fix": "bright_black",
    "skipped": "yellow",
    "fix-fails": "red",
    "load-fails": "red",
    "error": "red",
}
SHOWN_RECORDS = 5  # warnings per variant in the text report; --json has them all
RECORD_STAGES = ("config", "load", "forward")


def works(result: dict[str, Any] | None) -> bool:
    """Loaded, and its forward pass ran."""
    if not result or not result.get("loaded"):
        return False
    return "error" not in (result.get("forward") or {})


def speedup(original: dict[str, Any] | None, fixed: dict[str, Any] | None) -> float | None:
    """How many times faster the fixed variant's forward pass is (below 1: slower)."""
    if not (works(original) and works(fixed)) or original is fixed:
        return None
    assert original is not None and fixed is not None
    before, after = original["forward"]["seconds"], fixed["forward"]["seconds"]
    return round(before / after, 2) if after > 0 else None


def judge(entry: dict[str, Any]) -> tuple[str, str]:
    """The site's status and verdict."""
    if entry.get("reason"):
        status = "error" if entry.get("status") == "error" else "skipped"
        return status, f"{status}: {entry['reason']}"
    original = entry["original"]["result"]
    fixed = entry["fixed"]["result"]
    if entry["fixed"]["same_as_original"]:
        if works(original):
            return "no-fix", "no fix to verify"
        return "load-fails", f"no fix to verify, and the call fails: {outcome(original)}"
    if works(fixed):
        return "verified", "fix verified"
    same = outcome(fixed) == outcome(original)
    return "fix-fails", f"fix fails: {outcome(fixed)}" + (" (as before the fix)" if same else "")


def outcome(result: dict[str, Any] | None) -> str:
    """Why a variant does not work, in one line."""
    if result is None:
        return "not run"
    error = result.get("error")
    if error:
        where = {"config": " (building the config)", "worker": " (in the worker)"}
        cause = f" ({error['cause']})" if error.get("cause") else ""
        return f"{error['type']}: {error['message']}{cause}{where.get(error['stage'], '')}"
    forward = result.get("forward") or {}
    if "error" in forward:
        e = forward["error"]
        return f"loads, but the forward pass raises {e['type']}: {e['message']}"
    return "loads"


def quantization(result: dict[str, Any]) -> str:
    layers = result.get("layers", {})
    if layers.get("Linear4bit"):
        return f"4-bit ({layers['Linear4bit']} Linear4bit)"
    if layers.get("Linear8bitLt"):
        return f"8-bit ({layers['Linear8bitLt']} Linear8bitLt)"
    return "not quantized"


def megabytes(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.1f} MiB"


def seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 0.1 else f"{s * 1000:.1f} ms"


def speed_words(ratio: float | None) -> str:
    if ratio is None:
        return ""
    if ratio >= 1.1:
        return f" ({ratio:.1f}x faster)"
    if ratio <= 1 / 1.1:
        return f" ({1 / ratio:.1f}x slower)"
    return " (about the same)"


def summary(result: dict[str, Any] | None, ratio: float | None = None) -> str:
    """One variant in one line: outcome, quantization, compute dtype, placement, memory, time."""
    if result is None or result.get("error"):
        return outcome(result)
    parts = ["loads", quantization(result)]
    if result.get("compute_dtypes"):
        parts.append("compute " + "/".join(result["compute_dtypes"]))
    parts.append("on " + ", ".join(result.get("devices", [])))
    memory = megabytes(result.get("footprint_bytes"))
    if result.get("peak_bytes") is not None:
        memory += f" (peak {megabytes(result['peak_bytes'])})"
    parts.append(memory)
    forward = result.get("forward") or {}
    if "seconds" in forward:
        parts.append(f"forward {seconds(forward['seconds'])}{speed_words(ratio)}")
    elif "error" in forward:
        parts.append(f"forward fails: {forward['error']['type']}: {forward['error']['message']}")
    return ", ".join(parts)


def notable(result: dict[str, Any] | None) -> list[str]:
    """Warnings and WARNING-or-worse log lines, with their count."""
    if not result:
        return []
    out = []
    for r in result.get("records", []):
        if r["stage"] in RECORD_STAGES and (
            r["kind"] == "warning" or r["level"] in ("WARNING", "ERROR", "CRITICAL")
        ):
            count = f" (x{r['count']})" if r["count"] > 1 else ""
            out.append(f"{r['source']}: {r['message']}{count}")
    return out


def totals(report: dict[str, Any]) -> str:
    labels = {
        "verified": "fix verified",
        "fix-fails": "fix fails",
        "no-fix": "no fix to verify",
        "load-fails": "fails with no fix",
        "skipped": "skipped",
        "error": "error",
    }
    counts: dict[str, int] = {}
    for site in report["sites"]:
        counts[site["status"]] = counts.get(site["status"], 0) + 1
    n = len(report["sites"])
    if not n:
        return f"No bitsandbytes loads in {report['file']}."
    parts = [f"{counts[s]} {labels[s]}" for s in labels if s in counts]
    return f"{n} site{'s' if n != 1 else ''}: {', '.join(parts)}."


def environment_line(report: dict[str, Any]) -> str | None:
    env = report.get("environment")
    if not env:
        return None
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if k != "python")
    where = report["device"] + (f" ({env['gpu']})" if env.get("gpu") else "")
    return f"Verified on {where}: {versions}."


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)


def _lines(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows describing one site, shared by the text and rich formats."""
    rows: list[tuple[str, str]] = []
    model = entry.get("model")
    if model:
        rows.append(("model", model["description"]))
    if entry.get("reason"):
        return rows
    changes = entry["fixed"]["changes"]
    for i, change in enumerate(changes or ["none"]):
        rows.append(("fix" if i == 0 else "", change))
    for note in entry.get("notes", []):
        rows.append(("note", note))
    original, fixed = entry["original"]["result"], entry["fixed"]["result"]
    if entry["fixed"]["same_as_original"]:
        rows.append(("load", summary(original)))
        variants = [("warnings", original)]
    else:
        rows.append(("original", summary(original)))
        rows.append(("fixed", summary(fixed, entry.get("speedup"))))
        variants = [("warnings (original)", original), ("warnings (fixed)", fixed)]
    for label, result in variants:
        shown = notable(result)
        for i, line in enumerate(shown[:SHOWN_RECORDS]):
            rows.append((label if i == 0 else "", line))
        if len(shown) > SHOWN_RECORDS:
            rows.append(("", f"... {len(shown) - SHOWN_RECORDS} more (--json has them all)"))
    return rows


def heading(entry: dict[str, Any], filename: str) -> str:
    return f"{filename}:{entry['line']}:{entry['column']}: {entry['call']}"


def to_text(report: dict[str, Any], out: TextIO, color: bool) -> None:
    import click

    for entry in report["sites"]:
        out.write(
            (
                click.style(heading(entry, report["file"]), bold=True)
                if color
                else heading(entry, report["file"])
            )
            + "\n"
        )
        rows = _lines(entry)
        width = max([len(label) for label, _ in rows] + [len("verdict")])
        for label, text in rows:
            out.write(f"  {label + ':' if label else '':<{width + 1}} {text}\n")
        verdict = entry["verdict"]
        if color:
            verdict = click.style(verdict, fg=COLORS[entry["status"]], bold=True)
        out.write(f"  {'verdict:':<{width + 1}} {verdict}\n\n")
    env = environment_line(report)
    if env:
        out.write(env + "\n")
    out.write(totals(report) + "\n")


def facts(result: dict[str, Any] | None, ratio: float | None = None) -> dict[str, str]:
    """One variant as table cells."""
    if result is None or result.get("error"):
        return {"result": outcome(result)}
    forward = result.get("forward") or {}
    if "seconds" in forward:
        timing = seconds(forward["seconds"]) + speed_words(ratio)
    else:
        timing = outcome(result)
    memory = megabytes(result.get("footprint_bytes"))
    if result.get("peak_bytes") is not None:
        memory += f" (peak {megabytes(result['peak_bytes'])})"
    return {
        "result": "loads",
        "quantized": quantization(result),
        "compute": "/".join(result.get("compute_dtypes", [])) or "-",
        "placement": ", ".join(result.get("devices", [])),
        "memory": memory,
        "forward": timing,
        "warnings": "\n".join(notable(result)[:SHOWN_RECORDS]) or "-",
    }


def to_rich(report: dict[str, Any], out: TextIO, color: bool) -> bool:
    """Print with rich if it is installed (the two variants side by side); False if not."""
    try:
        from rich.console import Console
        from rich.padding import Padding
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        return False

    def table(*headers: str) -> Table:
        t = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_header=bool(headers))
        t.header_style = "bold"
        for i, header in enumerate(headers or ("", "")):
            t.add_column(header, style="bold" if i == 0 else None, no_wrap=i == 0)
        return t

    console = Console(file=out, no_color=not color, highlight=False)
    for entry in report["sites"]:
        console.print(Text(heading(entry, report["file"]), style="bold"))
        details = table()
        for label, text in _lines(entry):
            if label in ("load", "original", "fixed") or label.startswith("warnings"):
                break  # the variants go in the side-by-side table
            details.add_row(label, Text(text))  # Text, not markup: values hold [brackets]
        console.print(Padding(details, (0, 0, 0, 2)))
        if not entry.get("reason"):
            same = entry["fixed"]["same_as_original"]
            side = table("", "as written") if same else table("", "original", "fixed")
            left = facts(entry["original"]["result"])
            right = facts(entry["fixed"]["result"], entry.get("speedup"))
            for key in dict.fromkeys([*left, *([] if same else right)]):
                cells = [Text(left.get(key, ""))] + ([] if same else [Text(right.get(key, ""))])
                side.add_row(key, *cells)
            console.print(Padding(side, (1, 0, 1, 2)))
        verdict = table()
        verdict.add_row("verdict", Text(entry["verdict"], style=f"bold {COLORS[entry['status']]}"))
        console.print(Padding(verdict, (0, 0, 1, 2)))
    env = environment_line(report)
    if env:
        console.print(Text(env))
    console.print(Text(totals(report)))
    return True
