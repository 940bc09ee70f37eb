"""SARIF 2.1.0 (GitHub code scanning, IDEs): every rule's metadata, results with fixes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from bnblint import __version__
from bnblint.diagnostics import Applicability, Finding, Location
from bnblint.output import Report
from bnblint.output.common import located_message, relative_path
from bnblint.rules import ALL_RULES, Rule
from bnblint.rules.base import DOCS_URL

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI = DOCS_URL.split("/blob/")[0]
SRCROOT = "%SRCROOT%"


def artifact_location(filename: str) -> dict[str, str]:
    """Relative to ``%SRCROOT%`` (the working directory) when under it, else an absolute URI."""
    rel = relative_path(filename)
    if rel == "-" or not Path(rel).is_absolute():
        return {"uri": quote(rel), "uriBaseId": SRCROOT}
    return {"uri": Path(rel).as_uri()}


def region(start: Location, end: Location) -> dict[str, int]:
    return {
        "startLine": start.row,
        "startColumn": start.column,
        "endLine": end.row,
        "endColumn": end.column,
    }


def rule_descriptor(rule: type[Rule]) -> dict[str, Any]:
    docs = rule.docs.strip("\n")
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.section("What it does")},
        "help": {"text": docs, "markdown": docs},
        "helpUri": rule.url(),
        "defaultConfiguration": {"level": rule.level.value},
    }


def fixes(f: Finding) -> list[dict[str, Any]]:
    # SARIF needs at least one change per fix: findings without edits (no fix, or after
    # --fix, where remaining findings may lack edits) get none.
    if not f.edits or f.fix_message is None:
        return []
    unsafe = " (unsafe)" if f.applicability is Applicability.UNSAFE else ""
    replacements = [
        {
            "deletedRegion": region(e.location, e.end_location),
            "insertedContent": {"text": e.content},
        }
        for e in f.edits
    ]
    return [
        {
            "description": {"text": f.fix_message + unsafe},
            "artifactChanges": [
                {"artifactLocation": artifact_location(f.filename), "replacements": replacements}
            ],
        }
    ]


def result(f: Finding, index: dict[str, int]) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": artifact_location(f.filename)}
    if f.cell is None:  # a notebook cell's rows are not the file's: the message names them
        physical["region"] = region(f.location, f.end_location)
    out: dict[str, Any] = {
        "ruleId": f.code,
        "level": f.level.value,
        "message": {"text": located_message(f)},
        "locations": [{"physicalLocation": physical}],
    }
    if f.code in index:
        out["ruleIndex"] = index[f.code]
    if f.applicability is not None:
        out["properties"] = {"applicability": f.applicability.value}
    found = fixes(f) if f.cell is None else []
    if found:
        out["fixes"] = found
    return out


def sarif_log(report: Report) -> dict[str, Any]:
    index = {rule.code: i for i, rule in enumerate(ALL_RULES)}
    notifications = [
        {
            "level": "error",
            "message": {"text": r.error or ""},
            "locations": [
                {"physicalLocation": {"artifactLocation": artifact_location(r.filename)}}
            ],
        }
        for r in report.errors
    ]
    notifications += [  # fixes not applied: reported, as unreadable files are
        {
            "level": "error",
            "message": {"text": problem},
            "locations": [
                {"physicalLocation": {"artifactLocation": artifact_location(r.filename)}}
            ],
        }
        for r in report.results
        for problem in r.fix_problems
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "bnblint",
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [rule_descriptor(rule) for rule in ALL_RULES],
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri().rstrip("/") + "/"}},
        "columnKind": "unicodeCodePoints",
        "invocations": [
            # Unreadable files do not stop the run: it still completed.
            {"executionSuccessful": True, "toolExecutionNotifications": notifications}
        ],
        "results": [result(f, index) for f in report.findings],
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def render(report: Report, out: TextIO) -> None:
    json.dump(sarif_log(report), out, indent=2, ensure_ascii=False)
    out.write("\n")
