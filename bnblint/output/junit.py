"""JUnit XML for CI test reports: a test suite per file, a failing test case per finding."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from itertools import groupby
from typing import TextIO

from bnblint.output import Report

# Characters XML 1.0 cannot hold at all, even escaped; a message quoting odd source has them.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _ILLEGAL.sub("\ufffd", text)


def _suite(parent: ET.Element, name: str, tests: int, failures: int, errors: int) -> ET.Element:
    return ET.SubElement(
        parent,
        "testsuite",
        name=name,
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
    )


def render(report: Report, out: TextIO) -> None:
    findings = report.findings
    errors = report.errors
    root = ET.Element(
        "testsuites",
        name="bnblint",
        tests=str(len(findings) + len(errors)),
        failures=str(len(findings)),
        errors=str(len(errors)),
    )
    for filename, group in groupby(findings, key=lambda f: f.filename):
        items = list(group)
        suite = _suite(root, filename, len(items), len(items), 0)
        for f in items:
            where = f"{f.location.row}:{f.location.column}"
            case = ET.SubElement(
                suite,
                "testcase",
                name=f"{f.code} at {where}",
                classname=filename,
                file=filename,
                line=str(f.location.row),
            )
            failure = ET.SubElement(case, "failure", message=_clean(f.message), type=f.code)
            failure.text = _clean(f"{filename}:{where}: {f.code} {f.message}")
    for result in errors:
        suite = _suite(root, result.filename, 1, 0, 1)
        name = result.filename
        case = ET.SubElement(suite, "testcase", name="read and parse", classname=name, file=name)
        error = ET.SubElement(
            case, "error", message=_clean(result.error or ""), type="bnblint-error"
        )
        error.text = _clean(f"{result.filename}: {result.error}")
    if not findings and not errors:
        # Some CI report readers reject an empty report: one passing case says all was checked.
        suite = _suite(root, "bnblint", 1, 0, 0)
        ET.SubElement(suite, "testcase", name="no findings", classname="bnblint")
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")
