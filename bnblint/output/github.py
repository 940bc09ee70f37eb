"""GitHub Actions workflow commands: one ``::warning``/``::error`` annotation per finding."""

from __future__ import annotations

from typing import TextIO

from bnblint.diagnostics import Finding
from bnblint.output import Report
from bnblint.output.common import located_message, relative_path


def escape_data(text: str) -> str:
    """Escape a command's message as GitHub's toolkit does (``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value as GitHub's toolkit does (``escapeProperty``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, properties: dict[str, object], message: str) -> str:
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    return f"::{level} {props}::{escape_data(message)}"


def annotation(f: Finding) -> str:
    properties: dict[str, object] = {
        "title": f"bnblint ({f.code})",
        "file": relative_path(f.filename),
    }
    if f.cell is None:  # a notebook cell's rows are not the file's: the message names them
        properties.update(
            line=f.location.row,
            col=f.location.column,
            endLine=f.end_location.row,
            endColumn=f.end_location.column,
        )
    return command(f.level.value, properties, f"{f.code} {located_message(f)}")


def render(report: Report, out: TextIO) -> None:
    for f in report.findings:
        out.write(annotation(f) + "\n")
    for result in report.errors:
        out.write(command("error", {"file": relative_path(result.filename)}, result.error or ""))
        out.write("\n")
